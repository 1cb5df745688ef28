"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 that serves a tiny
Qwen2.5-VL with the chat-completions format (it runs the model on the posted messages).

The same rerankers and generator, run locally and through the server, must agree: the images
travel as lossless PNG data URLs and the Yes/No score comes back through ``top_logprobs``.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("qwen_vl_utils")
pytest.importorskip("httpx")

from PIL import Image  # noqa: E402

from mmrag import generate, rerankers  # noqa: E402
from mmrag.errors import ConfigError, ServerError  # noqa: E402
from mmrag.generate.openai_compatible import ChatClient  # noqa: E402
from mmrag.types import Block, Candidate, Hit  # noqa: E402
from mmrag.vlm import VLM, load_vlm, text_part  # noqa: E402
from tests.tiny import save_tiny_qwen_vl  # noqa: E402

PIX = dict(min_pixels=28 * 28, max_pixels=28 * 28 * 6)


def _to_qwen(messages: list[dict]) -> list[dict]:
    """OpenAI chat messages → Qwen-VL messages (data URLs decoded; no further resizing)."""
    out = []
    for m in messages:
        if isinstance(m["content"], str):
            out.append({"role": m["role"], "content": [{"type": "text", "text": m["content"]}]})
            continue
        parts = []
        for p in m["content"]:
            if p["type"] == "image_url":
                raw = base64.b64decode(p["image_url"]["url"].split("base64,", 1)[1])
                img = Image.open(io.BytesIO(raw)).convert("RGB")
                parts.append({"type": "image", "image": img, "min_pixels": 28 * 28, "max_pixels": 28 * 28 * 1024})
            else:
                parts.append({"type": "text", "text": p["text"]})
        out.append({"role": m["role"], "content": parts})
    return out


class ModelServer:
    """A minimal OpenAI chat-completions server around a local VLM, in a background thread.

    Unlike vLLM it does not cap ``top_logprobs`` at 20, so a random tiny model's Yes/No tokens
    can be read exactly. ``before`` may delay or fail a request (to test timeouts and retries).
    """

    def __init__(self, vlm: VLM | None, before: Callable[[int], tuple[int, dict] | None] | None = None):
        self.vlm, self.before, self.requests = vlm, before, 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests += 1
                    n = server.requests
                early = server.before(n) if server.before else None
                try:
                    status, payload = early if early else (200, server.complete(self.path, body))
                except Exception as e:  # a broken request is the client's bug: say so, like vLLM
                    status, payload = 500, {"error": {"message": f"{type(e).__name__}: {e}"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    def complete(self, path: str, body: dict) -> dict:
        assert path == "/v1/chat/completions", path
        msgs = _to_qwen(body["messages"])
        with self.lock:  # one model, one request at a time
            if body.get("logprobs"):
                logits = self.vlm.next_token_logits([msgs])[0]
                logp = torch.log_softmax(logits, -1)
                top = torch.topk(logp, min(int(body.get("top_logprobs", 1)), logp.numel()))
                tokens = self.vlm.tokenizer.batch_decode([[int(i)] for i in top.indices])
                entries = [{"token": t, "logprob": float(v)} for t, v in zip(tokens, top.values)]
                content = entries[0]["token"]
                logprobs = {"content": [{"token": content, "logprob": entries[0]["logprob"], "top_logprobs": entries}]}
            else:
                content = self.vlm.generate(msgs, max_new_tokens=body.get("max_tokens", 16),
                                            temperature=body.get("temperature", 0.0))
                logprobs = None
        return {"id": "cmpl-test", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                             "message": {"role": "assistant", "content": content}}]}

    def __enter__(self) -> "ModelServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def tiny_dir(qwen_vl_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(save_tiny_qwen_vl(qwen_vl_tokenizer_dir, tmp_path_factory.mktemp("q25"), version="2.5"))


@pytest.fixture(scope="module")
def server(tiny_dir: str) -> Iterator[ModelServer]:
    with ModelServer(load_vlm(tiny_dir)) as s:
        yield s


def _pages() -> list[Image.Image]:
    """Sizes that are multiples of 28 within the pixel budget, so no path resizes them."""
    return [Image.new("RGB", size, color) for size, color in
            [((56, 84), (200, 10, 10)), ((84, 56), (10, 200, 10)), ((56, 56), (10, 10, 200))]]


@pytest.mark.slow
def test_ragllava_through_the_server_equals_the_local_scores(server: ModelServer, tiny_dir: str) -> None:
    cands = [Candidate(f"p{i}", f"caption {i} revenue", image=img) for i, img in enumerate(_pages())]
    local = rerankers.load("ragllava", model=tiny_dir, **PIX).score("revenue?", cands)
    # the whole vocabulary's log-probs (our test server allows it), so Yes and No are both listed
    remote = rerankers.load("ragllava", model="tiny", backend="openai", base_url=server.base_url,
                            top_logprobs=60_000, **PIX)
    assert remote.score("revenue?", cands) == pytest.approx(local, abs=1e-5)
    assert server.requests >= 3


@pytest.mark.slow
def test_mm_r5_and_generator_through_the_server_match_local_greedy_output(server: ModelServer, tiny_dir: str,
                                                                         tmp_path: Path) -> None:
    cands = [Candidate(f"p{i}", "", image=img) for i, img in enumerate(_pages())]
    local = rerankers.load("mm-r5", model=tiny_dir, temperature=0.0, max_new_tokens=10, **PIX)
    remote = rerankers.load("mm-r5", model="tiny", backend="openai", base_url=server.base_url,
                            temperature=0.0, max_new_tokens=10, **PIX)
    assert [s.id for s in remote.rerank("q", cands)] == [s.id for s in local.rerank("q", cands)]
    assert remote.last_output == local.last_output and local.last_output

    hits = []
    for i, img in enumerate(_pages()[:2]):
        img.save(tmp_path / f"{i}.png")
        hits.append(Hit(f"doc{i}", f"/d/f{i}.pdf", i + 1, 1.0, text=f"page {i} text",
                        blocks=[Block(f"page {i} text", (0.0, 0.0, 10.0, 10.0))], image_path=str(tmp_path / f"{i}.png")))
    gen_local = generate.load("qwen-vl", model=tiny_dir, max_new_tokens=10, **PIX)
    gen_remote = generate.load("openai-compatible", base_url=server.base_url, model="tiny", max_new_tokens=10, **PIX)
    a, b = gen_local.answer("what?", hits), gen_remote.answer("what?", hits)
    assert b.text == a.text and [c.to_dict() for c in b.citations] == [c.to_dict() for c in a.citations]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_is_a_clear_server_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    client = ChatClient(url, "m", retries=1, backoff=0.01, timeout=2)
    t = time.perf_counter()
    with pytest.raises(ServerError, match=r"127\.0\.0\.1.*failed after 2 tries: cannot connect"):
        client.generate([{"role": "user", "content": [text_part("hi")]}])
    assert time.perf_counter() - t < 5


def test_timeout_then_retry_succeeds_and_persistent_timeout_fails() -> None:
    def slow_first(n: int) -> tuple[int, dict] | None:
        if n == 1:
            time.sleep(1.0)
        return (200, {"choices": [{"message": {"role": "assistant", "content": f"answer {n}"}}]})

    with ModelServer(None, before=slow_first) as s:
        client = ChatClient(s.base_url, "m", retries=1, backoff=0.01, timeout=0.3)
        assert client.generate([{"role": "user", "content": "hi"}]) == "answer 2"

    with ModelServer(None, before=lambda n: time.sleep(1.0)) as s:
        client = ChatClient(s.base_url, "m", retries=1, backoff=0.01, timeout=0.2)
        with pytest.raises(ServerError, match="no answer within 0.2 s"):
            client.generate([{"role": "user", "content": "hi"}])
        time.sleep(1.0)  # let the sleeping handlers finish before shutdown


def test_5xx_is_retried_and_4xx_is_not() -> None:
    with ModelServer(None, before=lambda n: (503, {"error": {"message": "loading"}}) if n < 3 else
                     (200, {"choices": [{"message": {"content": "ok"}}]})) as s:
        assert ChatClient(s.base_url, "m", retries=2, backoff=0.01).generate([{"role": "user", "content": "x"}]) == "ok"
        assert s.requests == 3
    with ModelServer(None, before=lambda n: (404, {"error": {"message": "model 'm' does not exist"}})) as s:
        with pytest.raises(ServerError, match="HTTP 404: model 'm' does not exist"):
            ChatClient(s.base_url, "m", retries=3, backoff=0.01).generate([{"role": "user", "content": "x"}])
        assert s.requests == 1
    with ModelServer(None, before=lambda n: (200, {"unexpected": True})) as s:
        with pytest.raises(ServerError, match="did not return an OpenAI chat completion"):
            ChatClient(s.base_url, "m").generate([{"role": "user", "content": "x"}])


def test_openai_backend_needs_a_base_url() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        rerankers.load("mm-r5", backend="openai")
    with pytest.raises(ConfigError, match="base_url"):
        generate.load("qwen-vl", backend="openai")

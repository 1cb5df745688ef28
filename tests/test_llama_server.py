"""The ``backend: openai`` rerankers and the ``openai-compatible`` generator against a REAL server.

The server is llama-cpp-python (``python -m llama_cpp.server``) serving the bundled SmolLM2-135M
GGUF on 127.0.0.1, started by these tests and killed at the end. What is checked is what could
break: the reply is parsed into a full permutation, letter and Yes/No log-probs agree with the
same weights run locally by transformers, citations point at pages that were shown, and a
server that is slow, late or dies mid-request gives a ``ServerError`` and no half result.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from tests import llama_server
from tests.llama_server import EOS, MODEL, LlamaServer, free_port, port_open

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(llama_server.available() is not None, reason=str(llama_server.available()))]

from mmrag import generate, rerankers  # noqa: E402
from mmrag.errors import ServerError  # noqa: E402
from mmrag.generate.citations import reference  # noqa: E402
from mmrag.generate.openai_compatible import ChatClient  # noqa: E402
from mmrag.rerankers.first import answer_position, letter_of  # noqa: E402
from mmrag.rerankers.listwise import parse_ranking  # noqa: E402
from mmrag.types import Block, Candidate, Hit  # noqa: E402

PASSAGES = [
    ("bees", "Honey bees collect nectar from flowers and store it as honey in wax combs inside the hive."),
    ("tax", "The 2023 annual report shows revenue of 4.2 billion euros and a net profit of 310 million."),
    ("tides", "Ocean tides are caused by the gravitational pull of the moon and, to a lesser degree, the sun."),
    ("python", "Python lists keep their items in order; append adds one item at the end of the list."),
    ("alps", "The Alps stretch across eight countries; Mont Blanc is their highest peak at 4,806 metres."),
]
QUERY = "What was the company's revenue in 2023?"


def cands(n: int = len(PASSAGES)) -> list[Candidate]:
    return [Candidate(pid, text, score=float(n - i)) for i, (pid, text) in enumerate(PASSAGES[:n])]


def gguf() -> Path:
    from mmrag.bundled import SMOLLM2_GGUF, smollm2_dir

    return smollm2_dir() / SMOLLM2_GGUF


@pytest.fixture(scope="module")
def server() -> Iterator[LlamaServer]:
    with LlamaServer(gguf()) as s:
        yield s


class Counting:
    """Wraps a real ChatClient's ``chat`` to count requests and run a hook before each one."""

    def __init__(self, client: ChatClient, before: Any = None):
        self.real, self.before, self.calls = client.chat, before, 0
        client.chat = self  # type: ignore[method-assign]

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        self.calls += 1
        if self.before:
            self.before(self.calls)
        return self.real(*args, **kwargs)


def assert_permutation(ranked: list, inputs: list[Candidate]) -> None:
    ids = [s.id for s in ranked]
    assert sorted(ids) == sorted(c.id for c in inputs) and len(set(ids)) == len(inputs)


# --- listwise ----------------------------------------------------------------------------------
def test_rankgpt_one_window_is_the_parsed_reply_of_the_server(server: LlamaServer) -> None:
    rr = rerankers.load("rankgpt", backend="openai", base_url=server.base_url, model=MODEL, window=20)
    c = cands()
    ranked = rr.rerank(QUERY, c)
    assert_permutation(ranked, c)
    assert rr.last_output.strip(), "the server sent an empty reply"
    # one window: the order IS the server's reply read by parse_ranking (missing ids in input order)
    assert [s.id for s in ranked] == [c[i].id for i in parse_ranking(rr.last_output, len(c))]
    assert [s.score for s in ranked] == sorted((s.score for s in ranked), reverse=True)


def test_rankgpt_sliding_windows_send_one_request_per_window(server: LlamaServer) -> None:
    rr = rerankers.load("rankgpt", backend="openai", base_url=server.base_url, model=MODEL,
                        window=3, step=2, max_new_tokens=24)
    counter = Counting(rr.client)
    c = cands()
    ranked = rr.rerank(QUERY, c)
    assert_permutation(ranked, c)
    assert counter.calls == 2  # spans [2, 5) and [0, 3)


@pytest.fixture(scope="module")
def local_lm(smollm2_dir: Path) -> Iterator[tuple[Any, Any]]:
    """The same SmolLM2 weights in transformers (dequantised from the GGUF), float32, on one thread:
    beside the server process, two torch threads on a busy 2-core machine ran 8x slower than one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield (AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval(),
               AutoTokenizer.from_pretrained(smollm2_dir))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("query,n", [(QUERY, 4), ("Why are there tides?", 5)])
def test_first_ranks_by_the_served_letter_logprobs_which_match_the_local_model(
        server: LlamaServer, local_lm: tuple[Any, Any], query: str, n: int) -> None:
    import torch

    from mmrag.rerankers import hf

    c = cands(n)
    rr = rerankers.load("first", backend="openai", base_url=server.base_url, model=MODEL, window=n, step=n,
                        top_logprobs=100)
    ranked = rr.rerank(query, c)
    assert_permutation(ranked, c)
    served = rr.last_logits
    assert served is not None and served.shape == (n,)
    pos = answer_position(rr.last_logprobs)
    top = rr.last_logprobs[pos]["top_logprobs"]
    letters = [(letter_of(e["token"], n), e) for e in top]
    listed = {i for i, _ in letters if i is not None}
    assert listed, f"no passage letter among the server's top log-probs: {top[:10]}"
    assert all(np.isfinite(served[i]) and served[i] <= 0 for i in listed)
    assert all(served[i] == -np.inf for i in range(n) if i not in listed)
    # the ranking is the letters by the server's log-probs, best first (ties and unlisted: input order)
    assert [s.id for s in ranked] == [c[i].id for i in sorted(range(n), key=lambda i: (-served[i], i))]
    # greedy decoding printed a letter there, the most likely token: that passage ranks first
    chosen = letter_of(rr.last_logprobs[pos]["token"], n)
    assert chosen is not None, f"no passage named at {pos}: {[e['token'] for e in rr.last_logprobs]}"
    assert ranked[0].id == c[chosen].id

    # the same weights in transformers, continuing the same chat with the reply's tokens before the
    # letter ("[" when the model follows FIRST's format): every listed letter token has the log-prob
    # the server reported, up to llama.cpp's quantised arithmetic
    lm, tok = local_lm
    text = hf.chat_text(tok, rr.messages(query, c)) + "".join(e["token"] for e in rr.last_logprobs[:pos])
    with torch.inference_mode():
        local = torch.log_softmax(lm(**tok(text, return_tensors="pt", add_special_tokens=False)).logits[0, -1], -1)
    compared = 0
    for i, e in letters:
        ids = tok.encode(e["token"], add_special_tokens=False)
        if i is not None and len(ids) == 1:
            assert e["logprob"] == pytest.approx(local[ids[0]].item(), abs=0.3), e
            compared += 1
    assert compared >= len(listed)


# --- pointwise Yes/No ----------------------------------------------------------------------------
def test_pointwise_yes_no_from_served_logprobs_matches_local_softmax(server: LlamaServer,
                                                                     local_lm: tuple[Any, Any]) -> None:
    import torch

    from mmrag.generate.openai_compatible import to_openai_messages

    rr = rerankers.load("ragllava", backend="openai", base_url=server.base_url, model=MODEL, images=False,
                        top_logprobs=100, top_k=5)
    c = cands()
    ranked = rr.rerank(QUERY, c)
    assert_permutation(ranked, c)
    scores = [x.metadata["relevance"] for x in c]  # P(Yes) per passage, in input order
    assert all(0.0 <= s <= 1.0 and math.isfinite(s) for s in scores)
    assert len(set(scores)) > 1, f"every passage got the same P(Yes): {scores}"
    assert [s.score for s in ranked] == sorted(scores, reverse=True)

    # P(Yes) = softmax over the Yes/No logits of the same chat, computed by transformers
    lm, tok = local_lm
    yes, no = tok.encode("Yes", add_special_tokens=False)[0], tok.encode("No", add_special_tokens=False)[0]
    local = []
    for cand in c:
        msgs = to_openai_messages(rr.messages(QUERY, cand, None))
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            logits = lm(**ids).logits[0, -1]
        local.append(torch.softmax(logits[[yes, no]], -1)[0].item())
    assert scores == pytest.approx(local, abs=0.05)


# --- generator with citations ---------------------------------------------------------------------
def test_generator_answers_with_citations_of_pages_it_was_shown(server: LlamaServer) -> None:
    hits = [Hit(f"doc{i}", f"/reports/r{i}.pdf", i + 2, 1.0, text=text,
                blocks=[Block(text, (10.0, 20.0 + i, 300.0, 60.0 + i))]) for i, (_, text) in enumerate(PASSAGES[:3])]
    gen = generate.load("openai-compatible", base_url=server.base_url, model=MODEL, images=False,
                        max_new_tokens=60)
    ans = gen.answer(QUERY, hits)
    assert gen.last_output.strip(), "the server sent an empty reply"
    shown = {(h.doc_id, h.page) for h in hits}
    if ans.answerable:
        assert ans.text == gen.last_output.strip() and ans.citations
        assert all((ct.doc_id, ct.page) in shown for ct in ans.citations)
        cited = {(ct.doc_id, ct.page) for ct in ans.citations}
        for h in hits:  # a reference the model copied must come back as a citation
            if reference(h) in gen.last_output:
                assert (h.doc_id, h.page) in cited
        by_page = {(h.doc_id, h.page): h for h in hits}
        for ct in ans.citations:  # the region is one of the cited page's blocks
            assert ct.bbox is None or tuple(ct.bbox) in {tuple(b.bbox) for b in by_page[(ct.doc_id, ct.page)].blocks}
    else:
        assert ans.citations == []


# --- the pipeline: RAG with the served reranker and generator -------------------------------------
def test_rag_searches_and_answers_through_the_served_models(server: LlamaServer, tmp_path: Path) -> None:
    import yaml

    from mmrag.api import RAG
    from tests.hash_encoder import register
    from tests.indexes.helpers import build, make_doc

    register()
    build(tmp_path / "ix", [make_doc(i, [[text]]) for i, (_, text) in enumerate(PASSAGES)])
    served = {"backend": "openai", "base_url": server.base_url, "model": MODEL}
    cfg = {"fields": [{"name": "text", "encoder": "test-hash", "input": "chunks", "options": {"dim": 32}}],
           "ingest": {"ocr": "never"}, "search": {"rerank_depth": 5},
           "reranker": {"name": "first", "options": {**served, "window": 5, "step": 5, "top_logprobs": 100}},
           "generator": {"name": "openai-compatible",
                         "options": {"base_url": server.base_url, "model": MODEL, "images": False,
                                     "max_new_tokens": 40}}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    rag = RAG.from_config(tmp_path / "cfg.yaml", index=tmp_path / "ix")

    first_stage = rag.search(QUERY, k=5, rerank=False)
    hits = rag.search(QUERY, k=5)
    assert sorted(h.page_id for h in hits) == sorted(h.page_id for h in first_stage) and len(hits) == 5
    letters = rag._reranker.last_logits  # the served letter log-probs decided the order
    assert hits[0].page_id == first_stage[int(np.argmax(letters))].page_id
    assert all("first_stage" in h.scores for h in hits)

    ans = rag.ask(QUERY, k=3)
    shown = {(h.doc_id, h.page) for h in ans.contexts}
    assert ans.contexts and all((c.doc_id, c.page) in shown for c in ans.citations)
    assert ans.answerable == bool(ans.citations)


# --- timeouts, retries, a server that dies ------------------------------------------------------
def no_stop(tokens: int) -> dict:
    """Request options for exactly ``tokens`` generated tokens (the end-of-turn token banned)."""
    return {"max_tokens": tokens, "temperature": 0.0, "logit_bias": {EOS: -100.0}}


LONG = no_stop(1500)  # many seconds: the server is killed under it
HELLO = [{"role": "user", "content": "Say hello."}]


def test_timeout_is_a_server_error_and_the_server_survives_it() -> None:
    with LlamaServer(gguf()) as s:
        client = ChatClient(s.base_url, MODEL, timeout=0.3, retries=0)
        t = time.perf_counter()
        with pytest.raises(ServerError, match=r"127\.0\.0\.1.*no answer within 0.3 s"):
            client.chat(HELLO, **no_stop(500))  # the server finishes it after the client has gone
        assert time.perf_counter() - t < 3
        # the abandoned request does not break the server: a patient client gets its answer
        assert ChatClient(s.base_url, MODEL, timeout=120, retries=0).generate(HELLO, max_new_tokens=8).strip()


def test_retries_reach_a_server_that_comes_up_late() -> None:
    port = free_port()
    late = LlamaServer(gguf(), port=port)
    assert not port_open(port)
    starter = threading.Timer(1.0, lambda: late.start(wait=False))
    client = ChatClient(late.base_url, MODEL, timeout=60, retries=8, backoff=0.5)  # waits up to ~2 min in all
    starter.start()
    try:
        t = time.perf_counter()
        text = client.generate(HELLO, max_new_tokens=8)
        assert text.strip() and time.perf_counter() - t >= 0.5  # at least one refused try, then an answer
    finally:
        starter.cancel()
        late.close()


def test_server_killed_mid_request_is_a_clear_server_error() -> None:
    with LlamaServer(gguf()) as s:
        client = ChatClient(s.base_url, MODEL, timeout=60, retries=1, backoff=0.1)
        box: dict = {}

        def call() -> None:
            try:
                box["reply"] = client.chat(HELLO, **LONG)
            except Exception as e:  # noqa: BLE001 - the test inspects it
                box["error"] = e

        worker = threading.Thread(target=call)
        worker.start()
        time.sleep(1.5)
        assert worker.is_alive(), "the long request finished before the kill"
        s.stop()
        worker.join(30)
        assert not worker.is_alive()
        err = box.get("error")
        assert isinstance(err, ServerError), box
        assert s.base_url in str(err) and "failed after 2 tries: cannot connect" in str(err)


def test_reranker_whose_server_dies_raises_and_loses_nothing() -> None:
    first = s = LlamaServer(gguf()).start()
    try:
        rr = rerankers.load("rankgpt", backend="openai", base_url=s.base_url, model=MODEL, window=3, step=1,
                            max_new_tokens=60, retries=1)
        rr.client.backoff = 0.1

        def kill_during_second(n: int) -> None:
            if n == 2:  # the second window's request is on its way: kill the server under it
                threading.Timer(0.3, s.stop).start()

        counter = Counting(rr.client, kill_during_second)
        c = cands()
        before = [(x.id, x.text, x.score) for x in c]
        with pytest.raises(ServerError, match="cannot connect"):
            rr.rerank(QUERY, c)
        assert counter.calls >= 2
        assert [(x.id, x.text, x.score) for x in c] == before  # the caller's list is untouched

        # the same reranker works again once the server is back on its port
        s = LlamaServer(gguf(), port=s.port).start()
        ranked = rr.rerank(QUERY, c)
        assert_permutation(ranked, c)
    finally:
        first.close()
        s.close()

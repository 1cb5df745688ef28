"""Any OpenAI-style chat endpoint (vLLM, SGLang serving Qwen2.5-VL) as a VLM backend.

``ChatClient`` sends the same Qwen-VL messages the local backend uses, with page images as
base64 PNG data URLs, and offers the local backend's two calls: ``generate`` and
``yes_probability`` (from the first token's ``top_logprobs``). Connection failures, timeouts,
429 and 5xx answers are retried; what still fails becomes a ``ServerError`` that names the URL.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
import time
from typing import TYPE_CHECKING, Any, Sequence

from mmrag.errors import ConfigError, ServerError
from mmrag.generate.qwen_vl import QwenVLGenerator
from mmrag.vlm import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, Message

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger("mmrag.openai")

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def fit_pixels(image: "Image", min_pixels: int, max_pixels: int) -> "Image":
    """Scale ``image`` (keeping its aspect ratio) so its pixel count lies in [min, max]."""
    w, h = image.size
    area = w * h
    if min_pixels <= area <= max_pixels or area == 0:
        return image
    scale = math.sqrt((max_pixels if area > max_pixels else min_pixels) / area)
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return image.resize(size)


def data_url(image: "Image") -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_openai_messages(messages: Sequence[Message]) -> list[dict]:
    """Qwen-VL messages → OpenAI chat messages (images within their pixel budget, as data URLs)."""
    out: list[dict] = []
    for m in messages:
        content = m["content"]
        if isinstance(content, str):
            out.append({"role": m["role"], "content": content})
            continue
        if all(part.get("type") == "text" for part in content):
            # text only: one string, which every server's chat template accepts (llama.cpp's
            # Jinja templates concatenate content as a string; OpenAI treats both alike)
            out.append({"role": m["role"], "content": "".join(part["text"] for part in content)})
            continue
        parts: list[dict] = []
        for part in content:
            if part.get("type") == "image":
                img = fit_pixels(part["image"], part.get("min_pixels", DEFAULT_MIN_PIXELS),
                                 part.get("max_pixels", DEFAULT_MAX_PIXELS))
                parts.append({"type": "image_url", "image_url": {"url": data_url(img)}})
            else:
                parts.append({"type": "text", "text": part["text"]})
        out.append({"role": m["role"], "content": parts})
    return out


def yes_probability_from_top(top_logprobs: Sequence[dict], yes: str = "Yes", no: str = "No") -> float:
    """P(yes) = softmax over the log-probabilities of the first token's ``yes`` and ``no``.

    Log-probs differ from logits by one constant per position, so this equals the softmax over
    the two logits. A word missing from the top list gets the smallest listed log-prob (an upper
    bound on its own); when neither is listed the model did not answer Yes/No: 0.0.
    """
    def find(word: str) -> float | None:
        exact = [e["logprob"] for e in top_logprobs if e.get("token") == word]
        loose = [e["logprob"] for e in top_logprobs if str(e.get("token", "")).strip() == word]
        found = exact or loose
        return max(found) if found else None

    ly, ln = find(yes), find(no)
    if ly is None and ln is None:
        return 0.0
    floor = min((e["logprob"] for e in top_logprobs), default=-1e9)
    ly = floor if ly is None else ly
    ln = floor if ln is None else ln
    m = max(ly, ln)
    return math.exp(ly - m) / (math.exp(ly - m) + math.exp(ln - m))


class ChatClient:
    """A small client for an OpenAI-style server (``{base_url}/chat/completions``, and the
    ``{base_url}/rerank`` of vLLM, Jina and llama.cpp) with retries and clear errors."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 600.0,
                 retries: int = 2, backoff: float = 0.5, top_logprobs: int = 20):
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.top_logprobs = int(top_logprobs)

    def post(self, url: str, body: dict) -> Any:
        """POST ``body`` as JSON; retry what may pass (no connection, timeout, 408/409/429/5xx);
        the decoded JSON answer, or a ``ServerError`` that says what went wrong."""
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                r = httpx.post(url, json=body, headers=headers, timeout=self.timeout)
            except httpx.TimeoutException:
                problem = f"no answer within {self.timeout:g} s (raise the timeout option or check the server's load)"
                continue
            except httpx.TransportError as e:
                problem = f"cannot connect ({type(e).__name__}: {e}); start the server (e.g. `vllm serve MODEL`) or fix base_url"
                continue
            if r.status_code in _RETRY_STATUS:
                problem = f"HTTP {r.status_code}: {_error_text(r)}"
                continue
            if r.status_code >= 400:
                raise ServerError(f"{url} refused the request with HTTP {r.status_code}: {_error_text(r)} "
                                  f"(check model '{self.model}' and base_url)")
            try:
                return r.json()
            except ValueError:
                raise ServerError(f"{url} did not answer with JSON: {r.text[:200]!r}") from None
        raise ServerError(f"OpenAI-compatible server at {url} failed after {self.retries + 1} tries: {problem}")

    def chat(self, messages: Sequence[Message], **params: Any) -> dict:
        """One chat completion (the response JSON); ``params`` go into the request body."""
        body = {"model": self.model, "messages": to_openai_messages(messages), **params}
        data = self.post(self.url, body)
        try:
            data["choices"][0]
        except (KeyError, IndexError, TypeError):
            raise ServerError(f"{self.url} did not return an OpenAI chat completion: {str(data)[:200]!r}") from None
        return data

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        """Relevance of each document to ``query`` from the server's rerank (score) API, in input order."""
        url = self.base_url + "/rerank"
        data = self.post(url, {"model": self.model, "query": query, "documents": list(documents)})
        scores = [math.nan] * len(documents)
        try:
            for item in data["results"]:
                scores[int(item["index"])] = float(item["relevance_score"])
        except (KeyError, IndexError, TypeError, ValueError):
            raise ServerError(f"{url} did not return rerank results: {str(data)[:200]!r}") from None
        if any(math.isnan(x) for x in scores):
            raise ServerError(f"{url} scored {sum(not math.isnan(x) for x in scores)} of {len(documents)} "
                              "documents; serve a cross-encoder (vLLM: a model with the score task)")
        return scores

    def generate(self, messages: Sequence[Message], max_new_tokens: int = 512, temperature: float = 0.0,
                 top_p: float | None = None) -> str:
        params: dict[str, Any] = {"max_tokens": int(max_new_tokens), "temperature": float(temperature)}
        if top_p is not None:
            params["top_p"] = float(top_p)
        content = self.chat(messages, **params)["choices"][0]["message"].get("content")
        return content or ""

    def token_logprobs(self, messages: Sequence[Message], max_tokens: int = 1) -> list[dict]:
        """The greedy reply's first ``max_tokens`` tokens, each ``{"token", "logprob", "top_logprobs"}``
        (the ``top_logprobs`` most likely tokens at that position, as the server reports them)."""
        data = self.chat(messages, max_tokens=int(max_tokens), temperature=0.0, logprobs=True,
                         top_logprobs=self.top_logprobs)
        try:
            content = data["choices"][0]["logprobs"]["content"]
            content[0]["top_logprobs"][0]
        except (KeyError, IndexError, TypeError):
            raise ServerError(f"{self.url} returned no top_logprobs; serve the model with log-prob "
                              "support (vLLM, SGLang and llama-cpp-python have it)") from None
        return content

    def yes_probability(self, conversations: Sequence[Sequence[Message]], yes: str = "Yes",
                        no: str = "No") -> list[float]:
        """P(yes) for each conversation from the first generated token's top log-probs."""
        return [yes_probability_from_top(self.token_logprobs(conv)[0]["top_logprobs"], yes, no)
                for conv in conversations]


def chat_client(base_url: str | None, model: str | None, api_key: str | None = None, timeout: float = 600.0,
                retries: int = 2, top_logprobs: int = 20) -> ChatClient:
    """A ``ChatClient`` for a reranker or generator's ``backend: openai``; both options are required."""
    if not base_url:
        raise ConfigError("backend 'openai' needs base_url, e.g. http://127.0.0.1:8000/v1 (a vLLM or SGLang server)")
    if not model:
        raise ConfigError("backend 'openai' needs model: the name the server serves (vLLM: the id after `vllm serve`)")
    return ChatClient(base_url=base_url, model=model, api_key=api_key, timeout=timeout, retries=retries,
                      top_logprobs=top_logprobs)


def _error_text(r: Any) -> str:
    try:
        err = r.json().get("error")
        if isinstance(err, dict):
            return str(err.get("message", err))
        if err:
            return str(err)
    except ValueError:
        pass
    return r.text[:200] or r.reason_phrase


class OpenAICompatibleGenerator(QwenVLGenerator):
    """The qwen-vl generator's prompt and citation read-out, answered by a chat server.

    ``images=False`` sends only the pages' layout text, for servers that host a text-only LLM.
    """

    name = "openai-compatible"

    def __init__(self, base_url: str = "http://127.0.0.1:8000/v1", model: str = "Qwen/Qwen2.5-VL-7B-Instruct",
                 api_key: str | None = None, timeout: float = 600.0, retries: int = 2, images: bool = True,
                 max_new_tokens: int = 512, temperature: float = 0.0, max_pages: int = 3,
                 min_confidence: float = 0.5, text_chars: int = 2000, dpi: int = 144,
                 min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS):
        super().__init__(model=model, backend="openai", base_url=base_url, api_key=api_key, timeout=timeout,
                         retries=retries, images=images, max_new_tokens=max_new_tokens, temperature=temperature,
                         max_pages=max_pages, min_confidence=min_confidence, text_chars=text_chars, dpi=dpi,
                         min_pixels=min_pixels, max_pixels=max_pixels)

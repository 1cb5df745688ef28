"""Loading Hugging Face models for rerankers: one cached copy per (model, settings), chat prompts.

Every LLM family names its model by Hugging Face id or local folder; ``None`` means the bundled
SmolLM2-135M-Instruct so the families run offline. LoRA adapters (Rank-R1) load with peft.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import OrderedDict
from typing import Any

from mmrag.errors import MissingDependency, ModelNotFound

_LOCK = threading.Lock()
_CACHE: "OrderedDict[tuple, Any]" = OrderedDict()
_CACHE_SIZE = 4  # a fusion of several rerankers keeps each model once


def pick_device(device: str | None) -> str:
    """``None``/"auto" → cuda when available, else cpu."""
    if device not in (None, "", "auto"):
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def runs_on_cpu(device: str | None) -> bool:
    """Whether ``pick_device(device)`` is the CPU, without importing torch when it is not loaded
    yet (the ONNX paths start without it): then a GPU shows as an NVIDIA driver."""
    if device not in (None, "", "auto") or "torch" in sys.modules:
        return pick_device(device) == "cpu"
    return not os.path.exists("/proc/driver/nvidia/version")


def _dtype(dtype: str | None, device: str) -> Any:
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return getattr(torch, dtype)
    except AttributeError:
        from mmrag.errors import ConfigError

        raise ConfigError(f"unknown dtype {dtype!r}: use float32, bfloat16 or float16") from None


def cached(key: tuple, build: Any) -> Any:
    """Return the cached object for ``key`` or build it (small LRU shared by all rerankers)."""
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    obj = build()
    with _LOCK:
        _CACHE[key] = obj
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return obj


def _wrap_load_error(model: str, err: Exception) -> ModelNotFound:
    return ModelNotFound(
        f"could not load model {model!r} ({type(err).__name__}: {err}); give a local folder or a "
        "Hugging Face id that is in the local cache (HF_HUB_OFFLINE=1 allows no download)"
    )


def load_causal_lm(model: str | None, *, adapter: str | None = None, attn: str = "sdpa",
                   dtype: str | None = None, device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a causal LM, eval mode, cached; ``adapter`` is a peft LoRA id/path."""
    from mmrag.bundled import resolve_causal_lm

    path = resolve_causal_lm(model)
    dev = pick_device(device)
    key = ("causal", path, adapter, attn, str(dtype), dev)

    def build() -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(path)
            lm = AutoModelForCausalLM.from_pretrained(path, dtype=_dtype(dtype, dev), attn_implementation=attn)
        except (OSError, ValueError) as e:
            raise _wrap_load_error(path, e) from None
        if adapter:
            try:
                from peft import PeftModel
            except ImportError:
                raise MissingDependency(f"adapter {adapter!r} needs peft: pip install 'mmrag[rerank]'") from None
            try:
                lm = PeftModel.from_pretrained(lm, adapter).merge_and_unload()
            except (OSError, ValueError) as e:
                raise _wrap_load_error(adapter, e) from None
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        return lm.to(dev).eval(), tok

    return cached(key, build)


def chat_text(tok: Any, messages: list[dict], *, generation_prompt: bool = True) -> str:
    """Render ``messages`` with the tokenizer's chat template; plain text when it has none."""
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    body = "\n\n".join(m["content"] for m in messages)
    return body + ("\n\n" if generation_prompt else "")


def split_template(tok: Any, system: str | None = None) -> tuple[str, str]:
    """The chat template's text before and after a single user message (to tokenise by parts)."""
    sentinel = "\x00MMRAG_USER_TURN\x00"
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": sentinel}]
    text = chat_text(tok, messages)
    head, _, tail = text.partition(sentinel)
    return head, tail


def encode(tok: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens (templates already contain them)."""
    return tok(text, add_special_tokens=False)["input_ids"]


def truncate_words(text: str, max_words: int | None) -> str:
    """The first ``max_words`` whitespace-separated words (whitespace collapsed)."""
    words = text.split()
    if max_words is not None and len(words) > max_words:
        words = words[:max_words]
    return " ".join(words)


def generate_text(lm: Any, tok: Any, text: str, max_new_tokens: int) -> str:
    """Greedy continuation of ``text`` (already templated), decoded without special tokens."""
    import torch

    ids = torch.tensor([encode(tok, text)], device=lm.device)
    with torch.inference_mode():
        out = lm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                          do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


class DocCache:
    """LRU of per-passage representations keyed by text: passages seen before (or encoded at
    index time with ``fill``) cost nothing at query time."""

    def __init__(self, size: int):
        self.size = size
        self._d: "OrderedDict[str, Any]" = OrderedDict()

    def __len__(self) -> int:
        return len(self._d)

    def get_many(self, texts: list[str], compute: Any) -> list[Any]:
        """Representations of ``texts``; ``compute(list_of_missing_texts)`` fills the gaps."""
        if self.size <= 0:
            return list(compute(texts))
        missing = list(dict.fromkeys(t for t in texts if t not in self._d))
        if missing:
            for t, v in zip(missing, compute(missing)):
                self._d[t] = v
        out = []
        for t in texts:
            self._d.move_to_end(t)
            out.append(self._d[t])
        while len(self._d) > self.size:
            self._d.popitem(last=False)
        return out

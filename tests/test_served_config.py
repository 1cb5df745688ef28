"""configs/vllm.yaml builds served components (no server is contacted), and the read-outs of the
served backends on server-shaped replies (the real-server tests are tests/test_llama_server.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mmrag import generate, rerankers
from mmrag.config import load_config
from mmrag.errors import ConfigError
from mmrag.generate.openai_compatible import to_openai_messages
from mmrag.rerankers.first import answer_position, letter_logprobs, letter_of
from mmrag.vlm import text_part

ROOT = Path(__file__).resolve().parents[1]


def test_vllm_preset_puts_the_reranker_and_the_generator_behind_servers() -> None:
    cfg = load_config(ROOT / "configs" / "vllm.yaml")
    gpu = load_config(ROOT / "configs" / "gpu.yaml")
    assert [f.encoder for f in cfg.fields] == [f.encoder for f in gpu.fields]
    assert cfg.reranker.name == gpu.reranker.name == "first"

    rr = rerankers.load(cfg.reranker.name, **cfg.reranker.options)
    assert rr.client is not None and rr.client.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert rr.client.model == "castorini/first_mistral" and rr.client.top_logprobs == 20
    assert rr._lm is None  # nothing loaded locally

    gen = generate.load(cfg.generator.name, **cfg.generator.options)
    assert type(gen).__name__ == "OpenAICompatibleGenerator"
    assert gen.backend.url == "http://127.0.0.1:8001/v1/chat/completions"
    assert gen.backend.model == "Qwen/Qwen2.5-VL-7B-Instruct" and gen.max_pixels == 1003520


def test_served_rerankers_build_from_options_and_reject_bad_ones() -> None:
    ce = rerankers.load("cross-encoder", model="BAAI/bge-reranker-v2-m3", backend="openai",
                        base_url="http://127.0.0.1:8002/v1/")
    assert ce.client.base_url == "http://127.0.0.1:8002/v1"
    for name in ("rankgpt", "insertrank", "reasonrank", "first"):
        assert rerankers.load(name, backend="openai", base_url="http://h:1/v1", model="m").client.model == "m"
    with pytest.raises(ConfigError, match="needs model"):
        rerankers.load("rankgpt", backend="openai", base_url="http://h:1/v1")
    with pytest.raises(ConfigError, match="needs base_url"):
        rerankers.load("first", backend="openai", model="m")
    with pytest.raises(ConfigError, match="unknown backend 'vllm'"):
        rerankers.load("cross-encoder", backend="vllm")
    with pytest.raises(ConfigError, match="serve the adapted model"):
        rerankers.load("rankgpt", backend="openai", base_url="http://h:1/v1", model="m", adapter="lora/")
    with pytest.raises(ConfigError, match="has no option 'base_ur'"):  # **kwargs still checked by name
        rerankers.load("first", backend="openai", base_ur="http://h:1/v1", model="m")


def test_text_only_messages_go_as_one_string() -> None:
    msgs = [{"role": "user", "content": [text_part("a\n"), text_part("b")]}, {"role": "system", "content": "s"}]
    assert to_openai_messages(msgs) == [{"role": "user", "content": "a\nb"}, {"role": "system", "content": "s"}]


def _entry(token: str, top: dict[str, float]) -> dict:
    return {"token": token, "logprob": max(top.values()),
            "top_logprobs": [{"token": t, "logprob": v} for t, v in top.items()]}


def test_first_reads_letters_after_the_bracket() -> None:
    # a reply "[B] > ..." as llama.cpp and vLLM report it: "[" then the letter, with alternatives
    content = [_entry("[", {"[": -0.1, " [": -2.5, "A": -4.0}),
               _entry("B", {"B": -0.3, "A": -1.6, " C": -2.0, "a": -0.9, "[D": -5.0, "E": -0.1})]
    assert answer_position(content) == 1
    lp = letter_logprobs(content, 4)  # E is not a passage of a 4-window, "a" is a word
    assert lp[:3].tolist() == [-1.6, -0.3, -2.0] and lp[3] == -5.0
    assert [letter_of(t, 3) for t in ("B", " B", "[B", "B]", "b", "D", "AB", "")] == [1, 1, 1, 1, None, None, None, None]
    # the letter at the first position (a tokenizer that merges "[A") and letters the server omits
    merged = [_entry("[C", {"[C": -0.2, "[A": -1.0})]
    lp = letter_logprobs(merged, 3)
    assert answer_position(merged) == 0 and lp[0] == -1.0 and lp[2] == -0.2 and math.isinf(lp[1])
    assert np.argsort(-lp, kind="stable").tolist() == [2, 0, 1]

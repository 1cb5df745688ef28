"""``--method mm-r5``: MM-R5's two stages for the multimodal listwise reranker, on page images.

1. SFT (TRL ``SFTTrainer``) on the ``mm-r5`` reranker's own request (system prompt, instructions,
   ``Image i:`` and each page image) with the label order as the answer
   ``<think> … </think><answer>[2, 1, 3]</answer>``.
2. GRPO (TRL ``GRPOTrainer``, vision-language model) with MM-R5's reranking reward
   (``rewards.rerank_reward``) plus its template reward (``rewards.template_reward``).

Examples need ``images`` (one page image path per candidate). The saved folder (model and
processor) loads with ``mmrag.rerankers.load("mm-r5", model=OUT)``.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError
from mmrag.train import llm_common as common
from mmrag.train import trl_run
from mmrag.train.ranking_types import RankingExample

OPTIONS = {
    **trl_run.GRPO_OPTIONS,
    "model": "Qwen/Qwen2.5-VL-3B-Instruct",
    "max_completion_length": 1024,
    "lr": 1e-6,
    "sft_steps": 100,
    "sft_lr": 1e-5,
    "grpo_steps": None,
    "window": 5,  # page images per request
    "shuffle": False,
    "think": "",
    "template_weight": 1.0,
    "min_pixels": 4 * 28 * 28,
    "max_pixels": 256 * 28 * 28,
}


def target(labels: list[int], think: str = "") -> str:
    """The SFT completion: the label order in MM-R5's answer layout."""
    from mmrag.train.rewards import label_order

    order = label_order(len(labels), dict(enumerate(labels)))
    return f"<think> {think} </think><answer>[" + ", ".join(str(i + 1) for i in order) + "]</answer>"


def rerank(completions: list, labels: list, **_: object) -> list[float]:
    """MM-R5's reranking reward (TRL reward function)."""
    from mmrag.train.rewards import rerank_reward

    return [rerank_reward(_text(c), len(lab), dict(enumerate(lab))) for c, lab in zip(completions, labels)]


def template(completions: list, labels: list, **_: object) -> list[float]:
    """MM-R5's template reward (TRL reward function)."""
    from mmrag.train.rewards import template_reward

    return [template_reward(_text(c), len(lab)) for c, lab in zip(completions, labels)]


def _text(completion: Any) -> str:
    """A completion as text (TRL passes conversational completions as message lists)."""
    if isinstance(completion, list):
        return "".join(_text(m.get("content", "")) if isinstance(m, dict) else str(m) for m in completion)
    if isinstance(completion, dict):
        return str(completion.get("text", ""))
    return str(completion)


def placeholders(messages: list[dict]) -> list[dict]:
    """The reranker's messages with each image part as TRL's ``{"type": "image"}`` placeholder
    (the images travel in the ``images`` column) and every part with the same keys."""
    out = []
    for m in messages:
        parts = [{"type": "image", "text": None} if p["type"] == "image" else {"type": "text", "text": p["text"]}
                 for p in m["content"]]
        out.append({"role": m["role"], "content": parts})
    return out


def rows(examples: list[RankingExample], opts: dict) -> list[dict]:
    """One row per example with a positive: the MM-R5 request over a window of page images."""
    from mmrag.rerankers.mm_r5 import build_messages
    from mmrag.train.llm_common import _open

    rng = random.Random(int(opts["seed"])) if opts["shuffle"] else None
    out = []
    for e in common.with_positives(examples):
        if not e.images or len(e.images) != len(e.candidates):
            raise ConfigError(f"mm-r5 trains on page images: example {e.qid} needs one image per candidate")
        by_id = {d: img for (d, _), img in zip(e.candidates, e.images)}
        window, relevance = common.window_of(e, int(opts["window"]), rng)
        images = [_open(by_id[d]) for d, _ in window]
        messages = build_messages(e.query, images, int(opts["min_pixels"]), int(opts["max_pixels"]))
        out.append({"prompt": placeholders(messages), "images": images,
                    "labels": [relevance.get(i, 0) for i in range(len(window))]})
    return out


def load_vlm(model: str, opts: dict) -> tuple[Any, Any]:
    """A trainable vision-language model and its processor."""
    import torch
    import transformers

    from mmrag.errors import ModelNotFound

    try:
        processor = transformers.AutoProcessor.from_pretrained(model)
        net = transformers.AutoModelForImageTextToText.from_pretrained(
            model, dtype=torch.bfloat16 if common.use_bf16(opts) else torch.float32)
    except (OSError, ValueError) as e:
        raise ModelNotFound(f"cannot load vision-language model {model!r} ({e}); give a local folder or a "
                            "Hugging Face id in the local cache") from None
    return net, processor


def train(examples: list[RankingExample], out: Path, options: dict) -> dict:
    """SFT then GRPO of a Qwen-VL model as the MM-R5 listwise page reranker."""
    common.require_trl()
    opts = common.merged(options, OPTIONS)
    started = time.perf_counter()
    from transformers import set_seed

    set_seed(int(opts["seed"]))
    model, processor = load_vlm(str(opts["model"]), opts)
    data = rows(examples, opts)
    sft_loss: list[float] = []
    if int(opts["sft_steps"]) > 0:
        sft_rows = [{**r, "completion": [{"role": "assistant", "content": [
            {"type": "text", "text": target(r["labels"], str(opts["think"]))}]}]} for r in data]
        model, sft_loss = trl_run.sft(model, processor, sft_rows, Path(out), opts, max_steps=int(opts["sft_steps"]),
                                      lr=opts["sft_lr"])
    model, hist = trl_run.grpo(model, processor, data, [rerank, template], Path(out), opts,
                               weights=[1.0, float(opts["template_weight"])], max_steps=opts["grpo_steps"])
    result = common.summary("mm-r5", opts, started, len(examples), len(data), sft_loss=sft_loss, **hist,
                            reranker="mm-r5")
    return common.save(model, processor, Path(out), result)

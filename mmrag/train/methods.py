"""The reranker-training methods `mmrag train reranker --method NAME` offers, name -> module.

Each module exposes ``train(examples: list[RankingExample], out: Path, options: dict) -> dict``:
it writes a folder the matching reranker loads by ``model:`` and returns the training summary.
Modules are imported only when their method is chosen (TRL, peft and torch are heavy).
"""

from __future__ import annotations

import importlib
from typing import Callable

from mmrag.errors import ConfigError

METHODS: dict[str, tuple[str, str]] = {
    # name: (module, what it trains / the reranker that loads the result)
    "cross-encoder": ("mmrag.train.cross_encoder", "sentence-transformers CrossEncoder -> reranker cross-encoder"),
    "first": ("mmrag.train.first", "LM loss on ranked ids + weighted RankNet on first-token logits -> reranker first"),
    "rank-r1": ("mmrag.train.rank_r1", "GRPO on the setwise prompt, LoRA -> reranker rank-r1"),
    "reasonrank": ("mmrag.train.reasonrank", "cold-start SFT then GRPO, multi-view ranking reward -> reranker reasonrank"),
    "mm-r5": ("mmrag.train.mm_r5", "SFT then GRPO on page images, listwise -> reranker mm-r5"),
}


def get_method(name: str) -> Callable:
    """The ``train`` function of a method, or ConfigError listing the methods."""
    if name not in METHODS:
        raise ConfigError(f"unknown training method {name!r}; choose one of: {', '.join(METHODS)}")
    module = importlib.import_module(METHODS[name][0])
    return module.train

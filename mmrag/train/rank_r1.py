"""``--method rank-r1``: GRPO (TRL ``GRPOTrainer``) on Rank-R1's setwise prompt, LoRA via peft.

Each training prompt is the ``rank-r1`` reranker's own prompt over a window of ``children + 1``
candidates holding at least one relevant one. Rewards: 1 when the completion picks a relevant
passage (``rewards.choice_reward``) plus the R1 format reward for
``<think>…</think><answer>…</answer>`` (``rewards.format_reward``). LoRA weights are merged into
the saved folder, which loads with ``mmrag.rerankers.load("rank-r1", model=OUT)``.
"""

from __future__ import annotations

from pathlib import Path

from mmrag.train import llm_common as common
from mmrag.train import trl_run
from mmrag.train.ranking_types import RankingExample

OPTIONS = {
    **trl_run.GRPO_OPTIONS,
    "lr": 1e-5,
    "lora_r": 16,
    "children": 19,  # the reranker's heap arity: a prompt shows children + 1 passages
    "max_words": 300,
    "format_weight": 1.0,  # weight of the format reward against the choice reward
    "shuffle": False,  # keep the first-stage order the reranker's heap sees; True: random order
}


def choice(completions: list, labels: list, **_: object) -> list[float]:
    """Reward for picking a relevant passage (TRL reward function: one float per completion)."""
    from mmrag.train.rewards import choice_reward

    return [choice_reward(c, len(lab), dict(enumerate(lab))) for c, lab in zip(completions, labels)]


def form(completions: list, **_: object) -> list[float]:
    """Reward for the ``<think>…</think><answer>…</answer>`` layout."""
    from mmrag.train.rewards import format_reward

    return [format_reward(c) for c in completions]


def prompts(examples: list[RankingExample], tok: object, opts: dict) -> list[dict]:
    """One GRPO row per example: the reranker's setwise prompt and the window's labels."""
    from mmrag.rerankers.rank_r1 import RankR1Reranker

    reranker = RankR1Reranker(model=opts["model"], children=int(opts["children"]), max_words=opts["max_words"])
    reranker._lm = (None, tok)  # prompts only need the tokenizer's chat template
    return common.prompt_rows(examples, int(opts["children"]) + 1, opts, reranker.prompt)


def train(examples: list[RankingExample], out: Path, options: dict) -> dict:
    """GRPO-train a causal LM as a setwise Rank-R1 reranker."""
    opts, started, model, tok = common.begin(options, OPTIONS)
    rows = prompts(examples, tok, opts)
    model, hist = trl_run.grpo(model, tok, rows, [choice, form], Path(out), opts,
                               weights=[1.0, float(opts["format_weight"])])
    result = common.summary("rank-r1", opts, started, len(examples), len(rows), **hist, reranker="rank-r1")
    return common.save(model, tok, Path(out), result)

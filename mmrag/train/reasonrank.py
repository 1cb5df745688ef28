"""``--method reasonrank``: ReasonRank's two stages on listwise windows.

1. Cold-start SFT (TRL ``SFTTrainer``) on the ``reasonrank`` reranker's own prompt, with the
   label order as the answer: ``<think> … </think> <answer>[2] > [1] > …</answer>``. ReasonRank
   distils a teacher's reasoning here; the labels give none, so the think part is left short
   (``think`` option) unless you train from completions of your own later.
2. GRPO (TRL ``GRPOTrainer``) with the multi-view ranking reward (``rewards.reasonrank_reward``:
   nDCG@10 + 0.2·Recall@10 + 0.1·RBO against the label order, 0 for a wrong id list, -1 for a
   broken format).

The saved folder loads with ``mmrag.rerankers.load("reasonrank", model=OUT)``.
"""

from __future__ import annotations

from pathlib import Path

from mmrag.train import llm_common as common
from mmrag.train import trl_run
from mmrag.train.ranking_types import RankingExample

OPTIONS = {
    **trl_run.GRPO_OPTIONS,
    "max_completion_length": 1024,
    "lr": 1e-6,  # GRPO learning rate
    "sft_steps": 100,  # cold-start steps (0 skips the stage)
    "sft_lr": 1e-5,
    "grpo_steps": None,  # default: max_steps / epochs
    "window": 20,
    "max_words": 300,
    "shuffle": False,
    "think": "",  # text inside <think> of the cold-start targets
}


def target(labels: list[int], think: str = "") -> str:
    """The cold-start completion: the label order in ReasonRank's answer layout."""
    from mmrag.train.rewards import label_order

    order = label_order(len(labels), dict(enumerate(labels)))
    return f"<think> {think} </think> <answer>" + " > ".join(f"[{i + 1}]" for i in order) + "</answer>"


def multi_view(completions: list, labels: list, **_: object) -> list[float]:
    """ReasonRank's multi-view ranking reward (TRL reward function)."""
    from mmrag.train.rewards import reasonrank_reward

    return [reasonrank_reward(c, len(lab), dict(enumerate(lab))) for c, lab in zip(completions, labels)]


def train(examples: list[RankingExample], out: Path, options: dict) -> dict:
    """Cold-start SFT, then GRPO with the multi-view reward; save for the ``reasonrank`` reranker."""
    opts, started, model, tok = common.begin(options, OPTIONS)
    from mmrag.rerankers.reasonrank import ReasonRankReranker

    window = int(opts["window"])
    reranker = ReasonRankReranker(model=opts["model"], window=window, step=max(1, window // 2),
                                  max_words=opts["max_words"])
    reranker._lm = (None, tok)  # prompts only need the tokenizer's chat template
    rows = common.prompt_rows(examples, window, opts, reranker.prompt)
    sft_loss: list[float] = []
    if int(opts["sft_steps"]) > 0:
        sft_rows = [{"prompt": r["prompt"], "completion": target(r["labels"], str(opts["think"]))} for r in rows]
        model, sft_loss = trl_run.sft(model, tok, sft_rows, Path(out), opts, max_steps=int(opts["sft_steps"]),
                                      lr=opts["sft_lr"])
    model, hist = trl_run.grpo(model, tok, rows, [multi_view], Path(out), opts, max_steps=opts["grpo_steps"])
    result = common.summary("reasonrank", opts, started, len(examples), len(rows), sft_loss=sft_loss, **hist,
                            reranker="reasonrank")
    return common.save(model, tok, Path(out), result)

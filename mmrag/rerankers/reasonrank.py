"""ReasonRank (Liu et al., 2025): reasoning listwise reranking, window 20 step 10.

The model reasons inside ``<think>`` and answers ``[3] > [1] > ...`` inside ``<answer>``.
Bracketed numbers inside passage text are rewritten ``(n)`` so they cannot pose as ids.
Real checkpoint: ``liuwenhan/reasonrank-7B`` (Qwen2.5-7B-Instruct based).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from mmrag.rerankers import hf
from mmrag.rerankers.listwise import listwise_prompt, parse_ranking
from mmrag.rerankers.rankgpt import RankGPTReranker
from mmrag.types import Candidate

REASON_SYSTEM = (
    "You are a search relevance expert who ranks passages for a query. First think step by step "
    "inside <think> </think> tags about what the query needs and what each passage offers. Then "
    "give the final ranking inside <answer> </answer> tags in the format [] > [], e.g., "
    "<answer>[2] > [1] > [3]</answer>."
)

_BRACKETED_NUM = re.compile(r"\[\s*(\d+)\s*\]")
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)


def neutralise_ids(text: str) -> str:
    """``[12]`` in passage text becomes ``(12)`` so it is not read as a passage id."""
    return _BRACKETED_NUM.sub(r"(\1)", text)


def answer_text(output: str) -> str:
    """The last ``<answer>…</answer>``; else the text after the last ``<answer>``; else what
    follows the reasoning."""
    found = _ANSWER.findall(output)
    if found:
        return found[-1]
    if "<answer>" in output:
        return output.rsplit("<answer>", 1)[1]
    return output


def parse_reasoned(output: str, n: int) -> list[int]:
    """A full permutation from a reasoning model's output."""
    text = answer_text(output)
    if text is output:
        return parse_ranking(output, n)  # no answer tag: whatever follows </think>
    return parse_ranking(text.replace("<think>", "").replace("</think>", ""), n)


class ReasonRankReranker(RankGPTReranker):
    """Reasoning listwise reranker with ``<think>``/``<answer>`` parsing."""

    name = "reasonrank"
    system = REASON_SYSTEM

    def __init__(self, model: str | None = None, *, window: int = 20, step: int = 10,
                 max_words: int | None = 300, max_new_tokens: int | None = 1024,
                 device: str | None = None, dtype: str | None = None, attn: str = "sdpa",
                 adapter: str | None = None, **server: Any):
        super().__init__(model, window=window, step=step, max_words=max_words, max_new_tokens=max_new_tokens,
                         device=device, dtype=dtype, attn=attn, adapter=adapter, **server)

    def passages(self, candidates: Sequence[Candidate]) -> list[str]:
        return [neutralise_ids(hf.truncate_words(c.text, self.max_words)) for c in candidates]

    def user_prompt(self, query: str, candidates: Sequence[Candidate]) -> str:
        labels = [str(i + 1) for i in range(len(candidates))]
        return listwise_prompt(query, self.passages(candidates), labels).replace(
            "Answer with the ranking only, without any explanation.",
            "Reason in <think> </think>, then write the ranking in <answer> </answer>.")

    def parse(self, text: str, n: int) -> list[int]:
        return parse_reasoned(text, n)

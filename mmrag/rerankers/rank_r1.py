"""Rank-R1 (Zhuang et al., 2025): setwise heapsort with a reasoning LLM.

Candidates form a heap with 19 children per node; each comparison asks which of a parent and its
(up to 19) children is most relevant, the model reasons in ``<think>`` and answers ``[k]`` in
``<answer>``. Sorting stops once the best ``top_k`` are extracted; the others follow in their
first-stage order. On an answer that names no valid document the parent stays on top.
Real checkpoint: LoRA ``ielabgroup/Rank-R1-7B-v0.1`` on ``Qwen/Qwen2.5-7B-Instruct``
(``model="Qwen/Qwen2.5-7B-Instruct", adapter="ielabgroup/Rank-R1-7B-v0.1"``, needs peft).
"""

from __future__ import annotations

from typing import Callable, Sequence

from mmrag.errors import ConfigError
from mmrag.rerankers import hf
from mmrag.rerankers.base import scored_from_order
from mmrag.rerankers.listwise import numbered_passages, parse_ids
from mmrag.rerankers.rankgpt import LLMWindowReranker
from mmrag.rerankers.reasonrank import answer_text, neutralise_ids
from mmrag.types import Candidate, Scored

R1_SYSTEM = (
    "A conversation between User and Assistant. The Assistant first reasons about the question "
    "and then answers. The reasoning goes inside <think> </think> tags and the answer inside "
    "<answer> </answer> tags, i.e. <think> reasoning </think> <answer> answer </answer>."
)


def setwise_prompt(query: str, passages: Sequence[str]) -> str:
    labels = [str(i + 1) for i in range(len(passages))]
    return (
        f'Given the query: "{query}", which of the following documents is most relevant?\n\n'
        f"{numbered_passages(passages, labels)}\n\n"
        "After reasoning, give only the label of the most relevant document in square brackets "
        "inside the answer tags, e.g. <think> ... </think> <answer>[3]</answer>."
    )


def parse_choice(output: str, n: int) -> int:
    """0-based index of the chosen document; 0 (the parent) when the answer names none."""
    ids = parse_ids(answer_text(output) if "<answer>" in output else output, n)
    return ids[0] if ids else 0


def heap_top(n: int, children: int, top_k: int, best_of: Callable[[list[int]], int]) -> list[int]:
    """Indices of the ``top_k`` best items, best first, by a ``children``-ary heapsort whose
    only comparison is ``best_of(group) -> position in group`` (the parent is ``group[0]``)."""
    arr = list(range(n))

    def sift(i: int, size: int) -> None:
        while True:
            first = children * i + 1
            kids = list(range(first, min(first + children, size)))
            if not kids:
                return
            group = [i] + kids
            pick = best_of([arr[j] for j in group])
            j = group[pick if 0 <= pick < len(group) else 0]
            if j == i:
                return
            arr[i], arr[j] = arr[j], arr[i]
            i = j

    for i in range((n - 2) // children, -1, -1):
        sift(i, n)
    out = []
    for size in range(n, max(n - top_k, 0), -1):
        out.append(arr[0])
        arr[0], arr[size - 1] = arr[size - 1], arr[0]
        sift(0, size - 1)
    return out


class RankR1Reranker(LLMWindowReranker):
    """Setwise heapsort reranker with reasoning (Rank-R1)."""

    name = "rank-r1"

    def __init__(self, model: str | None = None, *, adapter: str | None = None, children: int = 19,
                 top_k: int = 10, max_words: int | None = 300, max_new_tokens: int = 512,
                 device: str | None = None, dtype: str | None = None, attn: str = "sdpa"):
        if children < 1 or top_k < 1:
            raise ConfigError("rank-r1 needs children >= 1 and top_k >= 1")
        super().__init__(model, window=children + 1, step=1, max_words=max_words, device=device,
                         dtype=dtype, attn=attn, adapter=adapter)
        self.children = children
        self.top_k = top_k
        self.max_new_tokens = max_new_tokens
        self.last_output = ""

    def prompt(self, query: str, candidates: Sequence[Candidate]) -> str:
        _, tok = self.lm
        passages = [neutralise_ids(p) for p in self.passages(candidates)]
        return hf.chat_text(tok, [{"role": "system", "content": R1_SYSTEM},
                                  {"role": "user", "content": setwise_prompt(query, passages)}])

    def choose(self, query: str, candidates: list[Candidate]) -> int:
        """Position (0-based) of the most relevant of ``candidates`` by the LLM."""
        if len(candidates) < 2:
            return 0
        lm, tok = self.lm
        self.last_output = hf.generate_text(lm, tok, self.prompt(query, candidates), self.max_new_tokens)
        return parse_choice(self.last_output, len(candidates))

    def rank_window(self, query: str, candidates: list[Candidate]) -> list[int]:
        best = self.choose(query, candidates)
        return [best] + [i for i in range(len(candidates)) if i != best]

    def _rerank(self, query: str, candidates: list[Candidate]) -> list[Scored]:
        top = heap_top(len(candidates), self.children, self.top_k,
                       lambda group: self.choose(query, [candidates[i] for i in group]))
        return scored_from_order(candidates, top)

"""InsertRank: the RankGPT listwise prompt with each passage's first-stage score written after it.

``scores="raw"`` writes the score as it is, ``"minmax"`` scales the query's candidates to 0–1,
``"percent"`` to 0–100 (min–max over all candidates of the query, not per window).
"""

from __future__ import annotations

from typing import Any, Sequence

from mmrag.errors import ConfigError
from mmrag.rerankers import hf
from mmrag.rerankers.listwise import numbered_passages
from mmrag.rerankers.rankgpt import RankGPTReranker
from mmrag.types import Candidate, Scored

SCORE_FORMATS = ("raw", "minmax", "percent")


def format_scores(values: Sequence[float], how: str, lo: float, hi: float) -> list[str]:
    """Scores as the prompt shows them (3 decimals raw/0–1, 1 decimal for 0–100)."""
    if how == "raw":
        return [f"{v:.3f}" for v in values]
    span = hi - lo
    unit = [(v - lo) / span if span > 0 else 1.0 for v in values]
    if how == "minmax":
        return [f"{u:.3f}" for u in unit]
    return [f"{100 * u:.1f}" for u in unit]


class InsertRankReranker(RankGPTReranker):
    """Listwise generation with first-stage scores in the prompt."""

    name = "insertrank"

    def __init__(self, model: str | None = None, *, scores: str = "raw", score_name: str = "BM25",
                 window: int = 20, step: int = 10, max_words: int | None = 300,
                 max_new_tokens: int | None = None, device: str | None = None, dtype: str | None = None,
                 attn: str = "sdpa", adapter: str | None = None, **server: Any):
        if scores not in SCORE_FORMATS:
            raise ConfigError(f"insertrank scores must be one of {', '.join(SCORE_FORMATS)}, got {scores!r}")
        super().__init__(model, window=window, step=step, max_words=max_words, max_new_tokens=max_new_tokens,
                         device=device, dtype=dtype, attn=attn, adapter=adapter, **server)
        self.scores = scores
        self.score_name = score_name
        self._range = (0.0, 0.0)

    def _rerank(self, query: str, candidates: list[Candidate]) -> list[Scored]:
        values = [c.score for c in candidates]
        self._range = (min(values), max(values))
        return super()._rerank(query, candidates)

    def user_prompt(self, query: str, candidates: Sequence[Candidate]) -> str:
        n = len(candidates)
        shown = format_scores([c.score for c in candidates], self.scores, *self._range)
        texts = [f"{hf.truncate_words(c.text, self.max_words)}\n{self.score_name} score: {s}"
                 for c, s in zip(candidates, shown)]
        labels = [str(i + 1) for i in range(n)]
        return (
            f"I will provide you with {n} passages, each indicated by number identifier [] and followed "
            f"by its {self.score_name} score from a first-stage retriever. "
            f"Rank the passages based on their relevance to query: {query}.\n\n"
            f"{numbered_passages(texts, labels)}\n\n"
            f"Search query: {query}\n"
            f"Rank the {n} passages above from most to least relevant; the {self.score_name} scores are "
            "a hint, not the answer. The output format should be [] > [], e.g., [1] > [2]. "
            "Answer with the ranking only, without any explanation."
        )

"""The Reranker contract: ``rerank`` returns a permutation of its input, whatever a model says."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np

from mmrag.types import Candidate, Scored


def scored_from_scores(candidates: Sequence[Candidate], scores: Sequence[float]) -> list[Scored]:
    """Sort by score, best first; ties keep the input order (stable)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(candidates),):
        raise ValueError(f"got {s.shape} scores for {len(candidates)} candidates")
    s = np.where(np.isnan(s), -np.inf, s)
    order = np.argsort(-s, kind="stable")
    return [Scored(candidates[i], float(s[i]), rank) for rank, i in enumerate(order, 1)]


def scored_from_order(candidates: Sequence[Candidate], order: Sequence[int]) -> list[Scored]:
    """Turn a (possibly broken) ranking of indices into a full permutation.

    Out-of-range and repeated indices are dropped; indices never mentioned follow in their
    input order. The score is a descending rank score (n, n-1, ..., 1).
    """
    n = len(candidates)
    seen: set[int] = set()
    clean: list[int] = []
    for i in order:
        i = int(i)
        if 0 <= i < n and i not in seen:
            seen.add(i)
            clean.append(i)
    clean.extend(i for i in range(n) if i not in seen)
    return [Scored(candidates[i], float(n - r), r + 1) for r, i in enumerate(clean)]


def ensure_permutation(candidates: Sequence[Candidate], scored: Sequence[Scored]) -> list[Scored]:
    """Repair a backend's output so it holds every input candidate exactly once."""
    index = {id(c): i for i, c in enumerate(candidates)}
    seen: set[int] = set()
    out: list[Scored] = []
    for s in scored:
        i = index.get(id(s.candidate))
        if i is None or i in seen:
            continue
        seen.add(i)
        out.append(s)
    floor = min((s.score for s in out), default=0.0)
    for i, c in enumerate(candidates):
        if i not in seen:
            floor -= 1.0
            out.append(Scored(c, floor))
    for r, s in enumerate(out, 1):
        s.rank = r
    return out


class Reranker(ABC):
    """Reorders candidates for a query. Subclasses implement ``_rerank`` (or ``score``)."""

    name: str = ""

    def rerank(self, query: str, candidates: Sequence[Candidate], top_k: int | None = None) -> list[Scored]:
        """All candidates, best first (the first ``top_k`` if given); never loses or repeats one."""
        cands = list(candidates)
        if not cands:
            return []
        result = ensure_permutation(cands, self._rerank(query, cands))
        return result[:top_k] if top_k else result

    def _rerank(self, query: str, candidates: list[Candidate]) -> list[Scored]:
        return scored_from_scores(candidates, self.score(query, candidates))

    @abstractmethod
    def score(self, query: str, candidates: list[Candidate]) -> Sequence[float]:
        """One relevance score per candidate (higher is better). Listwise families may
        override ``_rerank`` instead and return rank-derived scores here."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Reranker":
        """``{"name": ..., "options": {...}}`` or ``{"name": ..., **options}`` → a reranker."""
        from mmrag.rerankers import load

        cfg = dict(config)
        name = cfg.pop("name")
        options = cfg.pop("options", {}) or {}
        options.update(cfg)
        return load(name, **options)

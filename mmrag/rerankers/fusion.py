"""Fusion: combine several rerankers and the first-stage score into one ranking.

``method="weighted"``: per query, each component's scores are normalised (z-score by default,
or min–max) and summed with ``weights``; the first-stage score joins with ``first_stage_weight``.
``method="rrf"``: reciprocal-rank fusion, sum of ``w / (rrf_k + rank)``.
Components are registry names or ``{"name": ..., "options": {...}}`` mappings, e.g.
``FusionReranker(["bi-encoder", "splade"], weights=[0.4, 0.6], first_stage_weight=0.2)``.
``runtime`` (onnx-int8 | onnx | torch) is handed to the components that take one and do not set
their own.
``cascade_depth=N`` (default "auto": 60 for the default pair with its learned weights, else None)
makes the fusion a cascade: the components named in ``cascade_first`` (SPLADE
by default, ~10x cheaper than MiniLM) and the first stage score every candidate, their weighted
fusion picks the top N, and only those N are scored by the other components and fused in full;
the rest follow in their cheap order (``cascade_order``). None scores every candidate with every
component.
The weights of the default preset were learned on SciFact *train* queries
(benchmarks/fusion_weights.py), never on the sets we report.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mmrag.errors import ConfigError
from mmrag.rerankers.base import Reranker
from mmrag.types import Candidate

METHODS = ("weighted", "rrf")
NORMALISE = ("zscore", "minmax", "none")


def normalise(scores: np.ndarray, how: str) -> np.ndarray:
    """Per-query normalisation of one component's scores (constant scores become 0)."""
    s = np.asarray(scores, dtype=np.float64)
    if how == "none" or s.size == 0:
        return s
    if how == "minmax":
        span = s.max() - s.min()
        return (s - s.min()) / span if span > 0 else np.zeros_like(s)
    std = s.std()
    return (s - s.mean()) / std if std > 0 else np.zeros_like(s)


def rrf_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """1 / (k + rank) with rank 1 for the best score (ties broken by input order)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return 1.0 / (k + ranks)


# benchmarks/fusion_weights.py on all 809 SciFact train queries, BM25 top-100 (nDCG@10 0.746 there):
# (component weights, first-stage weight).
LEARNED_WEIGHTS: dict[tuple[str, ...], tuple[tuple[float, ...], float]] = {
    ("bi-encoder", "splade"): ((0.55, 0.2), 0.25),
}


# The cascade depth for the default pair, picked on the same 300 SciFact train queries as the smallest
# depth within 0.002 nDCG@10 of scoring every candidate (benchmarks/fusion_cascade.py); BM25 top-100
# nDCG@10, all candidates -> 60: SciFact train 0.7269 -> 0.7253, DL19 0.6783 -> 0.6829, SciFact test
# 0.7417 -> 0.7417, NFCorpus test 0.3591 -> 0.3588. MiniLM then reads 60 of 100 passages.
LEARNED_CASCADE: dict[tuple[str, ...], int] = {("bi-encoder", "splade"): 60}


def fuse(columns: Sequence[np.ndarray], weights: Sequence[float], method: str = "weighted",
         how: str = "zscore", rrf_k: int = 60) -> np.ndarray:
    """One fused score per candidate from per-component score columns."""
    total = np.zeros(len(columns[0]) if columns else 0)
    for col, w in zip(columns, weights):
        if w == 0:
            continue
        part = rrf_scores(col, rrf_k) if method == "rrf" else normalise(col, how)
        total += w * part
    return total


def cascade_order(columns: Sequence[np.ndarray], weights: Sequence[float], cheap: Sequence[bool], depth: int | None,
                  method: str = "weighted", how: str = "zscore", rrf_k: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """(candidate indices best first, their scores) of a cascade over full score ``columns``
    (only the rows of the cheap columns outside the top ``depth`` are read).

    The cheap columns' fusion ranks every candidate; the top ``depth`` of it are fused with every
    column (normalised over those rows only) and placed first, the rest follow in the cheap order
    with scores below the lowest fused one. ``depth`` None or >= the candidates: a plain ``fuse``.
    """
    n = len(columns[0]) if columns else 0
    if depth is None or depth >= n:
        fused = fuse(columns, weights, method, how, rrf_k)
        order = np.argsort(-fused, kind="stable")
        return order, fused[order]
    cheap_w = [w if c else 0.0 for w, c in zip(weights, cheap)]
    cheap_score = fuse(columns, cheap_w, method, how, rrf_k)
    by_cheap = np.argsort(-cheap_score, kind="stable")
    top, rest = by_cheap[:depth], by_cheap[depth:]
    fused_top = fuse([np.asarray(c)[top] for c in columns], weights, method, how, rrf_k)
    top_order = np.argsort(-fused_top, kind="stable")
    top_scores = fused_top[top_order]
    floor = (top_scores.min() if len(top_scores) else 0.0) - 1.0
    rest_scores = cheap_score[rest] - (cheap_score[rest].max() if len(rest) else 0.0) + floor
    return np.concatenate([top[top_order], rest]), np.concatenate([top_scores, rest_scores])


def _component(spec: Any) -> tuple[str, dict]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict) and "name" in spec:
        opts = dict(spec)
        name = opts.pop("name")
        opts.update(opts.pop("options", {}) or {})
        return name, opts
    raise ConfigError(f"fusion component must be a reranker name or {{name, options}}, got {spec!r}")


class FusionReranker(Reranker):
    """Weighted or RRF combination of other rerankers and the first-stage score."""

    name = "fusion"

    def __init__(self, rerankers: Sequence[Any] = ("bi-encoder", "splade"), *, method: str = "weighted",
                 weights: Sequence[float] | None = None, first_stage_weight: float | None = None,
                 normalize: str = "zscore", rrf_k: int = 60, runtime: str | None = None,
                 cascade_depth: int | None | str = "auto", cascade_first: Sequence[str] = ("splade",)):
        import inspect

        from mmrag.rerankers import REGISTRY, load

        if method not in METHODS:
            raise ConfigError(f"fusion method must be one of {', '.join(METHODS)}, got {method!r}")
        if normalize not in NORMALISE:
            raise ConfigError(f"fusion normalize must be one of {', '.join(NORMALISE)}, got {normalize!r}")
        specs = [_component(s) for s in rerankers]
        if any(n == "fusion" for n, _ in specs):
            raise ConfigError("fusion cannot contain another fusion")
        # Unset weights: the ones learned on SciFact train for the default pair (so `--rerank
        # fusion` is the measured best CPU fusion), equal weights for any other combination.
        bare = tuple(n for n, o in specs if not o)  # components named without options of their own
        learned = LEARNED_WEIGHTS.get(bare)
        learned_depth = LEARNED_CASCADE.get(bare) if weights is None and first_stage_weight is None else None
        if weights is None:
            weights = learned[0] if learned and len(specs) == len(learned[0]) else [1.0] * len(specs)
        if first_stage_weight is None:
            first_stage_weight = learned[1] if learned and len(specs) == len(learned[0]) else 0.0
        weights = list(weights)
        if len(weights) != len(specs):
            raise ConfigError(f"fusion has {len(specs)} rerankers but {len(weights)} weights")
        if not specs and first_stage_weight == 0:
            raise ConfigError("fusion needs at least one reranker or a first_stage_weight")
        if runtime is not None:
            from mmrag.encoders.onnx_runtime import check_runtime

            check_runtime(runtime)
            specs = [(n, o if "runtime" in o or "runtime" not in inspect.signature(REGISTRY.get(n).resolve()).parameters
                      else {**o, "runtime": runtime}) for n, o in specs]
        self.components = [load(n, **o) for n, o in specs]
        self.component_names = [n for n, _ in specs]
        self.weights = [float(w) for w in weights]
        self.first_stage_weight = float(first_stage_weight)
        self.method = method
        self.normalize = normalize
        self.rrf_k = rrf_k
        if cascade_depth == "auto":  # the learned depth for the default pair, else every candidate
            cascade_depth = learned_depth
        if cascade_depth is not None and (isinstance(cascade_depth, bool) or not isinstance(cascade_depth, int)
                                          or cascade_depth < 1):
            raise ConfigError(f"fusion cascade_depth must be a positive whole number or null, got {cascade_depth!r}")
        unknown = set(cascade_first) - set(self.component_names)
        if cascade_depth is not None and unknown:
            raise ConfigError(f"fusion cascade_first names {sorted(unknown)}, which are not among its rerankers "
                              f"{self.component_names}")
        self.cascade_depth = cascade_depth
        self.cascade_first = tuple(cascade_first)

    def cheap_mask(self) -> list[bool]:
        """Per score column (components, then the first stage): scored for every candidate?"""
        return [n in self.cascade_first for n in self.component_names] + [True]

    def component_scores(self, query: str, candidates: list[Candidate]) -> list[np.ndarray]:
        """Raw score columns: one per component (skipping zero weights), then the first stage."""
        cols = [np.asarray(r.score(query, candidates), dtype=np.float64) if w else np.zeros(len(candidates))
                for r, w in zip(self.components, self.weights)]
        cols.append(np.asarray([c.score for c in candidates], dtype=np.float64))
        return cols

    def _cascade_columns(self, query: str, candidates: list[Candidate]) -> list[np.ndarray]:
        """Full columns for the cheap components; the others scored on the cheap top only (NaN elsewhere)."""
        n = len(candidates)
        cheap = self.cheap_mask()
        cols: list[np.ndarray] = [np.zeros(n) for _ in self.components]
        for i, (r, w) in enumerate(zip(self.components, self.weights)):
            if w and cheap[i]:
                cols[i] = np.asarray(r.score(query, candidates), dtype=np.float64)
        cols.append(np.asarray([c.score for c in candidates], dtype=np.float64))
        cheap_w = [w if c else 0.0 for w, c in zip(self.weights + [self.first_stage_weight], cheap)]
        top = np.argsort(-fuse(cols, cheap_w, self.method, self.normalize, self.rrf_k), kind="stable")[:self.cascade_depth]
        subset = [candidates[i] for i in top]
        for i, (r, w) in enumerate(zip(self.components, self.weights)):
            if w and not cheap[i]:
                cols[i] = np.full(n, np.nan)
                cols[i][top] = np.asarray(r.score(query, subset), dtype=np.float64)
        return cols

    def score(self, query: str, candidates: list[Candidate]) -> list[float]:
        if self.cascade_depth is None or self.cascade_depth >= len(candidates):
            cols = self.component_scores(query, candidates)
            return fuse(cols, self.weights + [self.first_stage_weight], self.method, self.normalize,
                        self.rrf_k).tolist()
        cols = self._cascade_columns(query, candidates)
        order, scores = cascade_order(cols, self.weights + [self.first_stage_weight], self.cheap_mask(),
                                      self.cascade_depth, self.method, self.normalize, self.rrf_k)
        out = np.empty(len(candidates))
        out[order] = scores
        return out.tolist()

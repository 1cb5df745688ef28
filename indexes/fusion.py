"""Fusing per-channel scores (each vector field and BM25) of one candidate set.

Every channel has scored every candidate exactly (no zero-filling of items a channel did not
retrieve), so fusion compares like with like:
- ``minmax``: each channel rescaled to [0, 1] over the candidates, then a weighted mean;
- ``rrf``: reciprocal rank fusion, sum of ``w / (k + rank)``.
Weights are by channel name (a field's name, or "bm25"); a missing weight is 1.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def weights_for(channels: list[str], weights: Mapping[str, float]) -> np.ndarray:
    w = np.array([float(weights.get(c, 1.0)) for c in channels], dtype=np.float64)
    if (w < 0).any():
        raise ValueError("fusion weights must be non-negative")
    return w


def minmax(scores: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted mean of each channel's min–max-normalised scores (a constant channel adds 0)."""
    channels = list(scores)
    w = weights_for(channels, weights)
    total = np.zeros(len(next(iter(scores.values()))) if scores else 0, dtype=np.float64)
    for c, wc in zip(channels, w):
        s = np.asarray(scores[c], dtype=np.float64)
        lo, hi = (s.min(), s.max()) if len(s) else (0.0, 0.0)
        if hi > lo:
            total += wc * (s - lo) / (hi - lo)
    return total / w.sum() if w.sum() > 0 else total


def ranks(s: np.ndarray) -> np.ndarray:
    """1-based rank of each score, best first; ties share the better rank's order (stable)."""
    order = np.argsort(-np.asarray(s, dtype=np.float64), kind="stable")
    r = np.empty(len(s), dtype=np.int64)
    r[order] = np.arange(1, len(s) + 1)
    return r


def rrf(scores: Mapping[str, np.ndarray], weights: Mapping[str, float], k: int = 60) -> np.ndarray:
    """Reciprocal rank fusion over the candidates."""
    channels = list(scores)
    w = weights_for(channels, weights)
    total = np.zeros(len(next(iter(scores.values()))) if scores else 0, dtype=np.float64)
    for c, wc in zip(channels, w):
        total += wc / (k + ranks(scores[c]))
    return total


def fuse(scores: Mapping[str, np.ndarray], method: str, weights: Mapping[str, float], rrf_k: int = 60) -> np.ndarray:
    if len(scores) == 1:
        return np.asarray(next(iter(scores.values())), dtype=np.float64)
    if method == "rrf":
        return rrf(scores, weights, rrf_k)
    return minmax(scores, weights)

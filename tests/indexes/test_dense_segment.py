"""Flat segments on the CPU are scanned by NumPy: the same top k as FAISS's exact IndexFlatIP."""

from __future__ import annotations

import numpy as np
import pytest

from mmrag.config import IndexConfig
from mmrag.indexes.dense import DenseSegment, build_segment


def _segment(tmp_path, vectors: np.ndarray, ids: np.ndarray) -> DenseSegment:
    path, kind = build_segment(tmp_path, "seg-text-000001-test", "text", ids, vectors, IndexConfig(dense="flat"))
    assert kind == "flat"
    return DenseSegment(path, IndexConfig(dense="flat"))


@pytest.mark.parametrize("k", [1, 10, 100, 499, 500, 800])
def test_numpy_scan_gives_faiss_flat_results(tmp_path, k):
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(k)
    vectors = rng.standard_normal((500, 48)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = rng.permutation(10_000)[:500].astype(np.int64)
    seg = _segment(tmp_path, vectors, ids)
    assert seg._matrix is not None and seg.index is None
    ref = faiss.IndexFlatIP(48)
    ref.add(vectors[np.argsort(ids)])
    for q in rng.standard_normal((5, 48)).astype(np.float32):
        got_ids, got_scores = seg.search(q, k)
        d, i = ref.search(q.reshape(1, -1), min(k, 500))
        np.testing.assert_array_equal(got_ids, np.sort(ids)[i[0]])
        np.testing.assert_allclose(got_scores, d[0], rtol=1e-5, atol=1e-6)


def test_ties_at_the_cut_go_to_the_lower_rows_and_order_is_stable(tmp_path):
    vectors = np.zeros((8, 4), np.float32)
    vectors[:, 0] = [0.5, 1.0, 0.5, 0.5, 0.2, 0.5, 0.9, 0.5]
    seg = _segment(tmp_path, vectors, np.arange(10, 18, dtype=np.int64))
    ids, scores = seg.search(np.array([1, 0, 0, 0], np.float32), 4)
    assert ids.tolist() == [11, 16, 10, 12] and scores.tolist() == pytest.approx([1.0, 0.9, 0.5, 0.5])
    assert seg.search(np.array([1, 0, 0, 0], np.float32), 0)[0].size == 0

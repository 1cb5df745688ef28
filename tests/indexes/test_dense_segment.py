"""Dense segments rescore from the vectors FAISS already holds (flat, HNSW), else from vectors.npy."""

from __future__ import annotations

import numpy as np
import pytest

from mmrag.config import IndexConfig
from mmrag.indexes.dense import DenseSegment, build_segment


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_rescoring_rows_are_the_stored_vectors(tmp_path, kind):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    n = 12_000 if kind == "ivfpq" else 600  # IVF-PQ needs enough points to train
    vectors = rng.standard_normal((n, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = rng.permutation(5 * n)[:n].astype(np.int64)
    cfg = IndexConfig(dense=kind, pq_m=8)
    path, got_kind = build_segment(tmp_path, f"seg-text-000001-{kind}", "text", ids, vectors, cfg)
    assert got_kind == kind
    seg = DenseSegment(path, cfg)
    on_disk = np.load(path / "vectors.npy", allow_pickle=False)
    # one copy in memory for flat and HNSW (FAISS's own), the memory-mapped file for IVF-PQ
    assert isinstance(seg.vectors, np.memmap) == (kind == "ivfpq")
    rows = rng.integers(0, n, 50)
    np.testing.assert_array_equal(seg.vectors_of(rows), on_disk[rows])
    np.testing.assert_array_equal(seg.ids[rows], np.sort(ids)[rows])
    q = vectors[7]
    best_ids, best_scores = seg.search(q, 5)
    assert int(best_ids[0]) == int(np.sort(ids)[np.argmax(on_disk @ q)]) or kind == "ivfpq"
    r, found = seg.locate(best_ids)
    assert found.all()
    np.testing.assert_allclose(seg.vectors_of(r) @ q, on_disk[r] @ q, rtol=1e-6)

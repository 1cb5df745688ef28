"""MultiVectorStore: MaxSim against an independent einsum, memory-mapped reload, atomic saves, pooling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmrag.errors import IndexCorrupt, IndexMismatch, IndexNotFound, QueryError
from mmrag.indexes.multivector import MultiVectorStore, pool_tokens


def _items(n: int, dim: int = 16, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(1, 30)), dim)).astype(np.float32) for _ in range(n)]


def _einsum_maxsim(q: np.ndarray, items: list[np.ndarray]) -> np.ndarray:
    return np.array([np.einsum("qd,td->qt", q, m).max(axis=1).sum() for m in items])


def test_search_equals_einsum_maxsim_across_shards():
    mats = _items(60)
    store = MultiVectorStore(16, "float32")
    store.add(list(range(0, 30)), mats[:30])
    store.add(list(range(30, 60)), mats[30:])  # a second shard
    q = np.random.default_rng(1).normal(size=(7, 16)).astype(np.float32)
    ref = _einsum_maxsim(q, mats)
    ids, scores = store.search(q, k=60)
    assert list(ids) == list(np.argsort(-ref, kind="stable"))
    np.testing.assert_allclose(scores, ref[ids], rtol=1e-5, atol=1e-5)
    assert list(store.search(q[None], k=5)[0]) == list(ids[:5])  # a one-query batch, as encode_query gives


def test_block_streaming_matches_unblocked(monkeypatch):
    import mmrag.indexes.multivector as mv

    mats = _items(40, seed=3)
    store = MultiVectorStore(16, "float32")
    store.add(list(range(40)), mats)
    q = np.random.default_rng(2).normal(size=(3, 16)).astype(np.float32)
    full = store.search(q, 40)
    monkeypatch.setattr(mv, "_BLOCK_TOKENS", 7)  # force many small blocks, some single oversized items
    blocked = store.search(q, 40)
    assert list(full[0]) == list(blocked[0])
    np.testing.assert_allclose(full[1], blocked[1], rtol=1e-5)


def test_candidate_ids_restrict_and_unknown_ids_are_ignored():
    mats = _items(20)
    store = MultiVectorStore(16, "float32")
    store.add(list(range(100, 120)), mats)
    q = np.random.default_rng(4).normal(size=(4, 16)).astype(np.float32)
    cand = np.array([105, 117, 101, 999])
    ids, scores = store.search(q, k=10, candidate_ids=cand)
    assert set(ids) == {105, 117, 101}
    ref = _einsum_maxsim(q, [mats[5], mats[17], mats[1]])
    assert list(ids) == [[105, 117, 101][i] for i in np.argsort(-ref)]


def test_float16_storage_is_close_to_float32():
    mats = [m / np.linalg.norm(m, axis=1, keepdims=True) for m in _items(30, seed=5)]
    q = mats[0][:5]
    s32, s16 = MultiVectorStore(16, "float32"), MultiVectorStore(16, "float16")
    for s in (s32, s16):
        s.add(list(range(30)), mats)
    a, b = s32.scores(q), s16.scores(q)
    np.testing.assert_allclose(a[1], b[1], atol=5e-3)
    assert s16.get(3).dtype == np.float32 and s16._shards[next(iter(s16._shards))].data.dtype == np.float16


def test_save_load_is_memory_mapped_and_round_trips(tmp_path):
    mats = _items(25)
    store = MultiVectorStore(16)
    store.add(list(range(25)), mats)
    store.delete([3, 4])
    store.save(tmp_path / "mv")
    loaded = MultiVectorStore.load(tmp_path / "mv")
    assert len(loaded) == 23 and 3 not in loaded and 5 in loaded
    assert all(isinstance(s.data, np.memmap) for s in loaded._shards.values())
    q = mats[7][:3]
    assert list(loaded.search(q, 5)[0]) == list(store.search(q, 5)[0])
    for f in (tmp_path / "mv").glob("*.npy"):  # no pickles anywhere
        np.load(f, allow_pickle=False)


def test_incremental_save_keeps_old_shards_and_leaves_no_temp(tmp_path):
    mats = _items(30)
    store = MultiVectorStore(16)
    store.add(list(range(15)), mats[:15])
    store.save(tmp_path / "mv")
    first = {p.name for p in (tmp_path / "mv").glob("shard-*.npy")}
    store = MultiVectorStore.load(tmp_path / "mv")
    store.add(list(range(15, 30)), mats[15:])
    store.add([0], [mats[29]])  # replace an existing id
    store.save(tmp_path / "mv")
    names = {p.name for p in (tmp_path / "mv").glob("shard-*.npy")}
    assert first < names  # the old shard was carried over, not rewritten under a new name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mv"]  # no temp or old folders left
    again = MultiVectorStore.load(tmp_path / "mv")
    assert len(again) == 30
    np.testing.assert_allclose(again.get(0), mats[29].astype(np.float16).astype(np.float32))


def test_compaction_drops_dead_tokens(tmp_path):
    mats = _items(10)
    store = MultiVectorStore(16)
    store.add(list(range(10)), mats)
    store.delete(range(8))
    store.save(tmp_path / "mv")
    (shard,) = (tmp_path / "mv").glob("shard-*.npy")
    assert np.load(shard, mmap_mode="r").shape[0] == mats[8].shape[0] + mats[9].shape[0]


def test_token_pooling_reduces_tokens_and_means_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)).astype(np.float32)
    tokens = np.repeat(centres, 6, axis=0) + 1e-3 * rng.normal(size=(24, 16)).astype(np.float32)
    pooled = pool_tokens(tokens, pool_factor=6)
    assert pooled.shape == (4, 16)
    # each pooled row is the mean of one centre's six tokens
    assert np.abs(np.sort(pooled, axis=0) - np.sort(centres, axis=0)).max() < 1e-2
    store = MultiVectorStore(16, "float32", pool_factor=6)
    store.add([1], [tokens])
    assert store.get(1).shape[0] == 4


def test_errors_say_what_is_wrong(tmp_path):
    store = MultiVectorStore(8)
    with pytest.raises(IndexMismatch):
        store.add([1], [np.zeros((3, 9), np.float32)])
    store.add([1], [np.ones((3, 8), np.float32)])
    with pytest.raises(QueryError):
        store.search(np.ones((2, 5), np.float32), 3)
    with pytest.raises(IndexNotFound):
        MultiVectorStore.load(tmp_path / "missing")
    store.save(tmp_path / "mv")
    manifest = json.loads((tmp_path / "mv" / "manifest.json").read_text())
    manifest["count"] = 5
    (tmp_path / "mv" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt):
        MultiVectorStore.load(tmp_path / "mv")

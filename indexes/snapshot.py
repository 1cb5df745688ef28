"""One consistent, read-only view of an index: live ids, vector segments, BM25, and search.

A snapshot is read inside one SQLite read transaction, so its segment list, BM25 folder and
live chunk/page ids all belong to the same commit. Search returns page ids with per-channel
scores; `mmrag.indexes.index.Index` turns them into `Hit`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmrag.config import FieldConfig, IndexConfig
from mmrag.errors import IndexCorrupt
from mmrag.indexes import fusion, integrity
from mmrag.indexes.dense import DenseSegment
from mmrag.indexes.docstore import DocStore
from mmrag.indexes.layout import BM25_DIR, SEGMENTS
from mmrag.indexes.sparse import SparseState

BM25 = "bm25"
BM25_PAGES = "bm25-page"  # BM25 over whole page texts (index.page_bm25)


@dataclass
class PageScores:
    """Search output before it becomes hits: best pages first."""

    page_ids: np.ndarray
    scores: np.ndarray  # fused
    channels: dict[str, np.ndarray]  # raw page score per channel, aligned with page_ids
    best_chunk: dict[int, int] = field(default_factory=dict)  # page id → chunk id


class MultiVectorSegment:
    """A multi-vector segment: the other engineer's MultiVectorStore, memory-mapped."""

    kind = "multivector"

    def __init__(self, path: Path):
        from mmrag.indexes.multivector import MultiVectorStore

        self.path = path
        self.store = MultiVectorStore.load(path)
        self.ids = np.load(path / "mmrag_ids.npy", allow_pickle=False)

    def __len__(self) -> int:
        return len(self.ids)


def load_segment(root: Path, s: dict, cfg: IndexConfig) -> Any:
    """A live segment, its files checked against the doc store's record before they are mapped."""
    path = root / SEGMENTS / s["name"]
    integrity.check_folder(path, s["checksums"], root, full=cfg.verify_checksums)
    if s["kind"] == "multivector":
        return integrity.load_checked(path, root, lambda: MultiVectorSegment(path))
    seg = integrity.load_checked(path, root, lambda: DenseSegment(path, cfg))
    if len(seg.ids) != int(s["count"]) or (len(seg.ids) > 1 and not bool((seg.ids[1:] > seg.ids[:-1]).all())):
        raise IndexCorrupt(f"{path / 'ids.npy'} does not hold {s['count']} ascending ids; "
                           f"{integrity.repair_hint(root)}")
    return seg


def load_sparse(root: Path, path: Path, checksums: dict | None, full: bool = True) -> SparseState:
    if checksums:
        integrity.check_folder(path, checksums, root, full=full)
    return integrity.load_checked(path, root, lambda: SparseState(path))


def _live_in(ids: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Mask of ``ids`` present in the sorted array ``live``."""
    if not len(live) or not len(ids):
        return np.zeros(len(ids), dtype=bool)
    pos = np.minimum(np.searchsorted(live, ids), len(live) - 1)
    return live[pos] == ids


class Snapshot:
    def __init__(self, root: Path, store: DocStore, fields: list[FieldConfig], cfg: IndexConfig,
                 manifest: dict | None = None, milvus: Any = None):
        self.root = root
        self.fields = {f.name: f for f in fields}
        self.cfg = cfg
        store.begin()
        try:
            self.commit = int(store.get_meta("commit", 0))
            bm25_name = store.get_meta("bm25")
            pages_name = store.get_meta("bm25_pages") if cfg.page_bm25 else None
            segs = store.segments()
            sums = {"checksums": (bm25_name, store.get_meta("bm25_checksums")),
                    "pages_checksums": (pages_name, store.get_meta("bm25_pages_checksums"))}
            self.chunk_ids, self.chunk_pages = store.chunk_page_map()
            self.page_ids = store.page_ids()
            in_milvus = None
            if milvus is not None:  # vectors in Milvus: one channel per field, bounded by this commit's ids
                from mmrag.indexes.milvus import snapshot_fields

                multi = {f["name"]: bool((f.get("identity") or {}).get("multivector"))
                         for f in (manifest or {}).get("fields", [])}
                in_milvus = snapshot_fields(milvus, store, fields, multi)
        finally:
            store.rollback()
        # chunks grouped by page: page_sorted[i] owns chunks chunk_order[starts[i]:starts[i+1]]
        self.chunk_order = np.argsort(self.chunk_pages, kind="stable")
        grouped = self.chunk_pages[self.chunk_order]
        self.page_sorted, self.page_starts = np.unique(grouped, return_index=True)
        self.page_starts = np.append(self.page_starts, len(grouped))
        if manifest is not None:
            integrity.compare_manifest(root, manifest, self.commit, segs, sums)
        self.segments: dict[str, list[Any]] = {name: [] for name in self.fields}
        for s in segs:
            self.segments.setdefault(s["field"], []).append(load_segment(root, s, cfg))
        for name, channel in (in_milvus or {}).items():
            self.segments[name] = [channel]
        self.sparse = self.sparse_pages = None
        for attr, key in (("sparse", "checksums"), ("sparse_pages", "pages_checksums")):
            name, checksums = sums[key]
            if name and checksums is None and manifest is not None:  # indexes from before the doc store kept them
                if manifest.get("sparse", {}).get("folder" if key == "checksums" else "pages_folder") == name:
                    checksums = manifest["sparse"].get(key)
            if name:
                setattr(self, attr, load_sparse(root, root / BM25_DIR / name, checksums,
                                                   cfg.verify_checksums))
        self._dead_rows: dict[int, int] = {}

    # --- helpers -----------------------------------------------------------------------------
    def live_ids(self, name: str) -> np.ndarray:
        return self.chunk_ids if self.fields[name].input == "chunks" else self.page_ids

    def chunks_of(self, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ids of ``pages`` (grouped by page, in page order) and the group start of each page."""
        pages = np.asarray(pages, dtype=np.int64)
        if not len(self.page_sorted) or not len(pages):
            return np.zeros(0, np.int64), np.zeros(len(pages) + 1, np.int64)
        pos = np.minimum(np.searchsorted(self.page_sorted, pages), len(self.page_sorted) - 1)
        has = self.page_sorted[pos] == pages
        first = self.page_starts[pos]
        lens = np.where(has, self.page_starts[pos + 1] - first, 0)
        starts = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        rows = np.repeat(first - starts[:-1], lens) + np.arange(starts[-1])
        return self.chunk_ids[self.chunk_order[rows]], starts

    def pages_of(self, chunk_ids: np.ndarray) -> np.ndarray:
        pos = np.minimum(np.searchsorted(self.chunk_ids, chunk_ids), max(len(self.chunk_ids) - 1, 0))
        return self.chunk_pages[pos]

    def _dead(self, seg: DenseSegment, live: np.ndarray) -> int:
        """How many of a segment's rows are deleted in this snapshot (fixed until the next commit)."""
        key = id(seg)
        if key not in self._dead_rows:
            self._dead_rows[key] = len(seg) - int(_live_in(seg.ids, live).sum())
        return self._dead_rows[key]

    # --- per-channel retrieval and exact scoring ----------------------------------------------
    def _dense_candidates(self, name: str, q: np.ndarray, depth: int, allowed: np.ndarray | None,
                          expr: str = "") -> np.ndarray:
        live = self.live_ids(name)
        ids_all, scores_all = [], []
        for seg in self.segments.get(name, []):
            if getattr(seg, "kind", None) == "milvus":  # filter pushed down as ``expr``; ids checked here
                ids, scores = seg.candidates(q, depth, expr)
                keep = _live_in(ids, live if allowed is None else allowed)
                ids_all.append(ids[keep])
                scores_all.append(scores[keep])
            elif isinstance(seg, MultiVectorSegment):
                cand = seg.ids[_live_in(seg.ids, live if allowed is None else allowed)]
                if len(cand):
                    ids, scores = seg.store.search(q, min(depth, len(cand)), candidate_ids=cand)
                    ids_all.append(np.asarray(ids, np.int64))
                    scores_all.append(np.asarray(scores, np.float32))
            elif allowed is None:
                ids, scores = seg.search(q, depth + self._dead(seg, live))
                keep = _live_in(ids, live)
                ids_all.append(ids[keep])
                scores_all.append(scores[keep])
            else:
                rows, found = seg.locate(allowed)
                rows = rows[found]
                if len(rows):
                    ids_all.append(seg.ids[rows])
                    scores_all.append(seg.vectors_of(rows) @ q.reshape(-1))
        if not ids_all:
            return np.zeros(0, np.int64)
        ids = np.concatenate(ids_all)
        scores = np.concatenate(scores_all)
        top = np.argsort(-scores, kind="stable")[:depth]
        return ids[top]

    def _dense_scores(self, name: str, q: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact scores of ``ids`` (NaN where no segment holds one)."""
        out = np.full(len(ids), np.nan, dtype=np.float64)
        for seg in self.segments.get(name, []):
            if getattr(seg, "kind", None) == "milvus":
                return seg.scores(q, ids)
            if isinstance(seg, MultiVectorSegment):
                mask = _live_in(ids, np.sort(seg.ids))
                if mask.any():
                    got, scores = seg.store.search(q, int(mask.sum()), candidate_ids=ids[mask])
                    pos = {int(i): float(s) for i, s in zip(got, scores)}
                    for j in np.flatnonzero(mask):
                        out[j] = pos.get(int(ids[j]), np.nan)
                continue
            rows, found = seg.locate(ids)
            if found.any():
                out[found] = seg.vectors_of(rows[found]) @ q.reshape(-1)
        return out

    def _bm25_candidates(self, full: np.ndarray, depth: int, allowed: np.ndarray | None,
                         state: SparseState | None = None) -> np.ndarray:
        ids = (state or self.sparse).chunk_ids
        scores = full
        if allowed is not None:
            keep = _live_in(ids, allowed)
            ids, scores = ids[keep], scores[keep]
        nonzero = scores > 0
        ids, scores = ids[nonzero], scores[nonzero]
        if len(ids) > depth:
            part = np.argpartition(-scores, depth - 1)[:depth]
            ids, scores = ids[part], scores[part]
        return ids[np.argsort(-scores, kind="stable")]

    # --- search ------------------------------------------------------------------------------
    def search(self, query: str, encode: Callable[[str], np.ndarray], k: int,
               allowed_pages: np.ndarray | None = None, channels: list[str] | None = None,
               depth: int | None = None, filters: dict | None = None) -> PageScores:
        """Top ``k`` pages: union of each channel's candidates, each scored by every channel, fused.

        Each channel contributes its best ``depth`` items (default ``index.candidates``, at least
        ``k``), so the first pages do not change with ``k`` as long as ``k <= depth``.
        """
        cfg = self.cfg
        names = [n for n in self.fields if channels is None or n in channels]
        use_bm25 = cfg.sparse and self.sparse is not None and (channels is None or BM25 in channels)
        depth = max(depth or cfg.candidates, k)
        allowed_chunks = None
        if allowed_pages is not None:
            allowed_pages = np.sort(allowed_pages)
            allowed_chunks = np.sort(self.chunks_of(allowed_pages)[0])
        queries = {n: encode(n) for n in names}
        expr = ""
        if allowed_pages is not None and any(getattr(s, "kind", None) == "milvus" for v in self.segments.values()
                                             for s in v):
            from mmrag.indexes.milvus import search_expression

            expr = search_expression(filters, allowed_pages)
        cand_pages = []
        for n in names:
            allowed = allowed_chunks if self.fields[n].input == "chunks" else allowed_pages
            if allowed is not None and not len(allowed):
                continue
            ids = self._dense_candidates(n, queries[n], depth, allowed, expr)
            cand_pages.append(self.pages_of(ids) if self.fields[n].input == "chunks" else ids)
        bm25_full = None
        if use_bm25:
            bm25_full = self.sparse.scores(query)
            ids = self._bm25_candidates(bm25_full, depth, allowed_chunks)
            cand_pages.append(self.pages_of(ids))
        page_bm25_full = None
        if self.sparse_pages is not None and (channels is None or BM25_PAGES in channels):
            page_bm25_full = self.sparse_pages.scores(query)
            cand_pages.append(self._bm25_candidates(page_bm25_full, depth, allowed_pages, self.sparse_pages))
        pages = np.unique(np.concatenate(cand_pages)) if cand_pages else np.zeros(0, np.int64)
        if allowed_pages is not None:
            pages = pages[_live_in(pages, allowed_pages)]
        if not len(pages):
            return PageScores(pages, np.zeros(0), {})
        chunks, starts = self.chunks_of(pages)
        page_ch: dict[str, np.ndarray] = {}
        chunk_ch: dict[str, np.ndarray] = {}
        for n in names:
            if self.fields[n].input == "chunks":
                chunk_ch[n] = self._dense_scores(n, queries[n], chunks)
            else:
                page_ch[n] = _fill(self._dense_scores(n, queries[n], pages))
        if bm25_full is not None:
            rows, found = self.sparse.rows_of(chunks)
            chunk_ch[BM25] = np.where(found, bm25_full[rows] if len(rows) else 0.0, np.nan)
        if page_bm25_full is not None:
            rows, found = self.sparse_pages.rows_of(pages)
            page_ch[BM25_PAGES] = np.where(found, page_bm25_full[rows] if len(rows) else 0.0, 0.0)
        fused_chunks = None
        if chunk_ch and len(chunks):
            chunk_ch = {n: _fill(s) for n, s in chunk_ch.items()}
            for n, s in chunk_ch.items():
                page_ch[n] = _pool(s, starts, cfg.page_score)
            fused_chunks = fusion.fuse(chunk_ch, cfg.fusion, cfg.weights, cfg.rrf_k)
        elif chunk_ch:
            for n in chunk_ch:
                page_ch[n] = np.zeros(len(pages))
        # pages without chunks get each chunk channel's floor
        for n in chunk_ch:
            empty = starts[1:] == starts[:-1]
            if empty.any():
                floor = np.nanmin(page_ch[n][~empty]) if (~empty).any() else 0.0
                page_ch[n][empty] = floor
        fused = fusion.fuse(page_ch, cfg.fusion, cfg.weights, cfg.rrf_k)
        order = np.argsort(-fused, kind="stable")[:k]
        best_chunk: dict[int, int] = {}  # the snippet: the page's chunk with the best fused score
        if fused_chunks is not None:
            for i in order:
                a, b = starts[i], starts[i + 1]
                if b > a:
                    best_chunk[int(pages[i])] = int(chunks[a + int(np.argmax(fused_chunks[a:b]))])
        return PageScores(pages[order], fused[order], {n: s[order] for n, s in page_ch.items()}, best_chunk)


def _fill(s: np.ndarray) -> np.ndarray:
    """Replace NaN (an item a channel holds no vector for) with the channel's minimum."""
    s = np.asarray(s, dtype=np.float64)
    nan = np.isnan(s)
    if nan.any():
        s = s.copy()
        s[nan] = np.nanmin(s) if (~nan).any() else 0.0
    return s


def _pool(chunk_scores: np.ndarray, starts: np.ndarray, how: str) -> np.ndarray:
    """Page score from its chunks' scores (max, or sum); empty pages get NaN for later filling."""
    out = np.full(len(starts) - 1, np.nan)
    nonempty = starts[1:] > starts[:-1]
    if nonempty.any():
        idx = starts[:-1][nonempty]
        red = np.add.reduceat if how == "sum" else np.maximum.reduceat
        out[nonempty] = red(chunk_scores, idx)
    return out

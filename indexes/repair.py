"""`mmrag index --index DIR --repair`: rebuild damaged segments and BM25 state from the doc store.

The doc store holds every chunk's text and heading, every page's layout and stemmed terms, so
vectors and BM25 can be made again without reading a PDF (page-image fields render the page from
its stored image or its file). A damaged doc store cannot be mended this way: it says to re-index.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.config import FieldConfig, IndexConfig
from mmrag.errors import IndexCorrupt
from mmrag.indexes import integrity
from mmrag.indexes.verify import verify_index
from mmrag.types import Chunk

log = logging.getLogger(__name__)


def _segment_ids(root: Path, seg: dict) -> np.ndarray:
    from mmrag.indexes.layout import SEGMENTS

    name = "mmrag_ids.npy" if seg["kind"] == "multivector" else "ids.npy"
    return np.load(root / SEGMENTS / seg["name"] / name, allow_pickle=False)


def _plan(ix: Any, problems: list[dict]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Segments to drop and, per field, the live ids that need new vectors."""
    damaged = {p["segment"] for p in problems if "segment" in p}
    fields = {p["field"] for p in problems if "field" in p}
    chunks = ix.store.chunk_ids()
    pages = ix.store.page_ids()
    drop: list[str] = []
    missing: dict[str, np.ndarray] = {}
    for f in ix.fields:
        segs = [s for s in ix.store.segments() if s["field"] == f.name]
        healthy = [s for s in segs if s["name"] not in damaged]
        _check_dim(ix, f, healthy)
        if f.name not in fields:
            continue
        live = chunks if f.input == "chunks" else pages
        if ix._milvus is not None:  # index.vectors: milvus — what the collection holds
            held = ix._milvus.ids(f.name)
        else:
            held = np.concatenate([_segment_ids(ix.root, s) for s in healthy]) if healthy else np.zeros(0, np.int64)
        held = held[np.isin(held, live)]
        if len(np.unique(held)) != len(held):  # a live item in two segments: rebuild the whole field
            healthy, held = [], np.zeros(0, np.int64)
        drop += [s["name"] for s in segs if s not in healthy]
        missing[f.name] = np.setdiff1d(live, held)
    return drop, missing


def _check_dim(ix: Any, f: FieldConfig, segments: list[dict]) -> None:
    """Kept segments must come from the encoder the config names (the manifest may be the damaged part)."""
    from mmrag.errors import IndexMismatch
    from mmrag.indexes.layout import SEGMENTS

    dim = int(ix.encoder(f.name).identity["dim"])
    for s in segments:
        if s["kind"] == "multivector":
            continue
        shape = np.load(ix.root / SEGMENTS / s["name"] / "vectors.npy", mmap_mode="r", allow_pickle=False).shape
        if shape[1] != dim:
            raise IndexMismatch(f"segment {s['name']} holds {shape[1]}-d vectors but the config's encoder for field "
                                f"'{f.name}' gives {dim}-d: repair with the config the index was built with (--config)")


def _encode(ix: Any, f: FieldConfig, ids: np.ndarray, progress: bool) -> list:
    """Vectors for ``ids`` (chunk or page ids) from what the doc store holds."""
    from mmrag.indexes.index import _batched

    enc = ix.encoder(f.name)
    if f.input == "chunks":
        rows = ix.store.chunks_by_id(ids)
        texts = [Chunk(chunk_id=rows[i]["chunk_id"], doc_id="", page_number=0, text=rows[i]["text"],
                       heading=rows[i]["heading"]).index_text for i in ids]
        return _batched(enc.encode_text, texts, 256, progress, f"re-encode {f.name}")
    by_id = ix.store.pages_by_id(ids)
    pages = [by_id[int(i)][0] for i in ids]
    return _batched(enc.encode_page, pages, 16, progress, f"re-encode {f.name}")


def repair_index(root: str | Path, fields: list[FieldConfig], cfg: IndexConfig, *,
                 encoder_factory: Any = None, progress: bool = False) -> dict:
    """Mend what `verify_index` finds; returns ``{"repaired", "before", "after", ...}``."""
    from mmrag.indexes.index import Index

    root = Path(root)
    before = verify_index(root)
    if not before["docstore_ok"]:
        damage = "; ".join(p["message"] for p in before["problems"][:3])
        raise IndexCorrupt(f"{damage}. {integrity.reindex_hint(root)}")
    if before["ok"]:
        return {"index": str(root), "repaired": False, "before": before, "after": before,
                "dropped_segments": [], "reencoded": {}}
    with Index.open(root, fields, cfg, write=True, repair=True, encoder_factory=encoder_factory) as ix:
        drop, missing = _plan(ix, before["problems"])
        add = {}
        for f in ix.fields:
            if f.name in missing:
                ids = missing[f.name]
                add[f.name] = (ids, _encode(ix, f, ids, progress) if len(ids) else [])
        ix.repair_commit(drop, add)
        log.info("repaired %s: dropped %d segments, re-encoded %s", root, len(drop),
                 {k: len(v[0]) for k, v in add.items()})
    integrity.forget_verified()
    after = verify_index(root)
    return {"index": str(root), "repaired": True, "before": before, "after": after, "dropped_segments": drop,
            "reencoded": {k: int(len(v[0])) for k, v in add.items()}}

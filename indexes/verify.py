"""`mmrag verify`: check every file of an index's live commit and say what is damaged.

Checks, in order: manifest.json parses and matches its own checksum; docstore.sqlite passes
``PRAGMA integrity_check`` and its recorded fingerprint; each live segment and BM25 folder has
the files, sizes and SHA-256 the doc store recorded, loads, holds ascending ids and finite
vectors (unit length where the field's encoder normalises); every live chunk or page has
exactly one vector per field and BM25 covers exactly the live chunks (and pages).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import IndexCorrupt, IndexMismatch, IndexNotFound
from mmrag.indexes import integrity
from mmrag.indexes.layout import BM25_DIR, DOCSTORE, MANIFEST, SEGMENTS, sha256_file

NORM_TOLERANCE = 1e-2


def _problem(file: Path | str, kind: str, message: str) -> dict:
    return {"file": str(file), "kind": kind, "message": message}


def _check_files(folder: Path, checksums: dict, what: str) -> tuple[list[dict], int]:
    """Size and SHA-256 of every recorded file (always hashed: no per-process cache here)."""
    if not folder.is_dir():
        return [_problem(folder, "missing", f"{what} folder {folder} is missing")], 0
    out, nbytes = [], 0
    for name, info in sorted(checksums.items()):
        p = folder / name
        if not p.is_file():
            out.append(_problem(p, "missing", f"{p} is missing"))
            continue
        size = p.stat().st_size
        nbytes += size
        if size != int(info["bytes"]):
            out.append(_problem(p, "size", f"{p}: {size} bytes, {info['bytes']} recorded"))
        elif sha256_file(p) != info["sha256"]:
            out.append(_problem(p, "checksum", f"{p}: checksum mismatch"))
    return out, nbytes


def _check_vectors(path: Path, seg: dict, live: np.ndarray) -> tuple[list[dict], np.ndarray]:
    """Ids ascending and the count recorded; vectors finite and, if normalised, of unit length."""
    out: list[dict] = []
    ids = np.load(path / ("mmrag_ids.npy" if seg["kind"] == "multivector" else "ids.npy"), allow_pickle=False)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        return [_problem(path, "ids", f"{path}: ids are not a 1-d integer array")], np.zeros(0, np.int64)
    if len(ids) != int(seg["count"]):
        out.append(_problem(path, "ids", f"{path}: {len(ids)} ids, {seg['count']} recorded"))
    if len(ids) > 1 and not bool((ids[1:] > ids[:-1]).all()):
        out.append(_problem(path, "ids", f"{path}: ids are not strictly ascending"))
    if seg["kind"] == "multivector":
        return out, ids
    vectors = np.load(path / "vectors.npy", allow_pickle=False, mmap_mode="r")
    if vectors.ndim != 2 or len(vectors) != len(ids):
        out.append(_problem(path / "vectors.npy", "vectors", f"{path}: vectors of shape {vectors.shape} "
                            f"for {len(ids)} ids"))
        return out, ids
    norms = np.linalg.norm(np.asarray(vectors, dtype=np.float64), axis=1) if len(vectors) else np.zeros(0)
    if not np.isfinite(norms).all():
        out.append(_problem(path / "vectors.npy", "vectors", f"{path}: vectors hold NaN or infinity"))
    elif len(norms) and abs(float(np.median(norms)) - 1.0) < NORM_TOLERANCE:
        bad = int((np.abs(norms - 1.0) > NORM_TOLERANCE).sum())
        if bad:
            out.append(_problem(path / "vectors.npy", "vectors",
                                f"{path}: {bad} vectors are not unit length like the rest"))
    return out, ids


def _live_ids(con: sqlite3.Connection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    chunks = np.array([r[0] for r in con.execute("SELECT id FROM chunks ORDER BY id")], np.int64)
    pages = np.array([r[0] for r in con.execute("SELECT id FROM pages ORDER BY id")], np.int64)
    page_terms = np.array([r[0] for r in con.execute("SELECT page_id FROM page_terms ORDER BY page_id")], np.int64)
    return chunks, pages, page_terms


def _meta(con: sqlite3.Connection, key: str, default: Any = None) -> Any:
    row = con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return json.loads(row[0]) if row else default


def verify_index(root: str | Path) -> dict:
    """A report of everything damaged in the live commit: ``{"ok", "problems": [...], ...}``."""
    from mmrag.indexes.manifest import read_manifest

    root = Path(root)
    t0 = time.monotonic()
    problems: list[dict] = []
    checked = {"files": 0, "bytes": 0, "segments": 0}
    manifest: dict | None = None
    try:
        manifest = read_manifest(root)
        checked["files"] += 1
    except IndexNotFound as e:
        if not (root / DOCSTORE).is_file():
            raise
        problems.append(_problem(root / MANIFEST, "missing", str(e)))
    except (IndexCorrupt, IndexMismatch) as e:
        problems.append(_problem(root / MANIFEST, "manifest", str(e)))
    db = root / DOCSTORE
    report = {"index": str(root), "commit": None, "checked": checked, "problems": problems,
              "docstore_ok": False}
    if not db.is_file():
        problems.append(_problem(db, "missing", f"{db} is missing; {integrity.reindex_hint(root)}"))
        return _finish(report, root, t0)
    try:
        con = integrity.connect_checked(f"file:{db}?mode=ro", db, uri=True, timeout=30)
        try:
            rows = [r[0] for r in con.execute("PRAGMA integrity_check")]
            if rows != ["ok"]:
                problems.append(_problem(db, "sqlite", f"{db}: integrity_check: {'; '.join(rows[:5])}"))
                return _finish(report, root, t0)
            con.execute("BEGIN")
            commit = int(_meta(con, "commit", 0))
            report["commit"] = commit
            segments = [{"name": r[0], "field": r[1], "count": r[2], "kind": r[3], "checksums": json.loads(r[4])}
                        for r in con.execute("SELECT name, field, count, kind, checksums FROM segments ORDER BY name")]
            sparse = {"checksums": (_meta(con, "bm25"), _meta(con, "bm25_checksums")),
                      "pages_checksums": (_meta(con, "bm25_pages"), _meta(con, "bm25_pages_checksums"))}
            chunks, pages, page_terms = _live_ids(con)
            vectors = _meta(con, "vectors")
            counters = {"chunks": int(_meta(con, "next_chunk_id", 1)), "pages": int(_meta(con, "next_page_id", 1))}
            orphans = con.execute("SELECT count(*) FROM chunks WHERE page_id NOT IN (SELECT id FROM pages)").fetchone()[0]
            con.execute("ROLLBACK")
        finally:
            con.close()
    except (IndexCorrupt, sqlite3.DatabaseError, ValueError) as e:
        problems.append(_problem(db, "sqlite", f"{db} cannot be read: {e}"))
        return _finish(report, root, t0)
    checked["files"] += 1
    checked["bytes"] += db.stat().st_size
    if manifest is not None:
        try:
            integrity.forget_verified()
            integrity.check_docstore(root, manifest.get("docstore"))
        except IndexCorrupt as e:
            problems.append(_problem(db, "checksum", str(e)))
            return _finish(report, root, t0)
        try:
            integrity.compare_manifest(root, manifest, commit, segments, sparse)
        except IndexCorrupt as e:
            problems.append(_problem(root / MANIFEST, "manifest", str(e)))
    report["docstore_ok"] = True
    if orphans:
        problems.append(_problem(db, "orphans", f"{db}: {orphans} chunks belong to no page"))
    fields = {f["name"]: f for f in (manifest or {}).get("fields", [])}
    held: dict[str, list[np.ndarray]] = {}
    for seg in segments:
        path = root / SEGMENTS / seg["name"]
        checked["segments"] += 1
        found, nbytes = _check_files(path, seg["checksums"], "segment")
        checked["files"] += len(seg["checksums"])
        checked["bytes"] += nbytes
        for p in found:
            p["segment"] = seg["name"]
            p["field"] = seg["field"]
        problems += found
        if found:
            continue
        live = chunks if fields.get(seg["field"], {}).get("input", "chunks") == "chunks" else pages
        try:
            found, ids = _check_vectors(path, seg, live)
        except Exception as e:  # a file that passed its checksum but does not parse: recorded damaged
            found, ids = [_problem(path, "parse", f"{path} cannot be read: {type(e).__name__}: {e}")], None
        for p in found:
            p["segment"] = seg["name"]
            p["field"] = seg["field"]
        problems += found
        if ids is not None:
            held.setdefault(seg["field"], []).append(ids)
    if isinstance(vectors, dict) and vectors.get("backend") == "milvus":
        problems += _milvus_ids(root, vectors, fields, counters, held, report)
    damaged_fields = {p["field"] for p in problems if "field" in p}
    for name, f in fields.items():
        if name in damaged_fields:
            continue
        live = chunks if f.get("input") == "chunks" else pages
        ids = np.concatenate(held.get(name, [])) if held.get(name) else np.zeros(0, np.int64)
        counts = np.bincount(np.searchsorted(live, ids[np.isin(ids, live)]), minlength=len(live)) if len(live) \
            else np.zeros(0, int)
        missing, duplicated = int((counts == 0).sum()), int((counts > 1).sum())
        if missing:
            problems.append(_problem(root / SEGMENTS, "coverage", f"field '{name}': {missing} live "
                                     f"{f.get('input', 'chunk')} have no vector", ) | {"field": name})
        if duplicated:
            problems.append(_problem(root / SEGMENTS, "coverage", f"field '{name}': {duplicated} live "
                                     f"{f.get('input', 'chunk')} have more than one vector") | {"field": name})
    for key, (folder, checksums) in sparse.items():
        if not folder:
            continue
        path = root / BM25_DIR / folder
        if checksums is None and manifest is not None:
            checksums = manifest.get("sparse", {}).get(key)
        found, nbytes = _check_files(path, checksums or {}, "BM25")
        checked["files"] += len(checksums or {})
        checked["bytes"] += nbytes
        if not found:
            want = chunks if key == "checksums" else page_terms
            try:
                got = np.load(path / "chunk_ids.npy", allow_pickle=False)
                if not np.array_equal(np.sort(got), want):
                    found.append(_problem(path / "chunk_ids.npy", "coverage",
                                          f"{path}: BM25 holds {len(got)} items, the doc store {len(want)}"))
            except Exception as e:
                found.append(_problem(path, "parse", f"{path} cannot be read: {type(e).__name__}: {e}"))
        for p in found:
            p["bm25"] = key
        problems += found
    return _finish(report, root, t0)


def _milvus_ids(root: Path, record: dict, fields: dict, counters: dict, held: dict, report: dict) -> list[dict]:
    """Vectors in Milvus: every id each collection holds (coverage is then checked as for segments).

    Ids past the doc store's counters were written by a writer killed before its commit: readers
    never return them and the next writer removes them, so they are counted, not reported.
    """
    from mmrag.errors import MmragError
    from mmrag.indexes import milvus

    info: dict = {"uri": record.get("uri"), "collection": record.get("collection"), "rows": {}, "uncommitted": {}}
    report["milvus"] = info
    try:
        uri = milvus.resolve_uri(record["uri"], root)
        with milvus.MilvusVectors(uri, record["collection"]) as mv:
            for name, f in fields.items():
                ids = mv.ids(name)
                limit = counters["chunks" if f.get("input") == "chunks" else "pages"]
                info["rows"][name] = int(len(ids))
                info["uncommitted"][name] = int((ids >= limit).sum())
                held[name] = [ids[ids < limit]]
    except MmragError as e:
        return [_problem(record.get("uri"), "milvus", f"vectors in Milvus could not be checked: {e}") | {"field": n}
                for n in fields]
    return []


def _finish(report: dict, root: Path, t0: float) -> dict:
    report["ok"] = not report["problems"]
    report["seconds"] = round(time.monotonic() - t0, 3)
    if not report["ok"]:
        report["repair"] = (f"mmrag index --index {root} --repair" if report["docstore_ok"]
                            else integrity.reindex_hint(root))
    return report

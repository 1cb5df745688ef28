"""The SQLite doc store: documents, pages, chunks, metadata, image paths, and the commit state.

SQLite in WAL mode is the index's commit point: a writer adds rows and names the new segment
and BM25 folders in one transaction, so a reader's snapshot always matches files on disk.
Integer page and chunk ids come from counters that only grow, so an id is never reused by a
later document while a dead vector of an earlier one still sits in an old segment.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from mmrag.errors import QueryError
from mmrag.indexes.integrity import connect_checked
from mmrag.textcheck import require_text
from mmrag.types import Block, Chunk, Document, Page

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, path TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}', file_sha256 TEXT, page_count INTEGER NOT NULL DEFAULT 0,
    added REAL NOT NULL);
CREATE INDEX IF NOT EXISTS documents_path ON documents(path);
CREATE INDEX IF NOT EXISTS documents_sha ON documents(file_sha256);
CREATE TABLE IF NOT EXISTS pages (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, page_number INTEGER NOT NULL,
    width REAL NOT NULL, height REAL NOT NULL, text TEXT NOT NULL, blocks TEXT NOT NULL,
    image_path TEXT, content_hash TEXT NOT NULL DEFAULT '', ocr INTEGER NOT NULL DEFAULT 0,
    rotation INTEGER NOT NULL DEFAULT 0, error TEXT, UNIQUE(doc_id, page_number));
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, page_id INTEGER NOT NULL, chunk_id TEXT NOT NULL, text TEXT NOT NULL,
    bbox TEXT, kinds TEXT NOT NULL DEFAULT '', terms TEXT NOT NULL DEFAULT '',
    heading TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS chunks_page ON chunks(page_id);
CREATE TABLE IF NOT EXISTS page_terms (page_id INTEGER PRIMARY KEY, terms TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    name TEXT PRIMARY KEY, field TEXT NOT NULL, count INTEGER NOT NULL, kind TEXT NOT NULL,
    checksums TEXT NOT NULL);
"""

MAX_PAGE = 2**31 - 1  # far above any PDF, far below SQLite's 64-bit integers
FILTER_KEYS = ("doc_id", "doc_ids", "path", "page", "pages", "metadata")


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """Open the store; WAL lets readers search while one writer commits.

    Corruption errors of every later statement surface as `IndexCorrupt` (see integrity.py).
    """
    if readonly:
        con = connect_checked(f"file:{path}?mode=ro", path, uri=True, timeout=30, isolation_level=None,
                              check_same_thread=False)
    else:
        con = connect_checked(str(path), path, timeout=30, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.executescript(SCHEMA)
        columns = {r[1] for r in con.execute("PRAGMA table_info(chunks)")}
        if "heading" not in columns:  # stores made before repair needed the chunk's heading
            con.execute("ALTER TABLE chunks ADD COLUMN heading TEXT NOT NULL DEFAULT ''")
    con.row_factory = sqlite3.Row
    return con


class DocStore:
    """Typed access to one index's SQLite file. Writes happen between `begin` and `commit`."""

    def __init__(self, path: Path, readonly: bool = False):
        self.path = path
        self.con = connect(path, readonly)

    def close(self) -> None:
        self.con.close()

    # --- transactions and state --------------------------------------------------------------
    def begin(self, write: bool = False) -> None:
        self.con.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def commit(self) -> None:
        self.con.execute("COMMIT")

    def rollback(self) -> None:
        if self.con.in_transaction:
            self.con.execute("ROLLBACK")

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        self.con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def allocate(self, counter: str, n: int) -> np.ndarray:
        """``n`` fresh ids from a counter that never goes back (committed with the transaction)."""
        start = int(self.get_meta(counter, 1))
        self.set_meta(counter, start + n)
        return np.arange(start, start + n, dtype=np.int64)

    def segments(self) -> list[dict]:
        rows = self.con.execute("SELECT name, field, count, kind, checksums FROM segments ORDER BY name")
        return [{"name": r[0], "field": r[1], "count": r[2], "kind": r[3], "checksums": json.loads(r[4])}
                for r in rows]

    def add_segment(self, name: str, field: str, count: int, kind: str, checksums: dict) -> None:
        self.con.execute("INSERT INTO segments VALUES (?, ?, ?, ?, ?)",
                         (name, field, count, kind, json.dumps(checksums)))

    def drop_segments(self, names: Iterable[str]) -> None:
        self.con.executemany("DELETE FROM segments WHERE name=?", [(n,) for n in names])

    # --- documents ---------------------------------------------------------------------------
    def add_document(self, doc: Document, pages: list[Page], chunks: list[Chunk], terms: list[str],
                     file_sha256: str | None, page_terms: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Insert one document; returns (page ids, chunk ids) in the order given."""
        page_ids = self.allocate("next_page_id", len(pages))
        chunk_ids = self.allocate("next_chunk_id", len(chunks))
        self.con.execute(
            "INSERT INTO documents(doc_id, path, title, metadata, file_sha256, page_count, added) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (doc.doc_id, doc.path, doc.title or "", json.dumps(doc.metadata or {}, default=str),
             file_sha256, len(pages), time.time()))
        by_number = {}
        rows = []
        for pid, p in zip(page_ids, pages):
            by_number[p.page_number] = int(pid)
            rows.append((int(pid), doc.doc_id, p.page_number, p.width, p.height, p.text,
                         json.dumps([b.to_dict() for b in p.blocks]), p.image_path, p.content_hash,
                         int(p.ocr), p.rotation, json.dumps(p.error) if p.error else None))
        self.con.executemany("INSERT INTO pages VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        self.con.executemany(
            "INSERT INTO chunks(id, page_id, chunk_id, text, bbox, kinds, terms, heading) VALUES (?,?,?,?,?,?,?,?)",
            [(int(cid), by_number[c.page_number], c.chunk_id, c.text,
              json.dumps(list(c.bbox)) if c.bbox else None, ",".join(c.kinds), t, c.heading or "")
             for cid, c, t in zip(chunk_ids, chunks, terms)])
        if page_terms is not None:
            self.con.executemany("INSERT INTO page_terms VALUES (?, ?)",
                                 [(int(pid), t) for pid, t in zip(page_ids, page_terms)])
        return page_ids, chunk_ids

    def delete_document(self, doc_id: str) -> bool:
        cur = self.con.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))
        if not cur.rowcount:
            return False
        self.con.execute("DELETE FROM chunks WHERE page_id IN (SELECT id FROM pages WHERE doc_id=?)", (doc_id,))
        self.con.execute("DELETE FROM page_terms WHERE page_id IN (SELECT id FROM pages WHERE doc_id=?)", (doc_id,))
        self.con.execute("DELETE FROM pages WHERE doc_id=?", (doc_id,))
        return True

    def document(self, doc_id: str) -> dict | None:
        row = self.con.execute("SELECT * FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return _doc_row(row) if row else None

    def document_by_path(self, path: str) -> dict | None:
        row = self.con.execute("SELECT * FROM documents WHERE path=?", (path,)).fetchone()
        return _doc_row(row) if row else None

    def document_by_sha(self, sha: str) -> dict | None:
        row = self.con.execute("SELECT * FROM documents WHERE file_sha256=?", (sha,)).fetchone()
        return _doc_row(row) if row else None

    def documents(self) -> list[dict]:
        return [_doc_row(r) for r in self.con.execute("SELECT * FROM documents ORDER BY path, doc_id")]

    def counts(self) -> dict[str, int]:
        q = "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM pages), (SELECT count(*) FROM chunks)"
        d, p, c = self.con.execute(q).fetchone()
        return {"documents": d, "pages": p, "chunks": c}

    # --- pages and chunks --------------------------------------------------------------------
    def page(self, doc_id: str, page_number: int) -> Page | None:
        row = self.con.execute(
            "SELECT p.*, d.path FROM pages p JOIN documents d USING(doc_id) WHERE p.doc_id=? AND p.page_number=?",
            (doc_id, page_number)).fetchone()
        return _page_row(row) if row else None

    def pages_by_id(self, ids: Iterable[int]) -> dict[int, tuple[Page, str]]:
        """{page id: (Page, document path)} for the given ids."""
        ids = [int(i) for i in ids]
        out: dict[int, tuple[Page, str]] = {}
        for part in _batches(ids, 500):
            q = f"SELECT p.*, d.path FROM pages p JOIN documents d USING(doc_id) WHERE p.id IN ({','.join('?' * len(part))})"
            for row in self.con.execute(q, part):
                out[row["id"]] = (_page_row(row), row["path"])
        return out

    def chunks_by_id(self, ids: Iterable[int]) -> dict[int, dict]:
        ids = [int(i) for i in ids]
        out: dict[int, dict] = {}
        for part in _batches(ids, 500):
            q = (f"SELECT id, page_id, chunk_id, text, bbox, heading FROM chunks "
                 f"WHERE id IN ({','.join('?' * len(part))})")
            for r in self.con.execute(q, part):
                out[r[0]] = {"page_id": r[1], "chunk_id": r[2], "text": r[3],
                             "bbox": tuple(json.loads(r[4])) if r[4] else None, "heading": r[5]}
        return out

    def chunk_page_map(self) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, their page ids) of every live chunk, sorted by chunk id."""
        rows = self.con.execute("SELECT id, page_id FROM chunks ORDER BY id").fetchall()
        arr = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return arr[:, 0].copy(), arr[:, 1].copy()

    def chunk_ids(self) -> np.ndarray:
        return np.array([r[0] for r in self.con.execute("SELECT id FROM chunks ORDER BY id")], dtype=np.int64)

    def page_ids(self) -> np.ndarray:
        return np.array([r[0] for r in self.con.execute("SELECT id FROM pages ORDER BY id")], dtype=np.int64)

    def iter_terms(self) -> Iterator[tuple[int, str]]:
        yield from self.con.execute("SELECT id, terms FROM chunks ORDER BY id")

    def iter_page_terms(self) -> Iterator[tuple[int, str]]:
        """Page ids and stemmed page texts (pages added before the page BM25 was on have none)."""
        yield from self.con.execute("SELECT page_id, terms FROM page_terms ORDER BY page_id")

    def first_chunks(self, page_ids: Iterable[int]) -> dict[int, int]:
        """The first chunk id of each page (the snippet when no chunk field scored it)."""
        ids = [int(i) for i in page_ids]
        out: dict[int, int] = {}
        for part in _batches(ids, 500):
            q = f"SELECT page_id, min(id) FROM chunks WHERE page_id IN ({','.join('?' * len(part))}) GROUP BY page_id"
            out.update({r[0]: r[1] for r in self.con.execute(q, part)})
        return out

    # --- filters -----------------------------------------------------------------------------
    def filter_pages(self, filters: dict) -> np.ndarray:
        """Page ids matching every filter: doc id(s), path glob, metadata key=value, page range."""
        if not isinstance(filters, dict):
            raise QueryError(f"filters must be a dict like {{'page': '2-5'}}, got {type(filters).__name__}")
        unknown = [k for k in filters if k not in FILTER_KEYS]
        if unknown:
            raise QueryError(f"unknown filter {unknown[0]!r}; use one of: {', '.join(FILTER_KEYS)}")
        where, args = [], []
        docs = filters.get("doc_id", filters.get("doc_ids"))
        if docs is not None:
            docs = [docs] if isinstance(docs, str) else list(docs) if isinstance(docs, (list, tuple, set)) else [docs]
            docs = [require_text(d, "a doc_id filter") for d in docs]
            where.append(f"p.doc_id IN ({','.join('?' * len(docs))})" if docs else "0")
            args += docs
        if filters.get("path"):
            where.append("d.path GLOB ?")
            args.append(require_text(filters["path"], "the path filter"))
        rng = filters.get("page", filters.get("pages"))
        if rng is not None:
            lo, hi = parse_page_range(rng)
            where.append("p.page_number BETWEEN ? AND ?")
            args += [lo, hi]
        metadata = filters.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise QueryError(f"the metadata filter must be a dict of KEY: VALUE, got {type(metadata).__name__}")
        for key, value in metadata.items():
            key = require_text(str(key), "a metadata filter key")
            value = require_text(str(value), f"the metadata filter {key!r}")
            # json_each compares the key itself, so no key (quotes, dots, NUL) can break a JSON path
            where.append("EXISTS (SELECT 1 FROM json_each(d.metadata) m WHERE m.key = ? AND CAST(m.value AS TEXT) = ?)")
            args += [key, value]
        q = "SELECT p.id FROM pages p JOIN documents d USING(doc_id)"
        if where:
            q += " WHERE " + " AND ".join(where)
        return np.array([r[0] for r in self.con.execute(q, args)], dtype=np.int64)


def parse_page_range(value: Any) -> tuple[int, int]:
    """3, "3", "2-5", [2, 5] or (2, 5) → inclusive (lo, hi)."""
    try:
        if isinstance(value, (list, tuple)) and len(value) == 2:
            lo, hi = int(value[0]), int(value[1])
        elif isinstance(value, str) and "-" in value.strip("-"):
            a, b = value.split("-", 1)
            lo, hi = int(a), int(b)
        else:
            lo = hi = int(value)
    except (TypeError, ValueError, OverflowError):
        raise QueryError(f"page filter {value!r} is not a page number or a range like 2-5") from None
    if not (-MAX_PAGE <= lo <= MAX_PAGE and -MAX_PAGE <= hi <= MAX_PAGE):
        raise QueryError(f"page filter {value!r} is out of range: pages are numbered 1 to {MAX_PAGE:,}")
    if lo > hi:
        raise QueryError(f"page range {value!r} is empty: the first page is after the last")
    return lo, hi


def _batches(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _doc_row(row: sqlite3.Row) -> dict:
    return {"doc_id": row["doc_id"], "path": row["path"], "title": row["title"],
            "metadata": json.loads(row["metadata"]), "file_sha256": row["file_sha256"],
            "pages": row["page_count"], "added": row["added"]}


def _page_row(row: sqlite3.Row) -> Page:
    return Page(doc_id=row["doc_id"], page_number=row["page_number"], width=row["width"],
                height=row["height"], text=row["text"],
                blocks=[Block.from_dict(b) for b in json.loads(row["blocks"])],
                source_path=row["path"], content_hash=row["content_hash"], image_path=row["image_path"],
                ocr=bool(row["ocr"]), rotation=row["rotation"],
                error=json.loads(row["error"]) if row["error"] else None)

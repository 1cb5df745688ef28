"""Vectors in Milvus (`index.vectors: milvus`): Milvus Lite for a ``*.db`` path, a server for a URI.

One collection per field, keyed by our own chunk or page ids, with the doc id, page number,
path and metadata as scalar fields so filters run inside Milvus. Multi-vector fields (ColPali,
ColQwen) hold one row per token vector with the item's id, as Milvus documents for late
interaction: each query token is searched, then the candidates are rescored by MaxSim here.

Commit point: the SQLite doc store stays it. Vectors are written to Milvus before the SQLite
transaction that makes their ids live commits; readers drop hits whose ids that commit does not
hold; ids of replaced or deleted documents are queued in the doc store in the same transaction
and removed from Milvus after it; a writer that opens removes what a killed writer left (ids
past the doc store's counters, and the queue). `pymilvus` is imported here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import ConfigError, IndexCorrupt, IndexLocked, MissingDependency, ServerError
from mmrag.indexes.integrity import lock_held

log = logging.getLogger(__name__)

PIP = "pip install 'mmrag[milvus]'"
MAX_TOKENS = 1 << 16  # token rows per multi-vector item: pk = item id * MAX_TOKENS + token
QUERY_LIMIT = 16384  # Milvus's cap on rows per query or search
BATCH = 2000  # rows per insert / ids per get
INDEX_TYPES = ("FLAT", "HNSW", "AUTOINDEX")
DELETES_TABLE = "CREATE TABLE IF NOT EXISTS milvus_deletes (field TEXT NOT NULL, id INTEGER NOT NULL)"
_SAFE = re.compile(r'^[^"\\\x00-\x1f]*$')  # strings Milvus expressions take literally between "..."


def _pymilvus():
    try:
        import pymilvus
    except ImportError:
        raise MissingDependency(f"index.vectors: milvus needs pymilvus and milvus-lite: {PIP}") from None
    return pymilvus


def resolve_uri(uri: str, root: Path) -> str:
    """A server URI as given; a Milvus Lite path (must end in .db), relative ones inside the index folder."""
    uri = str(uri or "").strip()
    if not uri:
        raise ConfigError("index.vectors: milvus needs index.milvus_uri: a path such as milvus.db (Milvus Lite, "
                          "inside the index folder) or a server such as http://localhost:19530")
    if "://" in uri or uri.startswith("unix:"):
        return uri
    if not uri.endswith(".db"):
        raise ConfigError(f"index.milvus_uri {uri!r}: a Milvus Lite database is a path ending in .db "
                          "(e.g. milvus.db); a server is a URI such as http://localhost:19530")
    p = Path(uri).expanduser()
    return str(p if p.is_absolute() else Path(root).resolve() / p)


def is_lite(uri: str) -> bool:
    return uri.endswith(".db") and "://" not in uri


# --- connections -----------------------------------------------------------------------------
# Milvus Lite serves one .db from a gRPC server inside this process and holds a file lock on it;
# clients of this process share it, and the last one to close stops it so the file is free again.
_CONNECTIONS: dict[str, list] = {}  # uri -> [client, users]
_CONN_LOCK = threading.Lock()


def _connect(uri: str) -> Any:
    with _CONN_LOCK:
        if uri in _CONNECTIONS:
            _CONNECTIONS[uri][1] += 1
            return _CONNECTIONS[uri][0]
        pm = _pymilvus()
        if is_lite(uri):
            try:
                import milvus_lite  # noqa: F401
            except ImportError:
                raise MissingDependency(f"a Milvus Lite path ({uri}) needs milvus-lite: {PIP}") from None
            if lock_held(Path(uri) / "LOCK"):  # Milvus Lite's own lock, held elsewhere: this process has no client
                raise IndexLocked(f"another process has the Milvus Lite database {uri} open (Milvus Lite serves "
                                  "one process at a time); wait for it to finish, or keep the vectors in a Milvus "
                                  "server (index.milvus_uri: http://HOST:19530) to read while indexing")
        try:
            client = pm.MilvusClient(uri=uri)
        except Exception as e:  # noqa: BLE001 - pymilvus raises several types for an unreachable server
            raise ServerError(f"cannot connect to Milvus at {uri} ({type(e).__name__}: {e}); start the server or "
                              "fix index.milvus_uri") from None
        _CONNECTIONS[uri] = [client, 1]
        return client


def _disconnect(uri: str) -> None:
    with _CONN_LOCK:
        entry = _CONNECTIONS.get(uri)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _CONNECTIONS[uri]
    try:
        entry[0].close()
    finally:
        if is_lite(uri):
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(uri)


def open_connections() -> list[str]:
    """URIs this process holds a client for (tests check that nothing is left open)."""
    with _CONN_LOCK:
        return list(_CONNECTIONS)


def new_collection_prefix() -> str:
    return f"mmrag_{uuid.uuid4().hex[:16]}"


def _collection_name(prefix: str, field: str) -> str:
    return f"{prefix}_{re.sub(r'[^0-9A-Za-z_]', '_', field)}"


# --- filters ---------------------------------------------------------------------------------
def _glob_to_like(glob: str) -> str | None:
    """SQLite GLOB → Milvus LIKE, or None where LIKE cannot say it (classes, literal % or _)."""
    if any(c in glob for c in "[]%_") or not _SAFE.match(glob):
        return None
    return glob.replace("*", "%").replace("?", "_")


def _sqlite_text(value: Any) -> str | None:
    """A metadata value as ``CAST(json_extract(...) AS TEXT)`` shows it, so filters match the same rows."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return str(value)


def filter_expression(filters: dict | None) -> str | None:
    """The doc-store filters as one Milvus boolean expression; None where a part cannot be pushed down.

    doc ids (``in``), page range (``page_number`` bounds), metadata KEY=VALUE (JSON field) and path
    globs made of ``*`` and ``?`` become expressions. Globs with ``[...]`` classes or a literal ``%``
    or ``_``, and strings holding ``"`` or ``\\``, cannot be written safely: the caller then passes
    the matching page ids resolved by the doc store instead.
    """
    from mmrag.indexes.docstore import parse_page_range

    if not filters:
        return ""
    parts = []
    docs = filters.get("doc_id", filters.get("doc_ids"))
    if docs is not None:
        docs = [docs] if isinstance(docs, str) else list(docs)
        if not all(isinstance(d, str) and _SAFE.match(d) for d in docs):
            return None
        parts.append("doc_id in [" + ", ".join(f'"{d}"' for d in docs) + "]" if docs else "id < 0")
    if filters.get("path"):
        like = _glob_to_like(str(filters["path"]))
        if like is None:
            return None
        parts.append(f'path like "{like}"')
    rng = filters.get("page", filters.get("pages"))
    if rng is not None:
        lo, hi = parse_page_range(rng)
        parts.append(f"(page_number >= {lo} and page_number <= {hi})")
    for key, value in (filters.get("metadata") or {}).items():
        key, value = str(key), str(value)
        if not (_SAFE.match(key) and _SAFE.match(value)):
            return None
        parts.append(f'metadata["{key}"] == "{value}"')
    return " and ".join(parts)


def _and(*parts: str | None) -> str:
    return " and ".join(f"({p})" for p in parts if p)


# --- the store -------------------------------------------------------------------------------
class MilvusVectors:
    """One index's vectors in Milvus: write rows, delete ids, search, fetch vectors, list ids."""

    def __init__(self, uri: str, prefix: str, index_type: str = "FLAT", hnsw_m: int = 32, ef_search: int = 64):
        if index_type not in INDEX_TYPES:
            raise ConfigError(f"index.milvus_index must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}")
        self.uri, self.prefix = uri, prefix
        self.index_type, self.hnsw_m, self.ef_search = index_type, hnsw_m, ef_search
        self.client = _connect(uri)
        self._loaded: set[str] = set()
        self._closed = False
        self.last_maxsim: tuple = (None, {})  # ((field, query bytes), {item id: MaxSim}) of the last search

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _disconnect(self.uri)

    def __enter__(self) -> "MilvusVectors":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        pm = _pymilvus()
        try:
            return fn(*args, **kwargs)
        except pm.exceptions.MilvusException as e:
            raise ServerError(f"Milvus at {self.uri} failed to {what}: {e}") from None

    # --- collections -------------------------------------------------------------------------
    def name(self, field: str) -> str:
        return _collection_name(self.prefix, field)

    def exists(self, field: str) -> bool:
        return bool(self._call("list collections", self.client.has_collection, self.name(field)))

    def ensure(self, field: str, dim: int, multivector: bool) -> None:
        """Create the field's collection (exact FLAT inner product by default) and load it."""
        name = self.name(field)
        if name in self._loaded:
            return
        if not self.exists(field):
            pm = _pymilvus()
            dt = pm.DataType
            schema = pm.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", dt.INT64, is_primary=True)
            if multivector:
                schema.add_field("item_id", dt.INT64)
            schema.add_field("page_id", dt.INT64)
            schema.add_field("doc_id", dt.VARCHAR, max_length=1024)
            schema.add_field("page_number", dt.INT64)
            schema.add_field("path", dt.VARCHAR, max_length=65535)
            schema.add_field("metadata", dt.JSON)
            schema.add_field("vector", dt.FLOAT_VECTOR, dim=int(dim))
            params = self.client.prepare_index_params()
            extra = {"params": {"M": self.hnsw_m, "efConstruction": max(40, 2 * self.hnsw_m)}} \
                if self.index_type == "HNSW" else {}
            params.add_index(field_name="vector", index_type=self.index_type, metric_type="IP", **extra)
            # the index separately and without waiting: an empty collection's index is built at once, and
            # Milvus Lite does not serve the timestamp call that waiting makes
            self._call("create a collection", self.client.create_collection, name, schema=schema,
                       consistency_level="Strong")
            self._call("create an index", self.client.create_index, name, params, sync=False)
        self._load(field)

    def _load(self, field: str) -> bool:
        name = self.name(field)
        if name in self._loaded:
            return True
        if not self.exists(field):
            return False
        self._call("load a collection", self.client.load_collection, name)
        self._loaded.add(name)
        return True

    def _multivector(self, field: str) -> bool:
        desc = self._call("describe a collection", self.client.describe_collection, self.name(field))
        return any(f["name"] == "item_id" for f in desc["fields"])

    # --- writing -----------------------------------------------------------------------------
    def write(self, field: str, ids: np.ndarray, info: list[dict], vectors: list, multivector: bool) -> None:
        """Upsert one row per id (or per token of each id's matrix), with its scalar fields ``info``."""
        rows: list[dict] = []
        name = self.name(field)
        for item_id, meta, vec in zip(ids, info, vectors):
            m = np.asarray(vec, dtype=np.float32)
            if multivector:
                if m.ndim != 2 or not 0 < len(m) < MAX_TOKENS:
                    raise ConfigError(f"field '{field}': a multi-vector item needs 1 to {MAX_TOKENS - 1} token "
                                      f"vectors, got shape {m.shape}")
                base = int(item_id) * MAX_TOKENS
                rows += [dict(meta, id=base + t, item_id=int(item_id), vector=m[t].tolist()) for t in range(len(m))]
            else:
                rows.append(dict(meta, id=int(item_id), vector=m.reshape(-1).tolist()))
            if len(rows) >= BATCH:
                self._call("write vectors", self.client.upsert, name, rows)
                rows = []
        if rows:
            self._call("write vectors", self.client.upsert, name, rows)

    def delete(self, field: str, ids: np.ndarray) -> None:
        if not len(ids) or not self._load(field):
            return
        key = "item_id" if self._multivector(field) else "id"
        ids = [int(i) for i in ids]
        for i in range(0, len(ids), BATCH):
            part = ids[i:i + BATCH]
            self._call("delete vectors", self.client.delete, self.name(field),
                       filter=f"{key} in [{', '.join(map(str, part))}]")

    def delete_from(self, field: str, first_id: int) -> None:
        """Remove every row of ids >= ``first_id`` (written by a writer that never committed them)."""
        if not self._load(field):
            return
        key = "item_id" if self._multivector(field) else "id"
        self._call("delete vectors", self.client.delete, self.name(field), filter=f"{key} >= {int(first_id)}")

    # --- reading -----------------------------------------------------------------------------
    def search(self, field: str, q: np.ndarray, limit: int, expr: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Top ``limit`` ids by inner product (multi-vector: by MaxSim over the per-token candidates)."""
        if limit <= 0 or not self._load(field):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        name = self.name(field)
        params = {"metric_type": "IP"}
        if self.index_type == "HNSW":
            params["params"] = {"ef": max(self.ef_search, limit)}
        q = np.asarray(q, dtype=np.float32)
        multi = q.ndim == 2
        data = [t.tolist() for t in (q if multi else q.reshape(1, -1))]
        res = self._call("search", self.client.search, name, data=data, limit=min(limit, QUERY_LIMIT),
                         filter=expr, output_fields=["item_id"] if multi else ["page_id"], search_params=params,
                         consistency_level="Strong")
        if not multi:
            hits = res[0] if res else []
            return (np.array([h["id"] for h in hits], np.int64), np.array([h["distance"] for h in hits], np.float32))
        cand = np.unique(np.array([h["entity"]["item_id"] for per_token in res for h in per_token], np.int64))
        scores = self.maxsim(field, q, cand)
        self.last_maxsim = ((field, q.tobytes()), dict(zip(cand.tolist(), scores.tolist())))  # rescoring reuses these
        order = np.lexsort((cand, -scores))[:limit]
        return cand[order], scores[order].astype(np.float32)

    def vectors(self, field: str, ids: np.ndarray) -> dict[int, np.ndarray]:
        """{id: vector} for the ids Milvus holds (single-vector fields)."""
        out: dict[int, np.ndarray] = {}
        if not len(ids) or not self._load(field):
            return out
        ids = [int(i) for i in ids]
        for i in range(0, len(ids), BATCH):
            part = ids[i:i + BATCH]
            rows = self._call("read vectors", self.client.query, self.name(field),
                              filter=f"id in [{', '.join(map(str, part))}]", output_fields=["id", "vector"],
                              limit=len(part), consistency_level="Strong")
            out.update({int(r["id"]): np.asarray(r["vector"], dtype=np.float32) for r in rows})
        return out

    def matrices(self, field: str, ids: np.ndarray) -> dict[int, np.ndarray]:
        """{item id: (tokens, dim) matrix, token order} for the items Milvus holds (multi-vector fields)."""
        out: dict[int, list] = {}
        todo = [[int(i) for i in ids]] if len(ids) else []
        while todo and self._load(field):
            part = todo.pop()
            rows = self._call("read vectors", self.client.query, self.name(field),
                              filter=f"item_id in [{', '.join(map(str, part))}]", output_fields=["id", "vector"],
                              limit=QUERY_LIMIT, consistency_level="Strong")
            if len(rows) >= QUERY_LIMIT and len(part) > 1:  # the cap may have cut some tokens off: split
                todo += [part[:len(part) // 2], part[len(part) // 2:]]
                continue
            if len(rows) >= QUERY_LIMIT:
                raise IndexCorrupt(f"multi-vector item {part[0]} has over {QUERY_LIMIT} token rows in Milvus")
            for r in rows:
                out.setdefault(int(r["id"]) // MAX_TOKENS, []).append((int(r["id"]), r["vector"]))
        return {i: np.asarray([v for _, v in sorted(rows)], dtype=np.float32) for i, rows in out.items()}

    def maxsim(self, field: str, q: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """MaxSim of the query tokens against each item's tokens (NaN where Milvus holds none)."""
        mats = self.matrices(field, ids)
        q = np.asarray(q, dtype=np.float32)
        return np.array([float((q @ mats[int(i)].T).max(axis=1).sum()) if int(i) in mats else np.nan
                         for i in ids], dtype=np.float64)

    def ids(self, field: str) -> np.ndarray:
        """Every id Milvus holds for the field, once per row (multi-vector: once per item), sorted.

        Scans primary-key ranges (a query returns at most 16384 rows), narrowing a range whose
        answer may have been cut off; no iterator, which Milvus Lite does not fully serve.
        """
        if not self._load(field):
            return np.zeros(0, np.int64)
        name, out, lo, width = self.name(field), [], 0, QUERY_LIMIT
        while True:
            rest = self._query_ids(name, f"id >= {lo}")
            if len(rest) < QUERY_LIMIT:
                out.append(rest)
                break
            got = self._query_ids(name, f"id >= {lo} and id < {lo + width}")
            if len(got) >= QUERY_LIMIT and width > 1:
                width //= 2
                continue
            out.append(got)
            lo += width
            if len(got) < QUERY_LIMIT // 4:
                width *= 2
        arr = np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)
        return np.unique(arr // MAX_TOKENS) if self._multivector(field) else arr

    def _query_ids(self, name: str, expr: str) -> np.ndarray:
        rows = self._call("list ids", self.client.query, name, filter=expr, output_fields=["id"],
                          limit=QUERY_LIMIT, consistency_level="Strong")
        return np.array([int(r["id"]) for r in rows], np.int64)

    def count(self, field: str) -> int:
        if not self._load(field):
            return 0
        res = self._call("count", self.client.query, self.name(field), filter="",
                         output_fields=["count(*)"], consistency_level="Strong")
        return int(res[0]["count(*)"])

    def drop(self) -> None:
        """Remove every collection of this index (tests, and deleting an index on a shared server)."""
        for name in self._call("list collections", self.client.list_collections):
            if name.startswith(self.prefix + "_"):
                self._call("drop a collection", self.client.drop_collection, name)
                self._loaded.discard(name)


# --- the index's side: which backend, recovery, the delete queue, the snapshot's channel ------
def record_of(store: Any) -> dict | None:
    """The doc store's record of where the vectors live ({"backend": "milvus", "uri", "collection"})."""
    rec = store.get_meta("vectors")
    return rec if isinstance(rec, dict) and rec.get("backend") == "milvus" else None


def new_record(cfg: Any) -> dict:
    return {"backend": "milvus", "uri": cfg.milvus_uri, "collection": new_collection_prefix()}


def open_vectors(root: Path, cfg: Any, record: dict) -> MilvusVectors:
    """Connect to the index's collections where the doc store recorded them.

    A config that asks for Milvus may name another address of the same server (a host name seen
    from elsewhere); any other difference from the record is a mismatch, not a silent empty search.
    """
    from mmrag.errors import IndexMismatch

    uri = resolve_uri(record["uri"], root)
    if cfg.vectors == "milvus" and cfg.milvus_uri:
        wanted = resolve_uri(cfg.milvus_uri, root)
        if wanted != uri:
            if is_lite(wanted) or is_lite(uri):
                raise IndexMismatch(f"index {root} keeps its vectors in {record['uri']}, but the config names "
                                    f"index.milvus_uri {cfg.milvus_uri}; use the config it was built with")
            uri = wanted
    return MilvusVectors(uri, record["collection"], cfg.milvus_index, cfg.hnsw_m, cfg.hnsw_ef_search)


def _counter(store: Any, field_input: str) -> int:
    return int(store.get_meta("next_chunk_id" if field_input == "chunks" else "next_page_id", 1))


def queue_document(store: Any, doc_id: str, fields: list) -> None:
    """Inside the commit's transaction: remember the ids of a document being removed, per field."""
    con = store.con
    for f in fields:
        if f.input == "chunks":
            q = "SELECT ?, c.id FROM chunks c JOIN pages p ON c.page_id = p.id WHERE p.doc_id = ?"
        else:
            q = "SELECT ?, id FROM pages WHERE doc_id = ?"
        con.execute(f"INSERT INTO milvus_deletes(field, id) {q}", (f.name, doc_id))


def flush_deletes(mv: MilvusVectors, store: Any) -> bool:
    """Delete the queued ids from Milvus, then forget them (after the commit that removed them)."""
    rows = store.con.execute("SELECT field, id FROM milvus_deletes").fetchall()
    by_field: dict[str, list[int]] = {}
    for field, i in rows:
        by_field.setdefault(field, []).append(int(i))
    for field, ids in by_field.items():
        mv.delete(field, np.asarray(ids, np.int64))
    if rows:
        store.con.execute("DELETE FROM milvus_deletes")
    return bool(rows)


def recover(mv: MilvusVectors, store: Any, fields: list) -> bool:
    """A writer's first step: drop vectors a killed writer wrote but never committed, finish queued deletes.

    Returns whether the doc store changed (its fingerprint in manifest.json must then be rewritten).
    """
    store.con.execute(DELETES_TABLE)
    for f in fields:
        mv.delete_from(f.name, _counter(store, f.input))
    return flush_deletes(mv, store)


def row_info(doc: Any, page_number: int, page_id: int) -> dict:
    """The scalar fields of one row: what filters read inside Milvus."""
    meta = {str(k): _sqlite_text(v) for k, v in (doc.metadata or {}).items() if _sqlite_text(v) is not None}
    return {"page_id": int(page_id), "doc_id": doc.doc_id, "page_number": int(page_number), "path": doc.path,
            "metadata": meta}


def stored_row_infos(store: Any, field_input: str, ids: np.ndarray) -> list[dict]:
    """`row_info` of live chunk or page ids, read from the doc store (what a repair writes again)."""
    from types import SimpleNamespace

    key = "c.id" if field_input == "chunks" else "p.id"
    source = "chunks c JOIN pages p ON c.page_id = p.id" if field_input == "chunks" else "pages p"
    out: dict[int, dict] = {}
    ids = [int(i) for i in ids]
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        q = (f"SELECT {key}, p.id, p.doc_id, p.page_number, d.path, d.metadata FROM {source} "
             f"JOIN documents d ON d.doc_id = p.doc_id WHERE {key} IN ({','.join('?' * len(part))})")
        for item, page_id, doc_id, number, path, metadata in store.con.execute(q, part):
            doc = SimpleNamespace(doc_id=doc_id, path=path, metadata=json.loads(metadata))
            out[int(item)] = row_info(doc, number, page_id)
    return [out[i] for i in ids]


class MilvusField:
    """A snapshot's view of one field in Milvus: candidates for a query, exact scores of given ids."""

    kind = "milvus"

    def __init__(self, mv: MilvusVectors, field: str, next_id: int, queued: int, multivector: bool):
        self.mv, self.field, self.next_id, self.queued, self.multivector = mv, field, next_id, queued, multivector

    def candidates(self, q: np.ndarray, depth: int, expr: str) -> tuple[np.ndarray, np.ndarray]:
        """Best ids in Milvus under ``expr``; ids this commit does not hold yet are excluded there."""
        key = "item_id" if self.multivector else "id"
        return self.mv.search(self.field, q, depth + self.queued, _and(f"{key} < {self.next_id}", expr))

    def scores(self, q: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact scores from the stored vectors (NaN where Milvus holds none), as the FAISS path computes them."""
        if self.multivector:  # the candidates' MaxSim, computed moments ago from the same rows, is reused
            key, known = self.mv.last_maxsim
            known = known if key == (self.field, np.asarray(q, np.float32).tobytes()) else {}
            todo = np.array([i for i in ids if int(i) not in known], np.int64)
            known = {**known, **dict(zip(todo.tolist(), self.mv.maxsim(self.field, q, todo).tolist()))}
            return np.array([known[int(i)] for i in ids], dtype=np.float64)
        got = self.mv.vectors(self.field, ids)
        out = np.full(len(ids), np.nan)
        rows = [j for j, i in enumerate(ids) if int(i) in got]
        if rows:
            out[rows] = np.stack([got[int(ids[j])] for j in rows]) @ np.asarray(q, np.float32).reshape(-1)
        return out


def snapshot_fields(mv: MilvusVectors, store: Any, fields: list, multivector: dict[str, bool]) -> dict:
    """Inside the snapshot's read transaction: each field's channel, bounded by the commit's counters."""
    queued: dict = {}
    if store.con.execute("SELECT 1 FROM sqlite_master WHERE name='milvus_deletes'").fetchone():
        queued = dict(store.con.execute("SELECT field, count(*) FROM milvus_deletes GROUP BY field").fetchall())
    live = {"chunks": store.con.execute("SELECT count(*) FROM chunks").fetchone()[0],
            "pages": store.con.execute("SELECT count(*) FROM pages").fetchone()[0]}
    for f in fields:
        if live[f.input] and not mv.exists(f.name):
            raise IndexCorrupt(f"Milvus at {mv.uri} has no collection {mv.name(f.name)}, though the index holds "
                               f"{live[f.input]} {f.input} for field '{f.name}'; point index.milvus_uri at the "
                               "Milvus the index was built with, or index the documents again")
    return {f.name: MilvusField(mv, f.name, _counter(store, f.input), int(queued.get(f.name, 0)),
                                multivector.get(f.name, False)) for f in fields}


def search_expression(filters: dict | None, allowed_pages: np.ndarray | None) -> str:
    """The filter as a Milvus expression, or the doc store's page ids where it cannot be one."""
    if allowed_pages is None:
        return ""
    expr = filter_expression(filters) if filters else None
    if expr is None:
        return f"page_id in [{', '.join(str(int(p)) for p in allowed_pages)}]" if len(allowed_pages) else "id < 0"
    return expr

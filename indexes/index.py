"""The index: open/create a folder, add/delete/upsert documents in atomic commits, search pages.

One writer at a time (a file lock); any number of readers, each on a consistent snapshot that
refreshes when a newer commit exists. A commit (1) encodes the pending documents, (2) writes one
new immutable segment per field, (3) rebuilds BM25 from the stored terms, (4) records all of it
in one SQLite transaction, then (5) rewrites manifest.json. A writer killed at any point leaves
the previous commit intact; unreferenced folders it left are removed by the next writer.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from mmrag.config import FieldConfig, IndexConfig
from mmrag.errors import ConfigError, IndexCorrupt, IndexLocked, IndexMismatch, IndexNotFound
from mmrag.indexes import integrity
from mmrag.indexes import manifest as mf
from mmrag.indexes import sparse
from mmrag.indexes.dense import build_segment
from mmrag.indexes.docstore import DocStore
from mmrag.indexes.layout import BM25_DIR, DOCSTORE, LOCK, SEGMENTS, dir_checksums, remove_tree, unique_name
from mmrag.indexes.snapshot import BM25, PageScores, Snapshot
from mmrag.types import Chunk, Document, Hit, Page

log = logging.getLogger(__name__)

EncoderFactory = Callable[[FieldConfig], Any]


def default_encoder_factory(f: FieldConfig) -> Any:
    from mmrag.encoders import load

    return load(f.encoder, **f.options)


@dataclass
class _Pending:
    doc: Document
    pages: list[Page]
    chunks: list[Chunk]
    terms: list[str]
    file_sha256: str | None
    vectors: dict[str, Any] | None  # precomputed vectors by field (benchmarks, tests)
    page_terms: list[str] | None = None  # stemmed page texts, for the page-level BM25


class Index:
    """A multi-field page index in one folder. Use `Index.open(path, fields, cfg, write=...)`."""

    def __init__(self, root: Path, fields: list[FieldConfig], cfg: IndexConfig, *, write: bool,
                 encoder_factory: EncoderFactory | None = None, repair: bool = False):
        self.root = Path(root)
        self.fields = list(fields)
        self.cfg = cfg
        self.write = write
        self._factory = encoder_factory or default_encoder_factory
        self._encoders: dict[str, Any] = {}
        self._snapshot: Snapshot | None = None
        self._lock_fd: int | None = None
        self._pending: list[_Pending] = []
        self._deletes: list[str] = []
        self._last_commit = time.monotonic()
        self._commit_overhead = 0.0
        self._repair = repair
        self._milvus: Any = None  # MilvusVectors when the index keeps its vectors in Milvus
        if write:
            self._open_writer()
        else:
            self.manifest = mf.read_manifest(self.root)
            mf.check_fields(self.root, self.manifest, self.fields)
            if not (self.root / DOCSTORE).is_file():
                raise IndexCorrupt(f"{self.root / DOCSTORE} is missing; {integrity.reindex_hint(self.root)}")
            integrity.check_docstore(self.root, self.manifest.get("docstore"))
            self.store = DocStore(self.root / DOCSTORE, readonly=True)

    @classmethod
    def open(cls, root: str | Path, fields: list[FieldConfig], cfg: IndexConfig, *, write: bool = False,
             encoder_factory: EncoderFactory | None = None, repair: bool = False) -> "Index":
        """``repair=True`` (writers) opens a damaged index so `mmrag.indexes.repair` can mend it."""
        return cls(Path(root), fields, cfg, write=write, encoder_factory=encoder_factory, repair=repair)

    # --- writer setup ------------------------------------------------------------------------
    def _open_writer(self) -> None:
        existing = (self.root / "manifest.json").is_file() or (self._repair and (self.root / DOCSTORE).is_file())
        if existing:
            try:
                self.manifest = mf.read_manifest(self.root)
            except (IndexCorrupt, IndexNotFound):
                if not (self._repair and (self.root / DOCSTORE).is_file()):
                    raise
                self.manifest = mf.new_manifest(self.fields, self.cfg)  # rebuilt from the config and doc store
            mf.check_fields(self.root, self.manifest, self.fields)
        elif self.root.exists() and any(p for p in self.root.iterdir() if p.name not in (LOCK, "uploads", "images")):
            raise IndexNotFound(f"{self.root} exists and is not an mmrag index; choose an empty or new folder")
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise IndexLocked(f"another process is writing to {self.root}; wait for it to finish") from None
        if existing and not self._repair:
            try:
                integrity.check_docstore(self.root, self.manifest.get("docstore"), writer=True)
            except BaseException:
                self._release_lock()
                raise
        try:
            self.store = DocStore(self.root / DOCSTORE)
        except BaseException:
            self._release_lock()
            raise
        if not existing:
            self.manifest = mf.new_manifest(self.fields, self.cfg)
            self.store.set_meta("commit", 0)
            if self.cfg.vectors == "milvus":
                from mmrag.indexes import milvus

                self.store.set_meta("vectors", milvus.new_record(self.cfg))
            mf.write_manifest(self.root, self.manifest)
        try:
            self._open_milvus(writer=True)
        except BaseException:
            self._release_lock()
            self.store.close()
            raise
        self._collect_garbage()
        if int(self.manifest.get("commit", -1)) != int(self.store.get_meta("commit", 0)):
            self._write_manifest()  # a writer died between its commit and the manifest

    def _open_milvus(self, writer: bool) -> None:
        """Connect to Milvus when the doc store records the vectors there; a writer first removes orphans."""
        from mmrag.indexes import milvus

        record = milvus.record_of(self.store)
        if record is None:
            if writer and self.cfg.vectors == "milvus":
                raise IndexMismatch(f"index {self.root} keeps its vectors in FAISS segments, but the config asks "
                                    "for index.vectors: milvus; use the config it was built with, or index into a "
                                    "new folder")
            return
        self._milvus = milvus.open_vectors(self.root, self.cfg, record)
        if not writer:
            return
        try:
            changed = milvus.recover(self._milvus, self.store, self.fields)
        except BaseException:
            self._milvus.close()
            self._milvus = None
            raise
        if changed:
            self._write_manifest()  # the doc store changed: record its new fingerprint

    def close(self) -> None:
        """Commit what is pending (writers), release the lock, close the store and Milvus connection."""
        try:
            if self.write and (self._pending or self._deletes):
                self.commit()
        finally:
            self._release_lock()
            self.store.close()
            if self._milvus is not None:
                self._milvus.close()
                self._milvus = None

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self._pending, self._deletes = [], []  # a failed run commits nothing half-done
        self.close()

    # --- encoders ----------------------------------------------------------------------------
    def encoder(self, name: str) -> Any:
        """The field's encoder, loaded once and checked against the manifest's identity."""
        if name not in self._encoders:
            f = next(f for f in self.fields if f.name == name)
            enc = self._factory(f)
            mf.check_identity(self.root, self.manifest, name, enc.identity)
            self._encoders[name] = enc
        return self._encoders[name]

    def encode_query(self, name: str, query: str) -> np.ndarray:
        enc = self.encoder(name)
        q = enc.encode_query(query)
        return np.asarray(q[0] if not enc.multivector and np.ndim(q) == 2 else q, dtype=np.float32)

    # --- adding and deleting -----------------------------------------------------------------
    def add(self, doc: Document, pages: list[Page], chunks: list[Chunk], *, file_sha256: str | None = None,
            vectors: dict[str, Any] | None = None) -> None:
        """Queue a document (replacing any with the same id or path); commits when a batch is full.

        ``vectors`` ({field: one vector per chunk, or per page for page fields}) skips encoding;
        they must come from the field's own encoder, whose identity the manifest records.
        """
        self._require_writer()
        self._pending = [p for p in self._pending if p.doc.doc_id != doc.doc_id and p.doc.path != doc.path]
        terms = _stemmed([c.index_text for c in chunks]) if self.cfg.sparse else [""] * len(chunks)
        page_terms = _stemmed([p.text for p in pages]) if self.cfg.page_bm25 else None
        self._pending.append(_Pending(doc, pages, chunks, terms, file_sha256, vectors, page_terms))
        if self.commit_due():
            self.commit()

    def delete(self, doc_ids: Iterable[str]) -> None:
        self._require_writer()
        ids = set(doc_ids)
        self._pending = [p for p in self._pending if p.doc.doc_id not in ids]
        self._deletes.extend(ids)

    def commit_due(self) -> bool:
        """Batch full or interval passed, but never sooner than 10× the last commit's own cost.

        A commit rebuilds BM25 over the whole corpus, so its cost grows with the index; spacing
        commits by 10× that cost keeps commits under ~10% of indexing time at any size.
        """
        if not self._pending:
            return False
        elapsed = time.monotonic() - self._last_commit
        if elapsed < 10 * self._commit_overhead:
            return False
        return len(self._pending) >= self.cfg.commit_docs or elapsed >= self.cfg.commit_seconds

    @property
    def pending(self) -> int:
        return len(self._pending)

    def commit(self, progress: bool = False) -> int:
        """Make pending adds and deletes visible atomically; returns the new commit number."""
        self._require_writer()
        if not self._pending and not self._deletes:
            return int(self.store.get_meta("commit", 0))
        vectors = self._encode_pending(progress)
        with self._transaction() as (number, created):
            store = self.store
            replaced = set(self._deletes)
            for p in self._pending:
                old = store.document_by_path(p.doc.path)
                if old is not None:
                    replaced.add(old["doc_id"])
                if store.document(p.doc.doc_id) is not None:
                    replaced.add(p.doc.doc_id)
            for doc_id in replaced:
                if self._milvus is not None:
                    from mmrag.indexes.milvus import queue_document

                    queue_document(store, doc_id, self.fields)
                store.delete_document(doc_id)
            ids: dict[str, list[np.ndarray]] = {f.name: [] for f in self.fields}
            infos: dict[str, list[dict]] = {f.name: [] for f in self.fields}
            for p in self._pending:
                page_ids, chunk_ids = store.add_document(p.doc, p.pages, p.chunks, p.terms, p.file_sha256,
                                                         page_terms=p.page_terms)
                for f in self.fields:
                    ids[f.name].append(chunk_ids if f.input == "chunks" else page_ids)
                if self._milvus is not None:
                    self._row_infos(p, page_ids, infos)
            for f in self.fields:
                field_ids = np.concatenate(ids[f.name]) if ids[f.name] else np.zeros(0, np.int64)
                if self._milvus is not None:  # written before the SQLite commit that makes these ids live
                    self._write_milvus(f, field_ids, vectors[f.name], infos[f.name])
                    continue
                if len(field_ids):
                    created.append(self._write_segment(f, field_ids, vectors[f.name], number))
                self._maybe_merge(f, number, created)
        return number

    @contextmanager
    def _transaction(self) -> Iterator[tuple[int, list[Path]]]:
        """One commit: the caller's changes plus a fresh BM25, all or nothing; then the manifest and GC.

        Yields the new commit number and the list the caller appends its new folders to (removed
        again if anything fails before SQLite commits).
        """
        t0 = time.monotonic()
        store = self.store
        created: list[Path] = []
        store.begin(write=True)
        try:
            number = int(store.get_meta("commit", 0)) + 1
            yield number, created
            self._build_sparse(number, created)
            store.set_meta("commit", number)
            store.commit()
        except BaseException:
            store.rollback()
            for path in created:
                remove_tree(path)
            self._forget_uncommitted_vectors()
            raise
        if self._milvus is not None:
            from mmrag.indexes.milvus import flush_deletes

            flush_deletes(self._milvus, store)  # a kill before this leaves the queue to the next writer
        self._pending, self._deletes = [], []
        self._write_manifest()
        self._collect_garbage()
        self._last_commit = time.monotonic()
        self._commit_overhead = self._last_commit - t0
        self._snapshot = None

    def _build_sparse(self, number: int, created: list[Path]) -> None:
        """BM25 over all stored terms (chunks, and pages with ``page_bm25``), recorded in the open transaction."""
        store = self.store
        for enabled, prefix, terms, key in ((self.cfg.sparse, "bm25", store.iter_terms, "bm25"),
                                            (self.cfg.page_bm25, "bm25-pages", store.iter_page_terms, "bm25_pages")):
            if enabled:
                created.append(sparse.build(self.root / BM25_DIR, unique_name(prefix, number), terms(),
                                            self.cfg.bm25_k1, self.cfg.bm25_b))
                store.set_meta(key, created[-1].name)
                store.set_meta(f"{key}_checksums", dir_checksums(created[-1]))

    def repair_commit(self, drop: list[str], add: dict[str, tuple[np.ndarray, list]]) -> int:
        """One commit that drops damaged segments, adds ``{field: (ids, vectors)}`` rebuilt from the doc
        store, and rebuilds BM25 from the stored terms: what `mmrag index --repair` writes."""
        self._require_writer()
        if self._pending or self._deletes:
            raise ConfigError("commit or drop the pending documents before a repair")
        for f in self.fields:  # a manifest rebuilt from the config learns each encoder again
            self._record_identity(f.name, self.encoder(f.name).identity)
        with self._transaction() as (number, created):
            self.store.drop_segments(drop)
            for f in self.fields:
                if f.name in add and len(add[f.name][0]):
                    ids = np.asarray(add[f.name][0], np.int64)
                    if self._milvus is not None:  # live ids: their rows go back into the collection
                        from mmrag.indexes.milvus import stored_row_infos

                        self._write_milvus(f, ids, add[f.name][1], stored_row_infos(self.store, f.input, ids))
                        continue
                    created.append(self._write_segment(f, ids, add[f.name][1], number))
        return number

    def _forget_uncommitted_vectors(self) -> None:
        """After a failed commit: remove the vectors it wrote to Milvus (else the next writer does)."""
        if self._milvus is None:
            return
        from mmrag.indexes.milvus import recover

        try:
            recover(self._milvus, self.store, self.fields)
        except Exception as e:  # noqa: BLE001 - the original error matters more; the next writer retries
            log.warning("could not remove uncommitted vectors from Milvus (%s); the next writer will", e)

    def _row_infos(self, p: _Pending, page_ids: np.ndarray, infos: dict[str, list[dict]]) -> None:
        from mmrag.indexes.milvus import row_info

        by_number = {pg.page_number: int(pid) for pg, pid in zip(p.pages, page_ids)}
        for f in self.fields:
            if f.input == "chunks":
                infos[f.name] += [row_info(p.doc, c.page_number, by_number[c.page_number]) for c in p.chunks]
            else:
                infos[f.name] += [row_info(p.doc, pg.page_number, pid) for pg, pid in zip(p.pages, page_ids)]

    def _write_milvus(self, f: FieldConfig, ids: np.ndarray, vectors: list, infos: list[dict]) -> None:
        identity = self.manifest_field(f.name)["identity"]
        multi = bool(identity.get("multivector"))
        if not multi:
            for v in vectors:
                if np.asarray(v).size != identity["dim"]:
                    raise IndexMismatch(f"field '{f.name}' got a vector of shape {np.shape(v)}; the index holds "
                                        f"{identity['dim']}-d")
        self._milvus.ensure(f.name, identity["dim"], multi)
        if len(ids):
            self._milvus.write(f.name, ids, infos, vectors, multi)

    def _require_writer(self) -> None:
        if not self.write:
            raise ConfigError("this index was opened read-only; open it with write=True to change it")

    def _encode_pending(self, progress: bool) -> dict[str, list]:
        """Per field, vectors (or matrices) for the pending items in order."""
        out: dict[str, list] = {}
        for f in self.fields:
            enc = self.encoder(f.name)
            self._record_identity(f.name, enc.identity)
            given = [p.vectors.get(f.name) if p.vectors else None for p in self._pending]
            if all(g is not None for g in given):  # computed by the caller with this field's encoder
                out[f.name] = [np.asarray(v) for g in given for v in g]
                continue
            if f.input == "chunks":
                texts = [c.index_text for p in self._pending for c in p.chunks]
                vecs = _batched(lambda b: enc.encode_text(b), texts, 256, progress, f"encode {f.name}")
            else:
                pages = [pg for p in self._pending for pg in p.pages]
                vecs = _batched(lambda b: enc.encode_page(b), pages, 16, progress, f"encode {f.name}")
            out[f.name] = vecs
        return out

    def manifest_field(self, name: str) -> dict:
        return next(f for f in self.manifest["fields"] if f["name"] == name)

    def _record_identity(self, name: str, identity: dict) -> None:
        entry = self.manifest_field(name)
        if entry.get("identity") is None:
            entry["identity"] = dict(identity)
        else:
            mf.check_identity(self.root, self.manifest, name, identity)

    def _write_segment(self, f: FieldConfig, ids: np.ndarray, vectors: list, number: int) -> Path:
        name = unique_name(f"seg-{f.name}", number)
        parent = self.root / SEGMENTS
        dim = self.manifest_field(f.name)["identity"]["dim"]
        if self.manifest_field(f.name)["identity"].get("multivector"):
            path, kind = _build_multivector(parent, name, ids, vectors, dim), "multivector"
        else:
            arr = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in vectors])
            if arr.shape != (len(ids), dim):
                raise IndexMismatch(f"field '{f.name}' got vectors of shape {arr.shape}; the index holds {dim}-d")
            path, kind = build_segment(parent, name, f.name, ids, arr, self.cfg)
        self.store.add_segment(name, f.name, len(ids), kind, dir_checksums(path))
        return path

    def _maybe_merge(self, f: FieldConfig, number: int, created: list[Path]) -> None:
        """Keep at most ``max_segments`` dense segments per field: merge the smallest half, dropping dead rows."""
        segs = [s for s in self.store.segments() if s["field"] == f.name and s["kind"] != "multivector"]
        if len(segs) <= self.cfg.max_segments:
            return
        segs.sort(key=lambda s: s["count"])
        victims = segs[:max(2, len(segs) // 2)]
        from mmrag.indexes.snapshot import load_segment

        live = self.store.chunk_ids() if f.input == "chunks" else self.store.page_ids()
        ids_parts, vec_parts = [], []
        for s in victims:
            seg = load_segment(self.root, s, self.cfg)  # never merge damaged vectors into a fresh segment
            keep = np.isin(seg.ids, live)
            ids_parts.append(seg.ids[keep])
            vec_parts.append(np.asarray(seg.vectors[keep], dtype=np.float32))
        self.store.drop_segments(s["name"] for s in victims)
        ids = np.concatenate(ids_parts)
        if len(ids):
            name = unique_name(f"seg-{f.name}", number)
            path, kind = build_segment(self.root / SEGMENTS, name, f.name, ids, np.concatenate(vec_parts), self.cfg)
            self.store.add_segment(name, f.name, len(ids), kind, dir_checksums(path))
            created.append(path)

    def _write_manifest(self) -> None:
        m = self.manifest
        m["commit"] = int(self.store.get_meta("commit", 0))
        m["mmrag_version"] = mf.__version__
        m["updated"] = time.time()
        m["segments"] = self.store.segments()
        m["sparse"]["folder"] = self.store.get_meta("bm25")
        if m["sparse"]["folder"]:
            m["sparse"]["checksums"] = (self.store.get_meta("bm25_checksums")
                                        or dir_checksums(self.root / BM25_DIR / m["sparse"]["folder"]))
        pages_folder = self.store.get_meta("bm25_pages")
        if pages_folder:
            m["sparse"]["pages_folder"] = pages_folder
            m["sparse"]["pages_checksums"] = (self.store.get_meta("bm25_pages_checksums")
                                              or dir_checksums(self.root / BM25_DIR / pages_folder))
        m["counts"] = self.store.counts()
        if self._milvus is not None:
            m["vectors"] = self.store.get_meta("vectors")
        m["docstore"] = integrity.docstore_record(self.root, self.store.con, m["commit"])
        mf.write_manifest(self.root, m)

    def _collect_garbage(self) -> None:
        """Remove folders no commit refers to (left by a killed writer, or replaced)."""
        keep = {s["name"] for s in self.store.segments()} | {self.store.get_meta("bm25"),
                                                             self.store.get_meta("bm25_pages")}
        for parent in (self.root / SEGMENTS, self.root / BM25_DIR):
            if parent.is_dir():
                for p in parent.iterdir():
                    if p.name not in keep:
                        remove_tree(p)
        for p in self.root.iterdir():
            if p.name.startswith(".manifest.json.tmp"):
                p.unlink(missing_ok=True)

    # --- reading -----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The latest committed state (reloaded when a writer committed since)."""
        commit = int(self.store.get_meta("commit", 0))
        if self._snapshot is None or self._snapshot.commit != commit:
            for attempt in range(5):
                try:
                    manifest = mf.read_manifest(self.root)
                    if not self.write:
                        integrity.check_docstore(self.root, manifest.get("docstore"))
                    if self._milvus is None:
                        self._open_milvus(writer=False)
                    self._snapshot = Snapshot(self.root, self.store, self.fields, self.cfg, manifest,
                                              milvus=self._milvus)
                    break
                except (FileNotFoundError, IndexNotFound, IndexCorrupt) as e:
                    # a writer replaced those files between our read of the doc store and the load
                    if attempt == 4:
                        if isinstance(e, IndexCorrupt):
                            raise
                        raise IndexCorrupt(f"{self.root}: files named by the doc store are missing or "
                                           f"unreadable; {integrity.repair_hint(self.root)}") from None
                    time.sleep(0.05 * (attempt + 1))
        return self._snapshot

    def search_pages(self, query: str, k: int, filters: dict | None = None,
                     channels: list[str] | None = None, depth: int | None = None) -> PageScores:
        snap = self.snapshot()
        allowed = self.store.filter_pages(filters) if filters else None
        return snap.search(query, lambda n: self.encode_query(n, query), k, allowed, channels, depth,
                           filters=filters)

    def search(self, query: str, k: int = 10, filters: dict | None = None,
               channels: list[str] | None = None) -> list[Hit]:
        """Pages best first, each with its best chunk as snippet and that chunk's box."""
        return self.hits(self.search_pages(query, k, filters, channels))

    def hits(self, ps: PageScores) -> list[Hit]:
        pages = self.store.pages_by_id(ps.page_ids)
        first = self.store.first_chunks([p for p in ps.page_ids if int(p) not in ps.best_chunk])
        chunk_for = {int(p): ps.best_chunk.get(int(p), first.get(int(p))) for p in ps.page_ids}
        chunks = self.store.chunks_by_id(c for c in chunk_for.values() if c is not None)
        out = []
        for i, pid in enumerate(ps.page_ids):
            if int(pid) not in pages:
                continue
            page, path = pages[int(pid)]
            chunk = chunks.get(chunk_for[int(pid)]) if chunk_for[int(pid)] is not None else None
            out.append(Hit(doc_id=page.doc_id, path=path, page=page.page_number, score=float(ps.scores[i]),
                           snippet=chunk["text"] if chunk else page.text[:500],
                           bbox=chunk["bbox"] if chunk else None,
                           chunk_id=chunk["chunk_id"] if chunk else None,
                           scores={n: float(s[i]) for n, s in ps.channels.items()},
                           text=page.text, blocks=page.blocks, image_path=page.image_path))
        return out

    def documents(self) -> list[dict]:
        return self.store.documents()

    def page(self, doc_id: str, page_number: int) -> Page | None:
        return self.store.page(doc_id, page_number)

    def verify(self) -> list[str]:
        """Check every file of the live commit (see `mmrag.indexes.verify`); the problems found."""
        from mmrag.indexes.verify import verify_index

        return [p["message"] for p in verify_index(self.root)["problems"]]


def _stemmed(texts: list[str]) -> list[str]:
    """Each text as the space-joined terms BM25 indexes (what the doc store keeps)."""
    return [" ".join(t) for t in sparse.tokenize(texts)]


def _batched(fn: Callable[[list], Any], items: list, size: int, progress: bool, desc: str) -> list:
    from tqdm import tqdm

    out: list = []
    with tqdm(total=len(items), desc=desc, disable=not progress or len(items) <= size, unit="item") as bar:
        for i in range(0, len(items), size):
            batch = fn(items[i:i + size])
            out.extend(list(batch))
            bar.update(len(items[i:i + size]))
    return out


def _build_multivector(parent: Path, name: str, ids: np.ndarray, matrices: list, dim: int) -> Path:
    from mmrag.indexes.layout import new_tmp_dir, publish_dir
    from mmrag.indexes.multivector import MultiVectorStore

    tmp = new_tmp_dir(parent, name)
    store = MultiVectorStore(dim)
    store.add([int(i) for i in ids], [np.asarray(m, dtype=np.float32) for m in matrices])
    store.save(tmp)
    np.save(tmp / "mmrag_ids.npy", np.sort(np.asarray(ids, dtype=np.int64)), allow_pickle=False)
    return publish_dir(tmp, parent / name)


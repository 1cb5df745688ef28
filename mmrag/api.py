"""The Python API: ``RAG.from_config(...)``, ``.index(paths)``, ``.search(q)``, ``.ask(q)``.

The CLI and the Gradio app are thin layers over this class. A ``RAG`` reads through one
long-lived index reader (which follows new commits) and opens the writer only while it
changes the index, so many readers and one writer can share a folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable

from mmrag.config import Config, FieldConfig, _merge, from_dict, load_config
from mmrag.errors import ConfigError, QueryError, UploadRejected
from mmrag.indexes.layout import sha256_file
from mmrag.types import Answer, Candidate, Hit, Page

log = logging.getLogger(__name__)

_ENCODERS: dict[str, Any] = {}  # loaded models shared by every RAG in the process
ENGINES = ("local", "ray")  # who ingests and encodes for RAG.index; the index writer is always this process


def cached_encoder(f: FieldConfig) -> Any:
    """Load a field's encoder once per process (models are read-only after loading)."""
    from mmrag.encoders import load

    key = json.dumps([f.encoder, f.options], sort_keys=True, default=str)
    if key not in _ENCODERS:
        _ENCODERS[key] = load(f.encoder, **f.options)
    return _ENCODERS[key]


def check_query(query: str, max_chars: int) -> str:
    """Refuse an empty, oversized or non-Unicode query with a message that says what to do."""
    from mmrag.textcheck import clean_query

    if query is not None and not isinstance(query, str):
        raise QueryError(f"the query must be text, got {type(query).__name__}")
    query = clean_query(query) if query is not None else query
    if not query or not query.strip():
        raise QueryError("the query is empty: give some words to search for")
    if len(query) > max_chars:
        raise QueryError(f"the query has {len(query):,} characters; the limit is {max_chars:,} "
                         "(search.max_query_chars): shorten it")
    return query.strip()


def chunk_document(doc: Any, words: int) -> list:
    """A document's retrieval chunks, as every engine cuts them (``ingest.chunk_words``)."""
    from mmrag.ingest import chunk_pages

    return chunk_pages(list(doc.pages), words=words)


def _report_entry(path: str, doc_id: str | None, status: str = "ok", error: dict | None = None,
                  pages: int = 0, ocr_pages: int = 0, seconds: float = 0.0, **extra: Any) -> dict:
    return {"path": path, "doc_id": doc_id, "status": status, "error": error, "pages": pages,
            "ocr_pages": ocr_pages, "seconds": round(seconds, 3), **extra}


class RAG:
    """Index documents, search their pages, and answer questions with citations."""

    def __init__(self, config: Config, index_dir: str | Path | None = None,
                 encoder_factory: Callable[[FieldConfig], Any] | None = None):
        self.config = config
        self.index_dir = Path(index_dir) if index_dir is not None else None
        self._factory = encoder_factory or cached_encoder
        self._reader = None
        self._generator = None
        self._reranker = None

    @classmethod
    def from_config(cls, config: str | Path | Config | None = None, index: str | Path | None = None,
                    **overrides: Any) -> "RAG":
        """Read a preset (default configs/default.yaml) and apply ``overrides``: sections such as
        ``search={"k": 5}``, or dotted keys such as ``**{"index.fusion": "rrf"}`` (``index=`` names
        the folder). Overrides are checked as strictly as the YAML."""
        overrides = _expand_dotted(overrides)
        if isinstance(config, Config):
            cfg = from_dict(_merge(config.to_dict(), overrides), config.source) if overrides else config
        else:
            cfg = load_config(config, overrides or None)
        return cls(cfg, index)

    # --- plumbing ----------------------------------------------------------------------------
    def _dir(self) -> Path:
        if self.index_dir is None:
            raise ConfigError("no index folder: pass index=PATH to RAG.from_config (CLI: --index PATH)")
        return self.index_dir

    def _open(self, write: bool, encoder_factory: Callable[[FieldConfig], Any] | None = None):
        from mmrag.indexes.index import Index

        return Index.open(self._dir(), self.config.fields, self.config.index, write=write,
                          encoder_factory=encoder_factory or self._factory)

    @property
    def reader(self):
        """The read-only index (opened once; follows the writer's commits)."""
        if self._reader is None:
            self._reader = self._open(write=False)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()  # the doc store, and the Milvus connection where vectors live there
            self._reader = None

    # --- indexing ----------------------------------------------------------------------------
    def index(self, paths: str | Path | Iterable[str | Path], *, workers: int | None = None,
              passwords: dict | None = None, progress: bool = True, prune: bool = False,
              dry_run: bool = False, on_document: Callable[[dict], None] | None = None,
              engine: str = "local", ray_address: str | None = None) -> dict:
        """Ingest, encode and store documents; returns the report.json dict.

        Unchanged documents (same path, same SHA-256 of the bytes) are skipped, changed ones
        re-indexed in place, and a byte-identical copy under another path is skipped as a
        duplicate. Commits happen in batches, so a killed run resumes where it stopped.
        ``engine="ray"`` ingests and encodes as a Ray Data pipeline (a local Ray, or the cluster
        at ``ray_address``); this process stays the one index writer either way.
        """
        from mmrag.ingest import discover

        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
        if ray_address and engine != "ray":
            raise ConfigError("a Ray address needs the Ray engine: add --engine ray (engine=\"ray\")")
        if isinstance(paths, (str, Path)):
            paths = [paths]
        roots = [Path(p).resolve() for p in paths]
        files = [Path(f).resolve() for f in discover(list(roots))]
        existing_index = (self._dir() / "manifest.json").is_file()
        identities = None
        if engine == "ray" and not dry_run:
            from mmrag.engines.ray_engine import ReportedIdentities

            identities = ReportedIdentities(self._factory)  # the writer checks the actors' identities
        ix = (self._open(write=True, encoder_factory=identities) if not dry_run
              else (self._open(write=False) if existing_index else None))
        try:
            entries, todo, pruned = self._plan(ix.store if ix is not None else None, roots, files, prune=prune,
                                               dry_run=dry_run, on_document=on_document)
            if dry_run:
                return _report(entries)
            shas = {str(f): sha for f, sha in todo}
            if engine == "ray":
                from mmrag.engines.ray_engine import ingest_and_encode

                outcomes = ingest_and_encode(self, [f for f, _ in todo], workers=workers, passwords=passwords,
                                             address=ray_address, identities=identities)
            else:
                from mmrag.ingest import ingest_many

                outcomes = ((r, None, None) for r in ingest_many(
                    [f for f, _ in todo], self.config.ingest, workers=workers or self.config.ingest.workers,
                    passwords=passwords, progress=progress))
            with contextlib.closing(outcomes):  # a failed add stops the engine (and a Ray it started) now
                for result, chunks, vectors in outcomes:
                    entry = self._add_result(ix, result, shas, chunks, vectors)
                    entries.append(entry)
                    if on_document:
                        on_document(entry)
            if pruned:
                ix.delete(d["doc_id"] for d in pruned)
                entries += [_report_entry(d["path"], d["doc_id"], skipped="pruned") for d in pruned]
            ix.commit(progress=progress)
        finally:
            if ix is not None:
                ix.close()
        return _report(entries)

    def _plan(self, store: Any, roots: list[Path], files: list[Path], *, prune: bool, dry_run: bool,
              on_document: Callable[[dict], None] | None) -> tuple[list[dict], list[tuple[Path, str]], list[dict]]:
        """Decide per file, whatever the engine: skip (unchanged, duplicate) or (re)index.

        Returns the report entries of skipped files (and, for a dry run, of what would change),
        the files to ingest with their SHA-256, and the indexed documents to remove.
        """
        entries: list[dict] = []
        todo: list[tuple[Path, str]] = []
        stale: list[dict] = []  # old versions of files that now duplicate another file
        seen_sha: dict[str, str] = {}
        for f in files:
            sha = sha256_file(f)
            old = store.document_by_path(str(f)) if store else None
            twin = seen_sha.get(sha)
            if twin is None and store is not None:
                d = store.document_by_sha(sha)
                # the same bytes under another path that still exists; a vanished path is a move
                twin = d["path"] if d and d["path"] != str(f) and Path(d["path"]).exists() else None
            if old is not None and old["file_sha256"] == sha:
                entry = _report_entry(str(f), old["doc_id"], pages=old["pages"], skipped="unchanged")
            elif twin is not None:
                entry = _report_entry(str(f), None, skipped=f"duplicate of {twin}")
                if old is not None:
                    stale.append(old)
            else:
                seen_sha[sha] = str(f)
                todo.append((f, sha))
                if not dry_run:
                    continue
                entry = _report_entry(str(f), None, action="update" if old else "add")
            entries.append(entry)
            if on_document:
                on_document(entry)
        pruned = stale + (self._prune_list(store, roots, files) if prune and store else [])
        if dry_run:
            entries += [_report_entry(d["path"], d["doc_id"], action="delete") for d in pruned]
        return entries, todo, pruned

    def _add_result(self, ix: Any, result: Any, shas: dict[str, str], chunks: list | None = None,
                    vectors: dict | None = None) -> dict:
        """One ingested file into the writer (chunked here unless an engine did it, encoded at
        commit unless ``vectors`` came with it); returns its report entry."""
        path = str(Path(result.path).resolve())
        if getattr(result, "skipped", False):
            return _report_entry(path, result.doc_id, skipped="duplicate")
        if result.error is not None or result.document is None:
            return _report_entry(path, None, status="error", error=_as_error(result.error), seconds=result.seconds)
        doc = result.document
        doc.path = path
        pages = list(doc.pages)
        if self.config.index.store_images:
            self._store_images(doc.doc_id, pages)
        if chunks is None:
            chunks = chunk_document(doc, self.config.ingest.chunk_words)
        ix.add(doc, pages, chunks, file_sha256=shas.get(path), vectors=vectors)
        return _report_entry(path, doc.doc_id, pages=len(pages), ocr_pages=sum(1 for p in pages if p.ocr),
                             seconds=result.seconds)

    @staticmethod
    def _prune_list(store: Any, roots: list[Path], files: list[Path]) -> list[dict]:
        """Indexed documents under the given folders whose file is gone (or no longer found)."""
        present = {str(f) for f in files}
        out = []
        for d in store.documents():
            p = Path(d["path"])
            under = any(p == r or r in p.parents for r in roots)
            if (under and d["path"] not in present) or not p.exists():
                out.append(d)
        return out

    def _store_images(self, doc_id: str, pages: list[Page]) -> None:
        from mmrag.indexes.layout import write_bytes_atomic
        import io

        folder = self._dir() / "images" / doc_id
        folder.mkdir(parents=True, exist_ok=True)
        for p in pages:
            target = folder / f"{p.page_number}.png"
            if not target.is_file():
                buf = io.BytesIO()
                p.image().save(buf, format="PNG")
                write_bytes_atomic(target, buf.getvalue())
            p.image_path = str(target)

    def add_bytes(self, data: bytes, name: str) -> dict:
        """Index one uploaded file: checked, stored under the index folder, then indexed."""
        ui = self.config.ui
        base = os.path.basename(name.replace("\\", "/"))
        ext = base.rsplit(".", 1)[-1].lower() if "." in base else ""
        if ext not in [t.lower() for t in ui.allowed_types]:
            raise UploadRejected(f"{base!r}: file type '{ext or 'none'}' is not accepted; "
                                 f"upload one of: {', '.join(ui.allowed_types)}")
        if not data:
            raise UploadRejected(f"{base!r} is empty")
        if len(data) > ui.max_upload_mb * 1024 * 1024:
            raise UploadRejected(f"{base!r} is {len(data) / 2**20:.1f} MB; the limit is {ui.max_upload_mb} MB "
                                 "(ui.max_upload_mb)")
        from mmrag.indexes.layout import write_bytes_atomic

        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or f"upload.{ext}"
        digest = hashlib.sha256(data).hexdigest()
        target = self._dir() / "uploads" / f"{digest[:16]}-{safe}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file():
            write_bytes_atomic(target, data)
        report = self.index([target], progress=False)
        return report["documents"][0] if report["documents"] else _report_entry(str(target), None)

    def delete(self, doc_ids: list[str]) -> int:
        """Remove documents by id; returns how many were in the index."""
        with self._open(write=True) as ix:
            present = [d for d in dict.fromkeys(doc_ids) if ix.store.document(d) is not None]
            ix.delete(present)
        return len(present)

    def verify(self) -> dict:
        """Check every file of the live commit; ``{"ok", "problems": [{file, kind, message}], ...}``."""
        from mmrag.indexes.verify import verify_index

        return verify_index(self._dir())

    def repair(self, progress: bool = True) -> dict:
        """Rebuild damaged vector segments and BM25 state from the doc store (no PDF is read again)."""
        from mmrag.indexes.repair import repair_index

        self.close()
        return repair_index(self._dir(), self.config.fields, self.config.index, encoder_factory=self._factory,
                            progress=progress)

    # --- reading -----------------------------------------------------------------------------
    def documents(self) -> list[dict]:
        return self.reader.documents()

    def page(self, doc_id: str, page: int) -> Page:
        p = self.reader.page(doc_id, int(page))
        if p is None:
            raise QueryError(f"no page {page} of document {doc_id} in {self._dir()}; see documents()")
        return p

    def search(self, query: str, k: int = 10, filters: dict | None = None, rerank: Any = None) -> list[Hit]:
        """Best pages first. ``rerank``: a registered name, a Reranker, None (the config's) or False."""
        query = check_query(query, self.config.search.max_query_chars)
        if k < 1:
            raise QueryError(f"k must be at least 1, got {k}")
        reranker = self._resolve_reranker(rerank)
        depth = max(k, self.config.search.rerank_depth) if reranker is not None else k
        hits = self.reader.search(query, depth, filters)
        if reranker is None or not hits:
            return hits[:k]
        return rerank_hits(reranker, query, hits, k)

    def ask(self, query: str, k: int | None = None, filters: dict | None = None, rerank: Any = None,
            generator: Any = None) -> Answer:
        """Search, then answer from the top pages with citations (doc, page, bbox)."""
        hits = self.search(query, k or self.config.ask.contexts, filters, rerank)
        gen = self._resolve_generator(generator)
        answer = gen.answer(query.strip(), hits)
        if not answer.contexts:
            answer.contexts = hits
        return answer

    def _resolve_reranker(self, rerank: Any) -> Any:
        from mmrag import rerankers

        if rerank is False:
            return None
        if rerank is None:
            if self.config.reranker is None:
                return None
            if self._reranker is None:
                self._reranker = rerankers.load(self.config.reranker.name, **self.config.reranker.options)
            return self._reranker
        if isinstance(rerank, str):
            return rerankers.load(rerank)
        return rerank

    def _resolve_generator(self, generator: Any) -> Any:
        from mmrag import generate

        if generator is None:
            if self._generator is None:
                g = self.config.generator
                self._generator = generate.load(g.name, **g.options)
            return self._generator
        if isinstance(generator, str):
            return generate.load(generator)
        return generator


def rerank_hits(reranker: Any, query: str, hits: list[Hit], k: int) -> list[Hit]:
    """Rerank first-stage pages; each hit keeps its first-stage score under scores["first_stage"]."""
    by_id = {h.page_id: h for h in hits}
    candidates = [Candidate(id=h.page_id, text=h.text or h.snippet, score=h.score,
                            image=_PageImage(h),
                            metadata={"doc_id": h.doc_id, "page": h.page, "path": h.path,
                                      "snippet": h.snippet})
                  for h in hits]
    out = []
    for s in reranker.rerank(query, candidates, top_k=k)[:k]:
        h = by_id[s.candidate.id]
        h.scores = dict(h.scores, first_stage=h.score)
        h.score = float(s.score)
        for key in ("relevance", "passes"):  # a calibrated reranker's verdict (ragllava), for the generator
            if key in s.candidate.metadata:
                h.scores[key] = float(s.candidate.metadata[key])
        out.append(h)
    return out


class _PageImage:
    """Renders a hit's page image only if a reranker asks (``.image()`` → PIL)."""

    def __init__(self, hit: Hit):
        self.hit = hit

    def image(self):
        from PIL import Image

        if self.hit.image_path and Path(self.hit.image_path).is_file():
            with Image.open(self.hit.image_path) as im:
                return im.convert("RGB")
        from mmrag.ingest.render import render_page

        return render_page(self.hit.path, self.hit.page)


def _expand_dotted(overrides: dict) -> dict:
    """{"index.fusion": "rrf"} → {"index": {"fusion": "rrf"}} (merged with plain sections)."""
    out: dict = {}
    for key, value in overrides.items():
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = _merge(node[parts[-1]], value)
        else:
            node[parts[-1]] = value
    return out


def _as_error(err: Any) -> dict:
    if isinstance(err, dict):
        return {"type": err.get("type", "Error"), "message": err.get("message", "")}
    if isinstance(err, BaseException):
        return {"type": type(err).__name__, "message": str(err)}
    return {"type": "Error", "message": str(err)}


def _report(entries: list[dict]) -> dict:
    ok = [e for e in entries if e["status"] == "ok"]
    return {"documents": entries,
            "totals": {"ok": len(ok), "error": len(entries) - len(ok),
                       "pages": sum(e["pages"] for e in ok if not e.get("skipped")),
                       "skipped": sum(1 for e in ok if e.get("skipped"))}}


__all__ = ["RAG", "check_query", "rerank_hits"]

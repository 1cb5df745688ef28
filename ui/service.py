"""What the app does, without Gradio: collections, uploads → index, ask → answer, citations → image.

Gradio handlers in `mmrag.ui.app` are one-line calls into `AppService`, so this logic is tested
directly. Every method a person triggers returns a message instead of raising: user errors
(`MmragError`) show their own text, anything else a short line (the traceback goes to the
server log, never to the page).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from mmrag.errors import ConfigError, MmragError, UploadRejected
from mmrag.types import Citation, Hit
from mmrag.ui.boxes import draw_boxes
from mmrag.ui.uploads import check_upload, read_capped, store_upload

if TYPE_CHECKING:
    from PIL.Image import Image

    from mmrag.config import Config

log = logging.getLogger("mmrag.ui")

NO_RERANK = "none"
THUMB_WIDTH = 360


def user_message(exc: BaseException) -> str:
    """What a person sees for an error: the user error's own text, or a short internal note."""
    if isinstance(exc, MmragError):
        return str(exc)
    log.exception("internal error in the app")
    return f"Internal error ({type(exc).__name__}); the server log has the details."


@dataclass
class RetrievedPage:
    """One gallery entry: a page, its first-stage score and rank, and its score after reranking."""

    hit: Hit
    rank: int
    first_rank: int
    first_score: float
    rerank_score: float | None = None

    def caption(self) -> str:
        name = Path(self.hit.path).name or self.hit.doc_id[:12]
        text = f"#{self.rank} {name} p.{self.hit.page} · first stage {self.first_score:.3f}"
        if self.rerank_score is not None:
            text += f" (was #{self.first_rank}) → reranked {self.rerank_score:.3f}"
        return text


@dataclass
class AskResult:
    """Everything the page shows after a question."""

    answer: str  # Markdown: the answer, then its numbered sources
    citations: list[Citation] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # "[1] report.pdf · page 3"
    pages: list[RetrievedPage] = field(default_factory=list)
    error: str | None = None


def score_rows(pages: Sequence[RetrievedPage]) -> list[list[Any]]:
    """One table row per retrieved page: rank, file, page, first-stage rank and score, reranked score."""
    return [[rp.rank, Path(rp.hit.path).name, rp.hit.page, rp.first_rank, round(rp.first_score, 4),
             "" if rp.rerank_score is None else round(rp.rerank_score, 4)] for rp in pages]


def citation_label(i: int, c: Citation) -> str:
    return f"[{i}] {Path(c.path).name or c.doc_id[:12]} · page {c.page}"


def format_answer(text: str, labels: Sequence[str]) -> str:
    """The answer with its numbered sources under it, as Markdown."""
    if not labels:
        return text
    return text + "\n\n**Sources:** " + " · ".join(labels)


def reranker_choices(config: "Config") -> list[str]:
    """Installed rerankers the config allows (``ui.rerankers``; empty = all), after "none"."""
    from mmrag import rerankers

    return [NO_RERANK] + _allowed(rerankers.REGISTRY.describe(), config.ui.rerankers)


def generator_choices(config: "Config") -> list[str]:
    """Installed generators the config allows (``ui.generators``; empty = all)."""
    from mmrag import generate

    return _allowed(generate.REGISTRY.describe(), config.ui.generators)


def _allowed(described: list[dict], allow: list) -> list[str]:
    names = [b["name"] for b in described if b["installed"]]
    return [n for n in names if n in allow] if allow else names


def default_rag_factory(config: "Config", index_dir: Path) -> Any:
    from mmrag.api import RAG

    return RAG.from_config(config, index=index_dir)


class AppService:
    """The app's state: named collections (index folders), each opened lazily as a `RAG`."""

    def __init__(self, config: "Config", collections: dict[str, Path],
                 rag_factory: Callable[["Config", Path], Any] = default_rag_factory):
        if not collections:
            raise ConfigError("no collection to serve: pass --index DIR or set ui.collections in the config")
        self.config = config
        self.collections = {name: Path(p) for name, p in collections.items()}
        self._factory = rag_factory
        self._rags: dict[str, Any] = {}
        self._models: dict[tuple[str, str], Any] = {}  # loaded rerankers and generators
        self._open_lock = threading.Lock()
        self._write_locks = {name: threading.Lock() for name in self.collections}

    # --- collections -------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self.collections)

    def rag(self, name: str) -> Any:
        """The `RAG` of collection ``name``, opened on first use."""
        if name not in self.collections:
            raise ConfigError(f"unknown collection '{name}'; choose one of: {', '.join(self.collections)}")
        with self._open_lock:
            if name not in self._rags:
                self._rags[name] = self._factory(self.config, self.collections[name])
            return self._rags[name]

    def documents(self, name: str) -> list[list[Any]]:
        """Rows for the documents table: file name, pages, doc id."""
        try:
            docs = self.rag(name).documents()
        except Exception as e:  # an empty or missing index is shown as an empty table
            log.info("no documents for %s: %s", name, e)
            return []
        return [[Path(d.get("path", "")).name, d.get("pages", d.get("page_count", "")), str(d.get("doc_id", ""))[:12]]
                for d in docs]

    # --- upload and index --------------------------------------------------------------------
    def upload(self, name: str, files: Sequence[str | Path], progress: Callable[[float, str], None] | None = None) -> str:
        """Check, store and index uploaded files; a Markdown report of what happened to each."""
        if not files:
            return "Choose one or more PDFs or page images to upload first."
        ui = self.config.ui
        max_bytes = int(ui.max_upload_mb) * 1024 * 1024
        lines: list[str] = []
        accepted: list[tuple[str, bytes]] = []
        for f in files:  # every check runs before anything is written
            original = Path(f).name
            try:
                data = read_capped(f, max_bytes)
                accepted.append((check_upload(original, data, max_bytes=max_bytes,
                                              allowed_types=ui.allowed_types), data))
            except UploadRejected as e:
                lines.append(f"- refused: {e}")
            except OSError as e:
                lines.append(f"- refused: {original} could not be read ({e.strerror or e}); upload it again")
        if not accepted:
            return "\n".join(lines)
        try:
            self.ensure_index(name)
            stored = [store_upload(self.collections[name], clean, data) for clean, data in accepted]
        except Exception as e:
            return "\n".join([f"**Not indexed:** {user_message(e)}"] + lines)
        return "\n".join(self._index(name, stored, progress) + lines)

    def ensure_index(self, name: str) -> None:
        """Create collection ``name``'s (empty) index before anything lands in its folder: the
        index refuses to start in a folder that already holds other files."""
        rag = self.rag(name)
        if not (self.collections[name] / "manifest.json").is_file():
            with self._write_locks[name]:
                rag.index([], progress=False)

    def _index(self, name: str, paths: list[Path], progress: Callable[[float, str], None] | None) -> list[str]:
        done = [0]

        def on_document(*args: Any, **kwargs: Any) -> None:
            done[0] += 1
            if progress is not None:
                progress(done[0] / len(paths), f"indexed {done[0]} of {len(paths)} documents")

        if progress is not None:
            progress(0.0, f"indexing {len(paths)} document(s)…")
        try:
            with self._write_locks[name]:
                report = self.rag(name).index([str(p) for p in paths], progress=False, on_document=on_document)
        except Exception as e:
            return [f"**Indexing failed:** {user_message(e)}"]
        out = []
        for doc in report.get("documents", []):
            file = Path(doc.get("path", "")).name
            if doc.get("status") == "ok" and doc.get("skipped"):
                out.append(f"- {file}: already indexed ({doc['skipped']})")
            elif doc.get("status") == "ok":
                out.append(f"- indexed {file}: {doc.get('pages', 0)} page(s)"
                           + (f", {doc['ocr_pages']} by OCR" if doc.get("ocr_pages") else ""))
            else:
                err = doc.get("error") or {}
                out.append(f"- failed: {file}: {err.get('message', 'unknown error')}")
        totals = report.get("totals", {})
        new = totals.get("ok", 0) - totals.get("skipped", 0)
        head = f"**Indexed {new} new document(s), {totals.get('pages', 0)} page(s)** into '{name}'"
        head += f"; {totals['error']} failed." if totals.get("error") else "."
        return [head] + out

    # --- models ------------------------------------------------------------------------------
    def reranker(self, name: str) -> Any:
        """A loaded reranker (kept for the next question); the config's options when it names it."""
        if name == NO_RERANK:
            return False
        cfg = self.config.reranker
        return self._component("reranker", name, cfg.options if cfg and cfg.name == name else {})

    def generator(self, name: str | None) -> Any:
        """A loaded generator; None or the config's name gives the config's (with its options)."""
        cfg = self.config.generator
        name = name or cfg.name
        return self._component("generator", name, cfg.options if cfg.name == name else {})

    def _component(self, kind: str, name: str, options: dict) -> Any:
        from mmrag import generate, rerankers

        allowed = reranker_choices(self.config) if kind == "reranker" else generator_choices(self.config)
        if name not in allowed:
            raise ConfigError(f"{kind} '{name}' is not offered here; choose one of: {', '.join(allowed)}")
        with self._open_lock:
            if (kind, name) not in self._models:
                load = rerankers.load if kind == "reranker" else generate.load
                self._models[(kind, name)] = load(name, **options)
            return self._models[(kind, name)]

    # --- ask ---------------------------------------------------------------------------------
    def ask(self, name: str, question: str, reranker: str = NO_RERANK, generator: str | None = None) -> AskResult:
        """Retrieve, optionally rerank, and answer from the top pages; a failure comes back as ``error``."""
        question = (question or "").strip()
        if not question:
            return AskResult("", error="Type a question first.")
        try:
            rag = self.rag(name)
            pages = self.retrieve(rag, question, reranker)
            if not pages:
                return AskResult("", error=f"Collection '{name}' has no indexed pages yet; upload a document first.")
            # the same pages the gallery shows reach the generator (what RAG.ask does, without
            # reranking a second time)
            contexts = [rp.hit for rp in pages[: self.config.ask.contexts]]
            answer = self.generator(generator).answer(question, contexts)
        except Exception as e:
            return AskResult("", error=user_message(e))
        labels = [citation_label(i, c) for i, c in enumerate(answer.citations, 1)]
        return AskResult(format_answer(answer.text, labels), list(answer.citations), labels, pages)

    def retrieve(self, rag: Any, question: str, reranker: str) -> list[RetrievedPage]:
        """First-stage pages and, with a reranker, the reranked pages with both scores and ranks."""
        k = self.config.search.k
        rr = self.reranker(reranker)
        depth = max(k, self.config.search.rerank_depth) if rr is not False else k
        first = rag.search(question, k=depth, rerank=False)
        if rr is False:
            return [RetrievedPage(h, i, i, h.score) for i, h in enumerate(first, 1)]
        first_rank = {h.page_id: (i, h.score) for i, h in enumerate(first, 1)}
        after = rag.search(question, k=k, rerank=rr)
        out = []
        for i, h in enumerate(after, 1):
            r, s = first_rank.get(h.page_id, (0, h.scores.get("first_stage", float("nan"))))
            out.append(RetrievedPage(h, i, r, s, h.score))
        return out

    # --- images ------------------------------------------------------------------------------
    def page_image(self, name: str, doc_id: str, page: int, boxes: Sequence[Any] = (),
                   width: int | None = None) -> "Image":
        """The page rendered with ``boxes`` (PDF points) drawn on it, optionally scaled down."""
        p = self.rag(name).page(doc_id, page)
        img = p.image()
        if boxes:
            img = draw_boxes(img, [tuple(b) for b in boxes], page_size=(p.width, p.height))
        if width and img.width > width:
            img = img.resize((width, round(img.height * width / img.width)))
        return img

    def citation_image(self, name: str, citation: Citation) -> tuple["Image | None", str]:
        """The cited page with its evidence box, and a caption (or an error message)."""
        try:
            img = self.page_image(name, citation.doc_id, citation.page, [citation.bbox] if citation.bbox else [])
        except Exception as e:
            return None, user_message(e)
        where = "the evidence is boxed in red" if citation.bbox else "no region was cited on this page"
        return img, f"{Path(citation.path).name} · page {citation.page} — {where}"

    def gallery(self, name: str, pages: Sequence[RetrievedPage]) -> list[tuple["Image", str]]:
        """Thumbnails of the retrieved pages with their score captions (the evidence box goes on the
        cited page; a retrieved chunk's box often spans most of a page and would only hide it)."""
        items = []
        for rp in pages:
            try:
                img = self.page_image(name, rp.hit.doc_id, rp.hit.page, width=THUMB_WIDTH)
            except Exception as e:
                log.warning("no thumbnail for %s: %s", rp.hit.page_id, e)
                continue
            items.append((img, rp.caption()))
        return items

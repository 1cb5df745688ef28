"""``load_document``: one input (path or bytes) → ``Document`` with its pages."""

from __future__ import annotations

import time
from pathlib import Path

from mmrag.errors import DocumentTimeout, MissingDependency
from mmrag.ingest.source import Source, open_document, persist_bytes, read_source
from mmrag.types import Document, Page

JUNK_TITLES = {"untitled", "title", "document", "microsoft word", "slide 1", "powerpoint presentation"}


def load_document(source: str | Path | bytes, *, config=None, password: str | None = None,
                  name: str | None = None) -> Document:
    """Read a PDF or a PNG/JPEG/TIFF (one page) into a ``Document``.

    Raises the typed ``DocumentError`` subclasses for bad input. A page that fails is kept
    with ``page.error`` set and the document goes on. ``config.timeout_s`` is checked between
    pages (``ingest_many`` also enforces it from outside, for pages that hang).

    Bytes input is written once to a content-addressed cache file (``$MMRAG_CACHE_DIR/blobs``,
    default ``~/.cache/mmrag/blobs``) that becomes ``Page.source_path``, so ``Page.image()``
    can render it later like any file; ``Document.path`` is ``name`` (or ``"<bytes>"``).
    """
    from mmrag.config import IngestConfig

    config = config or IngestConfig()
    started = time.monotonic()
    src = read_source(source, config, name=name)
    doc_id = src.doc_id
    if password is None:
        password = config.passwords.get(src.name) or config.passwords.get(Path(src.name).name) or config.password
    doc = open_document(src, password, config)
    try:
        render_path = str(src.path) if src.path is not None else str(persist_bytes(src))
        pages = _pages(doc, src, doc_id, render_path, config, started)
        metadata = {k: v for k, v in (doc.metadata or {}).items() if isinstance(v, str) and v.strip()}
    finally:
        doc.close()
    return Document(
        doc_id=doc_id, path=src.name, title=_title(metadata, pages, src), metadata=metadata,
        page_count=len(pages), pages=pages,
    )


def _pages(doc, src: Source, doc_id: str, render_path: str, config, started: float) -> list[Page]:
    from mmrag.ingest.page import extract_page, text_flags

    flags = text_flags()
    is_pdf = src.kind == "pdf"
    pages: list[Page] = []
    for i in range(doc.page_count):
        if config.timeout_s and time.monotonic() - started > config.timeout_s:
            raise DocumentTimeout(
                f"ingestion took longer than {config.timeout_s:g} s (stopped at page {i + 1} of {doc.page_count}); "
                "raise ingest.timeout_s for very long or scanned documents", path=src.name)
        try:
            page = doc.load_page(i)
            pages.append(extract_page(page, doc_id=doc_id, page_number=i + 1, source_path=render_path,
                                      config=config, is_pdf=is_pdf, flags=flags))
        except MissingDependency:
            raise  # OCR asked for but not installed: the user has to act, every page would fail
        except Exception as e:  # one bad page must not lose the document
            pages.append(_failed_page(doc, i, doc_id, render_path, e))
    return pages


def _failed_page(doc, i: int, doc_id: str, render_path: str, err: Exception) -> Page:
    width = height = 0.0
    try:
        r = doc.load_page(i).rect
        width, height = round(float(r.width), 2), round(float(r.height), 2)
    except Exception:
        pass
    from mmrag.errors import MmragError

    error = err.to_dict() if isinstance(err, MmragError) else {
        "type": "PageError", "message": f"page {i + 1} could not be read: {type(err).__name__}: {err}"}
    return Page(doc_id=doc_id, page_number=i + 1, width=width, height=height, source_path=render_path,
                error=error)


def _title(metadata: dict, pages: list[Page], src: Source) -> str:
    title = metadata.get("title", "").strip()
    if title and title.lower() not in JUNK_TITLES and not title.lower().startswith("microsoft word"):
        return title
    for page in pages[:1]:
        for block in page.blocks:
            if block.kind == "title" and 3 <= len(block.text) <= 200:
                return block.text
    return Path(src.name).stem if src.name != "<bytes>" else ""

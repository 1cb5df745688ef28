"""Ingestion: PDFs and page images → pages with layout text, blocks, tables, OCR, page images.

Public API (imported lazily, so ``import mmrag.ingest`` does not load PyMuPDF):

- ``load_document(source, config=None, password=None, name=None) -> Document``
- ``discover(paths) -> list[Path]``
- ``chunk_pages(pages, words=200) -> list[Chunk]``
- ``ingest_many(paths, config, workers=1, passwords=None, progress=True) -> Iterator[IngestResult]``
- ``mmrag.ingest.render.render_page(path, page_number, dpi=None) -> PIL.Image.Image``
- ``write_document`` / ``read_documents``: the ``mmrag ingest`` output folder (JSONL pages)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_document": "mmrag.ingest.document",
    "discover": "mmrag.ingest.source",
    "chunk_pages": "mmrag.ingest.chunk",
    "ingest_many": "mmrag.ingest.batch",
    "IngestResult": "mmrag.ingest.batch",
    "render_page": "mmrag.ingest.render",
    "write_document": "mmrag.ingest.store",
    "read_documents": "mmrag.ingest.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mmrag.ingest' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

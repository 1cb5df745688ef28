"""The ``mmrag ingest --out DIR`` folder: one JSONL of pages and one JSON record per document.

Layout::

    DIR/pages/<doc_id>.jsonl      one Page.to_dict() per line, in page order
    DIR/documents/<doc_id>.json   {doc_id, path, title, metadata, page_count, ocr_pages}
    DIR/report.json               the last run's report (see DESIGN.md)

Both files of a document are written to a temporary name and renamed, pages first, so a
document counts as stored (and is skipped by a resumed run) only once it is complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from mmrag.types import Document, Page


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_document(out: str | Path, doc: Document) -> None:
    """Store ``doc`` under ``out`` (pages JSONL, then the document record that marks it done)."""
    out = Path(out)
    lines = "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in doc.pages)
    _atomic_write(out / "pages" / f"{doc.doc_id}.jsonl", lines)
    record = {
        "doc_id": doc.doc_id, "path": doc.path, "title": doc.title, "metadata": doc.metadata,
        "page_count": doc.page_count, "ocr_pages": sum(1 for p in doc.pages if p.ocr),
    }
    _atomic_write(out / "documents" / f"{doc.doc_id}.json", json.dumps(record, ensure_ascii=False, indent=1))


def stored_records(out: str | Path) -> dict[str, dict]:
    """doc_id → document record, for every complete document under ``out``."""
    out = Path(out)
    records: dict[str, dict] = {}
    for f in sorted((out / "documents").glob("*.json")):
        if not (out / "pages" / f"{f.stem}.jsonl").is_file():
            continue
        try:
            records[f.stem] = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # a damaged record: the document is simply ingested again
    return records


def read_documents(out: str | Path) -> Iterator[Document]:
    """Every stored document under ``out`` with its pages, in doc_id order."""
    out = Path(out)
    for doc_id, rec in stored_records(out).items():
        with open(out / "pages" / f"{doc_id}.jsonl", encoding="utf-8") as f:
            pages = [Page.from_dict(json.loads(line)) for line in f if line.strip()]
        yield Document(doc_id=doc_id, path=rec.get("path", ""), title=rec.get("title", ""),
                       metadata=rec.get("metadata", {}), page_count=rec.get("page_count", len(pages)),
                       pages=pages)


def write_report(out: str | Path, report: dict) -> None:
    _atomic_write(Path(out) / "report.json", json.dumps(report, ensure_ascii=False, indent=1))

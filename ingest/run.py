"""The ``mmrag ingest`` job: discover inputs, skip stored documents, ingest the rest, report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mmrag.ingest.batch import ingest_many
from mmrag.ingest.source import discover
from mmrag.ingest.store import stored_records, write_document, write_report


def ingest_to_folder(paths: list[str | Path], out: str | Path, config: Any, *, workers: int = 1,
                     passwords: dict | None = None, progress: bool = True) -> dict:
    """Ingest ``paths`` into ``out`` and write ``out/report.json``; returns the report.

    Documents whose content hash is already stored in ``out`` are not ingested again (their
    entry says ``"skipped": true``). Every input file gets one entry, ok or error.
    """
    t0 = time.perf_counter()
    files = discover(list(paths))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stored = stored_records(out)
    entries = []
    for res in ingest_many(files, config, workers=workers, passwords=passwords, progress=progress,
                           skip_ids=stored):
        entry: dict = {"path": str(res.path), "doc_id": res.doc_id, "status": "ok" if res.ok else "error",
                       "error": res.error, "pages": 0, "ocr_pages": 0, "seconds": round(res.seconds, 4)}
        if res.document is not None:
            doc = res.document
            write_document(out, doc)
            stored[doc.doc_id] = {"page_count": doc.page_count, "ocr_pages": sum(p.ocr for p in doc.pages)}
            entry.update(doc_id=doc.doc_id, pages=doc.page_count, ocr_pages=sum(p.ocr for p in doc.pages),
                         page_errors=sum(1 for p in doc.pages if p.error))
        elif res.skipped:
            rec = stored.get(res.doc_id or "", {})
            entry.update(pages=rec.get("page_count", 0), ocr_pages=rec.get("ocr_pages", 0), skipped=True)
        entries.append(entry)
    ok = [e for e in entries if e["status"] == "ok"]
    report = {
        "documents": entries,
        "totals": {"ok": len(ok), "error": len(entries) - len(ok), "pages": sum(e["pages"] for e in ok),
                   "skipped": sum(1 for e in entries if e.get("skipped")),
                   "seconds": round(time.perf_counter() - t0, 3)},
        "out": str(out),
    }
    write_report(out, report)
    return report

"""RAG.index end to end on PDFs made here: skip unchanged, re-index changed, prune, dry run, upload."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrag.api import RAG
from tests.test_api import write_config

fitz = pytest.importorskip("pymupdf")


def make_pdf(path: Path, pages: list[str]) -> Path:
    doc = fitz.open()
    for text in pages:
        page = doc.new_page(width=612, height=792)
        page.insert_textbox(fitz.Rect(72, 72, 540, 720), text, fontsize=12)
    doc.save(path)
    doc.close()
    return path


@pytest.fixture()
def corpus(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    make_pdf(d / "solar.pdf", ["Solar panels convert sunlight into electricity.", "Inverters change DC to AC."])
    make_pdf(d / "bees.pdf", ["Honey bees pollinate crops and make honey."])
    make_pdf(d / "tax.pdf", ["The tax return is due on April 15.", "Late filing incurs a penalty."])
    return d


def rag_for(tmp_path) -> RAG:
    return RAG.from_config(write_config(tmp_path, commit_docs=2), index=tmp_path / "ix")


def test_index_search_reindex_prune(tmp_path, corpus):
    rag = rag_for(tmp_path)
    seen = []
    report = rag.index([corpus], progress=False, on_document=seen.append)
    assert report["totals"] == {"ok": 3, "error": 0, "pages": 5, "skipped": 0}
    assert len(seen) == 3 and all(e["status"] == "ok" and e["doc_id"] for e in seen)
    hit = rag.search("when is the tax return due", k=1)[0]
    assert (Path(hit.path).name, hit.page) == ("tax.pdf", 1) and "April 15" in hit.snippet
    assert hit.bbox is not None and hit.bbox[0] >= 70

    again = rag.index([corpus], progress=False)
    assert again["totals"]["skipped"] == 3 and again["totals"]["pages"] == 0

    make_pdf(corpus / "bees.pdf", ["Bumble bees nest in the ground.", "They also pollinate tomatoes."])
    changed = rag.index([corpus], progress=False)
    assert changed["totals"] == {"ok": 3, "error": 0, "pages": 2, "skipped": 2}
    assert "ground" in rag.search("where do bumble bees nest", k=1)[0].snippet
    assert not any("Honey bees" in h.text for h in rag.search("honey", k=10))
    assert sorted(d["pages"] for d in rag.documents()) == [2, 2, 2]

    (corpus / "solar.pdf").unlink()
    plan = rag.index([corpus], progress=False, prune=True, dry_run=True)
    assert [e["action"] for e in plan["documents"] if e.get("action")] == ["delete"]
    assert len(rag.documents()) == 3  # a dry run writes nothing
    rag.index([corpus], progress=False, prune=True)
    assert sorted(Path(d["path"]).name for d in rag.documents()) == ["bees.pdf", "tax.pdf"]


def test_errors_are_reported_and_the_run_goes_on(tmp_path, corpus):
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    rag = rag_for(tmp_path)
    report = rag.index([corpus], progress=False)
    bad = [e for e in report["documents"] if e["status"] == "error"]
    assert len(bad) == 1 and bad[0]["path"].endswith("broken.pdf") and bad[0]["error"]["type"]
    assert report["totals"]["ok"] == 3 and report["totals"]["error"] == 1


def test_duplicate_files_are_indexed_once(tmp_path, corpus):
    (corpus / "copy.pdf").write_bytes((corpus / "tax.pdf").read_bytes())
    rag = rag_for(tmp_path)
    report = rag.index([corpus], progress=False)
    dup = [e for e in report["documents"] if str(e.get("skipped", "")).startswith("duplicate")]
    assert len(dup) == 1 and len(rag.documents()) == 3


def test_add_bytes_stores_and_indexes_an_upload(tmp_path, corpus):
    rag = rag_for(tmp_path)
    data = (corpus / "bees.pdf").read_bytes()
    entry = rag.add_bytes(data, "../../evil name.pdf")
    assert entry["status"] == "ok" and entry["pages"] == 1
    stored = Path(entry["path"])
    assert stored.parent == (tmp_path / "ix" / "uploads").resolve() and stored.read_bytes() == data
    assert "pollinate" in rag.search("pollinate", k=1)[0].snippet
    assert rag.add_bytes(data, "again.pdf")["doc_id"] is None  # same bytes: a duplicate, not re-indexed

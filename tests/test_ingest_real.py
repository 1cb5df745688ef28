"""Ingestion on real files from ../shared/data/pdf-robustness: typed errors, passwords, page counts."""

from __future__ import annotations

import json

import pytest

from mmrag.config import IngestConfig
from mmrag.errors import CorruptDocument, EmptyDocument, EncryptedDocument, UnsupportedFormat
from tests.conftest import shared_path

pytest.importorskip("pymupdf")

from mmrag.ingest import ingest_many, load_document  # noqa: E402

CFG = IngestConfig(ocr="never")


def robust(*parts: str):
    return shared_path("pdf-robustness", *parts)


def test_corrupt_pdf_is_corrupt_document():
    with pytest.raises(CorruptDocument, match="damaged"):
        load_document(robust("qpdf-damaged", "bad1.pdf"), config=CFG)


def test_empty_file_is_empty_document():
    with pytest.raises(EmptyDocument, match="0 bytes"):
        load_document(robust("pdfplumber-tests", "empty.pdf"), config=CFG)


def test_non_pdf_input_is_unsupported_format():
    with pytest.raises(UnsupportedFormat, match="not a PDF"):
        load_document(robust("README.txt"), config=CFG)


def test_encrypted_pdf_needs_the_right_password():
    path = robust("pdfplumber-tests", "password-example.pdf")
    with pytest.raises(EncryptedDocument, match="password"):
        load_document(path, config=CFG)
    with pytest.raises(EncryptedDocument, match="wrong password"):
        load_document(path, config=CFG, password="not-it")
    doc = load_document(path, config=CFG, password="test")
    assert doc.page_count >= 1 and doc.pages[0].text.strip()
    assert doc.pages[0].image(dpi=36).size[0] > 0  # renders with the password that opened it


def test_aes256_r6_and_per_file_password_map():
    path = robust("pdfminer-samples", "encryption", "aes-256-r6.pdf")
    cfg = IngestConfig(ocr="never", passwords={path.name: "usersecret"})
    assert load_document(path, config=cfg).page_count == 1


def test_page_counts_match_py_pdf_ground_truth():
    root = robust("py-pdf-sample-files")
    truth = {d["path"]: d["pages"] for d in json.loads((root / "files.json").read_text())["data"] if d.get("pages")}
    picked = [p for p in sorted(truth) if truth[p] <= 6][:8]
    for rel in picked:
        assert load_document(root / rel, config=CFG, password="openpassword").page_count == truth[rel], rel


@pytest.mark.slow
def test_all_py_pdf_samples_ok_or_typed_in_a_pool():
    root = robust("py-pdf-sample-files")
    truth = {d["path"]: d["pages"] for d in json.loads((root / "files.json").read_text())["data"] if d.get("pages")}
    files = sorted(root.rglob("*.pdf"))
    results = list(ingest_many(files, IngestConfig(ocr="never", timeout_s=120), workers=2, progress=False,
                               passwords={"libreoffice-writer-password.pdf": "openpassword"}))
    assert [r.path for r in results] == files
    typed = {"CorruptDocument", "EncryptedDocument", "UnsupportedFormat", "EmptyDocument", "DocumentTooLarge",
             "DocumentTimeout"}
    for r in results:
        assert r.ok or r.error["type"] in typed, r.error
        rel = r.path.relative_to(root).as_posix()
        if rel in truth and r.document is not None:
            assert r.document.page_count == truth[rel], rel
    assert sum(r.ok for r in results) >= len(files) - 1

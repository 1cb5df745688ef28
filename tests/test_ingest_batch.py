"""The batch runner and ``mmrag ingest``: order, dedupe, hangs, crashes, resumable output folder."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

pymupdf = pytest.importorskip("pymupdf")

from typer.testing import CliRunner  # noqa: E402

from mmrag.cli import app  # noqa: E402
from mmrag.config import IngestConfig  # noqa: E402
from mmrag.ingest import discover, ingest_many, read_documents  # noqa: E402

CFG = IngestConfig(ocr="never", timeout_s=30)


def write_pdf(path: Path, pages: list[str]) -> Path:
    doc = pymupdf.open()
    for text in pages:
        doc.new_page().insert_text((72, 72), text, fontsize=11)
    doc.save(path)
    doc.close()
    return path


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    write_pdf(root / "b.pdf", ["bee one", "bee two"])
    write_pdf(root / "sub" / "a.pdf", ["alpha"])
    (root / "sub" / "copy.PDF").write_bytes((root / "b.pdf").read_bytes())
    (root / "empty.pdf").write_bytes(b"")
    (root / "notes.txt").write_text("not a document")
    write_pdf(root / ".hidden" / "h.pdf", ["hidden"])
    return root


def test_discover_is_recursive_deterministic_and_skips_hidden(corpus: Path):
    found = discover([corpus])
    assert [p.relative_to(corpus).as_posix() for p in found] == ["b.pdf", "empty.pdf", "sub/a.pdf", "sub/copy.PDF"]
    # a file named directly is kept whatever its type, repeated paths once
    assert discover([corpus / "notes.txt", corpus / "b.pdf", corpus / "b.pdf"]) == [corpus / "notes.txt", corpus / "b.pdf"]


def test_ingest_many_in_order_with_dedupe_and_typed_errors(corpus: Path):
    files = discover([corpus]) + [corpus / "notes.txt"]
    results = list(ingest_many(files, CFG, workers=2, progress=False))
    assert [r.path for r in results] == files
    by = {r.path.name: r for r in results}
    assert by["b.pdf"].document.page_count == 2 and by["b.pdf"].document.pages[1].text == "bee two"
    assert by["a.pdf"].ok and by["a.pdf"].document.pages[0].text == "alpha"
    assert by["copy.PDF"].skipped and by["copy.PDF"].doc_id == by["b.pdf"].document.doc_id
    assert by["empty.pdf"].error["type"] == "EmptyDocument"
    assert by["notes.txt"].error["type"] == "UnsupportedFormat"
    # skip_ids: documents a caller already has are not ingested again
    again = list(ingest_many(files[:1], CFG, progress=False, skip_ids={by["b.pdf"].doc_id}))
    assert again[0].skipped and again[0].document is None


def test_a_hanging_file_times_out_and_the_batch_goes_on(tmp_path: Path):
    fifo = tmp_path / "stuck.pdf"
    os.mkfifo(fifo)  # reading it blocks forever: a real hang inside the worker
    good = write_pdf(tmp_path / "good.pdf", ["still here"])
    t0 = time.monotonic()
    results = list(ingest_many([fifo, good], CFG, workers=1, progress=False, timeout_s=3.0))
    assert time.monotonic() - t0 < 40
    assert results[0].error["type"] == "DocumentTimeout"
    assert results[1].ok and results[1].document.pages[0].text == "still here"


def test_a_crashing_worker_is_replaced_and_the_file_recorded(tmp_path: Path):
    psutil = pytest.importorskip("psutil")
    fifo = tmp_path / "crash.pdf"
    os.mkfifo(fifo)
    good = write_pdf(tmp_path / "good.pdf", ["after the crash"])
    me = psutil.Process()

    def crash_the_reader() -> None:
        with open(fifo, "wb"):  # returns once the worker has opened the FIFO to read it
            for child in me.children(recursive=True):
                if child.ppid() != me.pid:  # workers are children of the forkserver
                    os.kill(child.pid, signal.SIGSEGV)

    t = threading.Thread(target=crash_the_reader, daemon=True)
    t.start()
    results = list(ingest_many([fifo, good], CFG, workers=1, progress=False, timeout_s=20))
    t.join(5)
    assert results[0].error["type"] == "CorruptDocument"
    assert "crashed" in results[0].error["message"] and "-11" in results[0].error["message"]
    assert results[1].ok and results[1].document.pages[0].text == "after the crash"


def test_cli_ingest_writes_pages_report_and_resumes(corpus: Path, tmp_path: Path):
    out = tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", str(corpus), "--out", str(out), "--workers", "2", "--ocr", "never",
                              "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report == json.loads((out / "report.json").read_text())
    entries = {Path(d["path"]).name: d for d in report["documents"]}
    assert set(entries) == {"b.pdf", "empty.pdf", "a.pdf", "copy.PDF"}
    for d in report["documents"]:
        assert {"path", "doc_id", "status", "error", "pages", "ocr_pages", "seconds"} <= set(d)
    assert entries["empty.pdf"]["status"] == "error" and entries["empty.pdf"]["error"]["type"] == "EmptyDocument"
    assert report["totals"] == {**report["totals"], "ok": 3, "error": 1, "pages": 5}
    stored = {d.doc_id: d for d in read_documents(out)}
    assert len(stored) == 2
    b = stored[entries["b.pdf"]["doc_id"]]
    assert [p.text for p in b.pages] == ["bee one", "bee two"]
    assert (out / "pages" / f"{b.doc_id}.jsonl").read_text().count("\n") == 2
    # a second run skips what is stored (by content hash) and only retries the failure
    write_pdf(corpus / "sub" / "new.pdf", ["fresh"])
    res2 = runner.invoke(app, ["ingest", str(corpus), "--out", str(out), "--ocr", "never", "--json", "--quiet"])
    assert res2.exit_code == 0, res2.output
    r2 = {Path(d["path"]).name: d for d in json.loads(res2.stdout)["documents"]}
    assert r2["b.pdf"].get("skipped") and r2["a.pdf"].get("skipped") and r2["b.pdf"]["pages"] == 2
    assert not r2["new.pdf"].get("skipped") and r2["new.pdf"]["pages"] == 1
    assert len(list(read_documents(out))) == 3


def test_cli_ingest_usage_errors_exit_2(tmp_path: Path):
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", str(tmp_path / "missing.pdf"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no such file" in res.output
    res = runner.invoke(app, ["ingest", str(tmp_path), "--out", str(tmp_path / "o"), "--ocr", "sometimes"])
    assert res.exit_code == 2 and "--ocr" in res.output

"""`mmrag index` in batch: kill -9 mid-run, then `--resume`, ends with the same index as one clean run.

A hashed-word encoder that takes a little time per batch keeps the run slow enough to be killed
between two commits, and fast enough for the quick suite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.hash_encoder import HashEncoder
from tests.test_ui_service import require_ingest

N_DOCS = 8
ROOT = Path(__file__).resolve().parents[1]


class SlowHashEncoder(HashEncoder):
    """The test hash encoder, slowed down so a run spans several observable commits."""

    def encode_text(self, texts, *, is_query: bool = False):
        time.sleep(0.8)
        return super().encode_text(texts, is_query=is_query)


def register_encoder() -> None:
    from mmrag.encoders import REGISTRY
    from mmrag.registry import Backend

    REGISTRY.register(Backend("test-slow-hash", "tests.test_batch_index:SlowHashEncoder", "tests only"))


def make_docs(folder: Path) -> Path:
    import pymupdf

    folder.mkdir()
    for i in range(N_DOCS):
        doc = pymupdf.open()
        for page in range(1 + i % 3):
            doc.new_page().insert_textbox(pymupdf.Rect(72, 72, 540, 300),
                                          f"Report {i}, page {page + 1}: station {i * 7 + page} measured "
                                          f"{100 + i * 13 + page} millimetres of rain in week {page + i}.")
        doc.save(folder / f"report-{i:02d}.pdf")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n this is not a PDF body")
    return folder


def cli(*args: str) -> dict:
    from mmrag.cli import app

    result = CliRunner().invoke(app, ["index", *args, "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def start_child(args: list[str], log: Path) -> subprocess.Popen:
    """`mmrag index` in a separate process (with the test encoder registered), to be killed."""
    code = ("import sys; from tests.test_batch_index import register_encoder; register_encoder(); "
            "from mmrag.cli import main; sys.argv = ['mmrag', 'index', *sys.argv[1:]]; main()")
    with open(log, "w") as err:
        return subprocess.Popen([sys.executable, "-c", code, *args, "--quiet"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)


def test_kill_minus_9_then_resume_gives_the_same_index(tmp_path: Path) -> None:
    require_ingest()
    from mmrag.cli.batch import committed_documents as committed
    from mmrag.cli.batch import compare_contents, index_contents

    register_encoder()
    docs = make_docs(tmp_path / "docs")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("fields:\n  - {name: text, encoder: test-slow-hash, input: chunks}\n"
                   "ingest: {ocr: never}\nindex: {commit_seconds: 3600}\n"
                   "generator: {name: extractive, options: {dense_weight: 0.0}}\n")
    common = ["--config", str(cfg), "--workers", "1", "--batch-size", "2"]

    clean = cli(str(docs), "--index", str(tmp_path / "A"), *common)
    assert clean["totals"]["ok"] == N_DOCS and clean["totals"]["error"] == 1
    assert json.loads((tmp_path / "A" / "report.json").read_text())["totals"] == clean["totals"]

    # B: the same run, killed with SIGKILL as soon as its first commit is durable (while the
    # next batch is being encoded: the slow encoder holds that window open)
    child = start_child([str(docs), "--index", str(tmp_path / "B"), *common], tmp_path / "B.log")
    deadline = time.monotonic() + 120
    while committed(tmp_path / "B") == 0 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, f"the run ended before it could be killed: {(tmp_path / 'B.log').read_text()}"
    os.killpg(child.pid, signal.SIGKILL)  # the whole group, ingestion workers included
    child.wait()
    done_at_kill = committed(tmp_path / "B")
    assert 1 <= done_at_kill < N_DOCS
    assert json.loads((tmp_path / "B" / "run.json").read_text())["finished"] is None

    resumed = cli("--index", str(tmp_path / "B"), "--resume", "--config", str(cfg))  # paths from run.json
    skipped = [d for d in resumed["documents"] if d.get("skipped") == "unchanged"]
    fresh = [d for d in resumed["documents"] if d["status"] == "ok" and not d.get("skipped")]
    assert len(skipped) == done_at_kill  # nothing committed before the kill is encoded again
    assert len(fresh) == N_DOCS - done_at_kill
    assert [d["error"]["type"] for d in resumed["documents"] if d["status"] == "error"] == \
        [d["error"]["type"] for d in clean["documents"] if d["status"] == "error"]

    same = compare_contents(index_contents(tmp_path / "A"), index_contents(tmp_path / "B"))
    assert same["same_documents"] and same["same_pages"] and same["same_vector_keys"], same
    assert same["max_abs_vector_diff"] == 0.0 and same["pages"] == sum(1 + i % 3 for i in range(N_DOCS))

    from mmrag.cli import app

    again = CliRunner().invoke(app, ["index", "--index", str(tmp_path / "B"), "--resume", "--config", str(cfg)])
    assert again.exit_code == 2 and "nothing to resume" in again.output

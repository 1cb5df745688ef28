"""kill -9 `mmrag index` (and its ingestion workers) mid-run on real PDFs; a rerun finishes the job."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_api import write_config
from tests.test_api_index import make_pdf

ROOT = Path(__file__).resolve().parents[1]
CLI = "from tests.hash_encoder import register; register(); from mmrag.cli import main; main()"
pytestmark = pytest.mark.slow  # each run starts ingestion workers: ~1 min on 2 busy cores


def run_index(docs: Path, ix: Path, cfg: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-c", CLI, "index", str(docs), "--index", str(ix), "--config", str(cfg),
                             "--json", "--quiet"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def pages_by_doc(ix: Path) -> dict[str, list[int]]:
    import sqlite3

    con = sqlite3.connect(f"file:{ix / 'docstore.sqlite'}?mode=ro", uri=True)
    out: dict[str, list[int]] = {}
    for path, n in con.execute("SELECT d.path, p.page_number FROM pages p JOIN documents d USING(doc_id) "
                               "ORDER BY d.path, p.page_number"):
        out.setdefault(Path(path).name, []).append(n)
    con.close()
    return out


def make_reports(docs: Path, n: int = 12) -> dict[str, list[int]]:
    """``n`` small PDFs of 1-3 pages in ``docs``; returns {file name: its page numbers}."""
    docs.mkdir()
    want = {}
    for i in range(n):
        pages = 1 + i % 3
        make_pdf(docs / f"doc{i:02d}.pdf", [f"Document {i} page {p}: the quarterly figures for region {i * 7 + p} "
                                            "were reviewed by the committee in detail." for p in range(1, pages + 1)])
        want[f"doc{i:02d}.pdf"] = list(range(1, pages + 1))
    return want


def test_killed_cli_indexer_resumes_without_loss_or_duplicates(tmp_path):
    docs = tmp_path / "docs"
    want = make_reports(docs)
    cfg = write_config(tmp_path, commit_docs=2, commit_seconds=0.0)
    ix = tmp_path / "ix"
    rng = random.Random(7)
    for _ in range(4):
        p = run_index(docs, ix, cfg)
        time.sleep(rng.uniform(2.0, 8.0))
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=60)
        if (ix / "manifest.json").exists():
            got = pages_by_doc(ix)
            assert all(got[name] == want[name] for name in got)  # whole documents only, no repeats
    p = run_index(docs, ix, cfg)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["totals"]["error"] == 0 and report["totals"]["ok"] == 12
    assert pages_by_doc(ix) == want

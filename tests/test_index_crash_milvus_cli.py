"""kill -9 `mmrag index` with its vectors in Milvus Lite; `--resume` finishes, and Milvus matches the doc store."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("pymilvus", reason="index.vectors: milvus needs pip install 'mmrag[milvus]'")
pytest.importorskip("milvus_lite", reason="Milvus Lite needs pip install 'mmrag[milvus]'")

from mmrag.config import FieldConfig, IndexConfig  # noqa: E402
from mmrag.indexes.index import Index  # noqa: E402
from mmrag.indexes.verify import verify_index  # noqa: E402
from tests.indexes.test_milvus import live_ids, milvus_ids  # noqa: E402
from tests.test_index_crash_cli import CLI, make_reports, pages_by_doc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # a dozen indexer processes with ingestion workers: ~1-2 min on 2 busy cores
FIELDS = [{"name": "text", "encoder": "test-hash", "input": "chunks", "options": {"dim": 32}},
          {"name": "page", "encoder": "test-hash", "input": "pages", "options": {"dim": 32}}]


def run_index(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-c", CLI, "index", *args, "--json", "--quiet"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def check_loads_and_covers(ix: Path) -> None:
    """The index loads and searches; every live chunk and page has its vector in Milvus."""
    from tests.hash_encoder import register

    register()
    fields = [FieldConfig(**f) for f in FIELDS]
    index = Index.open(ix, fields, IndexConfig())
    try:
        docs = {d["doc_id"] for d in index.documents()}
        assert {h.doc_id for h in index.search("quarterly figures committee", k=50)} <= docs
    finally:
        index.close()
    live, held = live_ids(ix), milvus_ids(ix)
    for field in ("text", "page"):
        assert np.isin(live[field], held[field]).all(), field


def wait_for_progress(p: subprocess.Popen, ix: Path, rng: random.Random) -> None:
    """Until the run has made its first commit (then a moment more): the kill then lands inside a run however
    fast or slow the machine is, where a fixed sleep can miss the whole run."""
    from mmrag.cli.batch import committed_documents

    target = committed_documents(ix) + 1  # the writer's first commit of this run; later ones come in bulk
    deadline = time.monotonic() + 120
    while p.poll() is None and committed_documents(ix) < target and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.05))
    time.sleep(rng.uniform(0.0, 0.3))


def test_killed_cli_indexer_with_milvus_resumes_without_orphans_or_gaps(tmp_path):
    docs = tmp_path / "docs"
    want = make_reports(docs, n=120)  # enough that a run outlasts its first commit on a fast, idle machine
    cfg = tmp_path / "milvus-hash.yaml"
    cfg.write_text(yaml.safe_dump({"fields": FIELDS, "ingest": {"ocr": "never"},
                                   "index": {"vectors": "milvus", "milvus_uri": "milvus.db", "commit_docs": 2,
                                             "commit_seconds": 0.0}}))
    ix = tmp_path / "ix"
    rng = random.Random(11)
    kills = resumes = 0
    for _ in range(5):
        journal = ix / "run.json"
        resumable = journal.exists() and not json.loads(journal.read_text()).get("finished")
        resumes += resumable
        p = run_index(["--index", str(ix), "--resume"] if resumable else
                      [str(docs), "--index", str(ix), "--config", str(cfg)])
        wait_for_progress(p, ix, rng)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            kills += 1
        p.wait(timeout=60)
        if (ix / "manifest.json").exists():
            got = pages_by_doc(ix)
            assert all(got[name] == want[name] for name in got)  # whole documents only, no repeats
            check_loads_and_covers(ix)
            if got == want:  # finished before the kill: start over so the next kill hits a run in progress
                ix = tmp_path / f"ix-{kills}-{len(list(tmp_path.iterdir()))}"
    assert kills >= 2 and resumes >= 1
    journal = ix / "run.json"
    resumable = journal.exists() and not json.loads(journal.read_text()).get("finished")
    p = run_index(["--index", str(ix), "--resume"] if resumable else [str(docs), "--index", str(ix), "--config", str(cfg)])
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()[-3000:]
    report = json.loads(out)
    assert report["totals"]["error"] == 0 and report["totals"]["ok"] == len(want)
    assert pages_by_doc(ix) == want
    live, held = live_ids(ix), milvus_ids(ix)
    for field in ("text", "page"):  # no vector whose chunk or page the doc store lacks, and none missing
        assert np.array_equal(live[field], held[field]), field
    report = verify_index(ix)
    assert report["ok"], report["problems"]
    assert report["milvus"]["uncommitted"] == {"text": 0, "page": 0}

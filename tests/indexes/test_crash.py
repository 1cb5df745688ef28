"""kill -9 the indexer at random points: the index loads, a rerun completes, nothing lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmrag.config import IndexConfig
from mmrag.indexes.index import Index
from tests.indexes.helpers import hash_fields, word_doc

ROOT = Path(__file__).resolve().parents[2]
N_DOCS = 40


def writer(root: Path, n: int = N_DOCS, commit_docs: int = 3) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "tests.indexes.crash_writer", str(root), str(n), str(commit_docs)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def check_consistent(root: Path) -> set[str]:
    """Every committed document has exactly its pages and chunks, and search sees them."""
    ix = Index.open(root, hash_fields(), IndexConfig())
    try:
        docs = {d["doc_id"]: d for d in ix.documents()}
        for doc_id, d in docs.items():
            i = int(doc_id[1:])
            expected = 1 + i % 3
            rows = ix.store.con.execute("SELECT page_number FROM pages WHERE doc_id=? ORDER BY page_number",
                                        (doc_id,)).fetchall()
            assert [r[0] for r in rows] == list(range(1, expected + 1)), doc_id
            assert d["pages"] == expected
        chunk_ids, chunk_pages = ix.store.chunk_page_map()
        assert len(chunk_ids) == 2 * sum(1 + int(d[1:]) % 3 for d in docs)
        if docs:
            snap = ix.snapshot()
            dense = sum(len(s) for s in snap.segments["text"])
            assert dense >= len(chunk_ids) and len(snap.sparse) == len(chunk_ids)
            hits = ix.search("report appendix", k=len(docs) * 3)
            assert len({h.page_id for h in hits}) == len(hits)
            assert {h.doc_id for h in hits} <= set(docs)
        return set(docs)
    finally:
        ix.store.close()


@pytest.mark.slow  # a dozen writer processes: ~40 s on 2 busy cores
def test_kill_minus_9_at_random_points(tmp_path):
    root = tmp_path / "ix"
    p = writer(root)  # measure one undisturbed run to place the kills inside it
    t0 = time.monotonic()
    p.wait(timeout=120)
    full = time.monotonic() - t0
    assert p.returncode == 0, p.stderr.read().decode()
    reference = {(h.page_id, round(h.score, 5)) for h in Index.open(root, hash_fields(), IndexConfig()).search("report", k=200)}
    root = tmp_path / "killed"
    rng = random.Random(1234)
    kills = 0
    seen: set[str] = set()
    while kills < 12:
        p = writer(root)
        time.sleep(rng.uniform(0.05, full))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait(timeout=60)
        if root.exists() and (root / "manifest.json").exists():
            docs = check_consistent(root)
            assert seen <= docs  # a commit, once made, is never lost
            seen = docs
        if len(seen) == N_DOCS:
            root = tmp_path / f"killed{kills}"  # start over so every kill hits a run in progress
            seen = set()
    p = writer(root)
    p.wait(timeout=120)
    assert p.returncode == 0, p.stderr.read().decode()
    assert check_consistent(root) == {f"d{i}" for i in range(N_DOCS)}
    got = {(h.page_id, round(h.score, 5)) for h in Index.open(root, hash_fields(), IndexConfig()).search("report", k=200)}
    assert got == reference
    leftovers = [q for q in root.rglob("*") if ".tmp" in q.name]
    assert leftovers == []


def test_reader_never_errors_while_a_writer_adds(tmp_path):
    root = tmp_path / "ix"
    p0 = writer(root, n=3)
    p0.wait(timeout=60)
    ix = Index.open(root, hash_fields(), IndexConfig())
    ix.search("report number", k=20)  # first-search costs (imports, checksums) paid before the writer starts
    w = writer(root, n=40, commit_docs=2)
    counts, errors = [], []
    while w.poll() is None:
        try:
            hits = ix.search("report number", k=20)
            docs = {d["doc_id"] for d in ix.documents()}
            counts.append(len(docs))
            assert {h.doc_id for h in hits} <= docs  # docs only grows, and was read after the search
        except Exception as e:  # noqa: BLE001 - the test reports any failure
            errors.append(repr(e))
    assert w.returncode == 0, w.stderr.read().decode()
    assert errors == []
    assert len(counts) > 3 and counts == sorted(counts), counts
    assert len({d["doc_id"] for d in ix.documents()}) == 40

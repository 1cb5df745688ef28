"""index.milvus_uri: http://HOST:PORT — the server path, against Milvus Lite's own gRPC server process.

`python -m milvus_lite server` speaks the Milvus protocol on a TCP port, so these tests run the
code a Milvus server or cluster gets (no .db path, no embedded server, other processes reading
while a writer adds). A real Milvus standalone or cluster is not available here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pymilvus", reason="index.vectors: milvus needs pip install 'mmrag[milvus]'")
pytest.importorskip("milvus_lite", reason="Milvus Lite needs pip install 'mmrag[milvus]'")

from mmrag.config import IndexConfig  # noqa: E402
from mmrag.errors import ServerError  # noqa: E402
from mmrag.indexes import milvus  # noqa: E402
from mmrag.indexes.index import Index  # noqa: E402
from mmrag.indexes.verify import verify_index  # noqa: E402
from tests.indexes.helpers import hash_fields, word_doc  # noqa: E402
from tests.indexes.test_milvus import both_fields, build_random, live_ids, milvus_ids, ranked  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, port: int) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data), "--host",
                          "127.0.0.1", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    line = p.stdout.readline().decode()
    assert "listening" in line, line + p.stdout.read().decode()[-2000:]
    return p


def wait_reachable(uri: str, seconds: float = 60) -> None:
    """A restarted server listens at once, but clients back off from an address that failed: wait."""
    from pymilvus import MilvusClient

    deadline = time.monotonic() + seconds
    while True:
        try:
            client = MilvusClient(uri=uri)
            client.list_collections()
            client.close()
            return
        except Exception:  # noqa: BLE001 - any failure means not yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def stop_server(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    p.stdout.close()


@pytest.fixture()
def server(tmp_path):
    """A Milvus-protocol server on 127.0.0.1 in its own process; yields (uri, process)."""
    port = _free_port()
    p = start_server(tmp_path / "milvus-data", port)
    try:
        yield f"http://127.0.0.1:{port}", p
    finally:
        stop_server(p)
    assert milvus.open_connections() == []


def test_server_uri_gives_the_same_pages_as_faiss(tmp_path, server):
    uri, _ = server
    docs = [word_doc(i, n_pages=1 + i % 3) for i in range(20)]
    faiss_ix = build_random(tmp_path / "faiss", docs, IndexConfig(candidates=4, sparse=False))
    milvus_ix = build_random(tmp_path / "milvus", docs, IndexConfig(candidates=4, sparse=False, vectors="milvus",
                                                                    milvus_uri=uri))
    try:
        assert not (tmp_path / "milvus" / "milvus.db").exists()  # the vectors live in the server
        for q in ("alpha report", "kilo lima", "number 7 page 2"):
            assert ranked(milvus_ix, q, k=6) == ranked(faiss_ix, q, k=6)
            flt = {"page": "1-2", "metadata": {"group": "2"}}
            assert ranked(milvus_ix, q, k=6, filters=flt) == ranked(faiss_ix, q, k=6, filters=flt)
    finally:
        faiss_ix.close()
        milvus_ix.close()
    assert verify_index(tmp_path / "milvus")["ok"]


@pytest.mark.slow  # a writer process beside the server process: ~12 s on 2 busy cores
def test_reader_searches_while_another_process_writes(tmp_path, server):
    """What Milvus Lite's embedded mode cannot do: a reader beside a writer, each commit seen whole."""
    uri, _ = server
    root = tmp_path / "ix"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "tests.indexes.crash_writer", str(root), "3", "2", "milvus", uri]
    assert subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=120).returncode == 0
    cmd[4] = "30"
    w = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    counts, errors = [], []
    ix = Index.open(root, hash_fields(), IndexConfig())
    try:
        while w.poll() is None:
            try:
                hits = ix.search("report number", k=20)
                docs = {d["doc_id"] for d in ix.documents()}
                counts.append(len(docs))
                assert {h.doc_id for h in hits} <= docs
            except Exception as e:  # noqa: BLE001 - the test reports any failure
                errors.append(repr(e))
        assert w.returncode == 0, w.stderr.read().decode()[-2000:]
        assert errors == []
        assert len(counts) > 3 and counts == sorted(counts) and counts[-1] <= 30
        assert len(ix.documents()) == 30 and len(ix.search("report number", k=100)) == 30 * 2
    finally:
        ix.close()
    live, held = live_ids(root), milvus_ids(root)
    assert list(held["text"]) == list(live["text"])


def test_a_server_that_goes_away_is_a_server_error(tmp_path, server):
    uri, p = server
    root = tmp_path / "ix"
    build_random(root, [word_doc(i) for i in range(4)], IndexConfig(vectors="milvus", milvus_uri=uri)).close()
    ix = Index.open(root, both_fields(), IndexConfig())
    try:
        assert ix.search("report", k=2)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        ix._snapshot = None  # the next search reloads and talks to Milvus again
        t0 = time.monotonic()
        with pytest.raises(ServerError, match="Milvus at http://127.0.0.1"):
            ix.search("alpha", k=2)
        assert time.monotonic() - t0 < 120
    finally:
        ix.close()


@pytest.mark.slow  # two server starts and a reconnect wait: ~10 s
def test_a_server_lost_during_a_commit_commits_nothing_and_the_next_writer_finishes(tmp_path, server):
    uri, p = server
    root = tmp_path / "ix"
    cfg = IndexConfig(vectors="milvus", milvus_uri=uri)
    Index.open(root, hash_fields(), cfg, write=True).close()
    ix = Index.open(root, hash_fields(), cfg, write=True)
    try:
        ix.add(*word_doc(0))
        ix.commit()
        ix.add(*word_doc(1))
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        with pytest.raises(ServerError):
            ix.commit()
    finally:
        ix._pending = []  # what failed is not retried on close
        ix.close()
    reader = Index.open(root, hash_fields(), cfg)
    try:
        assert [d["doc_id"] for d in reader.documents()] == ["d0"]  # the failed commit left nothing
    finally:
        reader.close()
    again = start_server(tmp_path / "milvus-data", int(uri.rsplit(":", 1)[1]))  # the server comes back
    try:
        wait_reachable(uri)
        with Index.open(root, hash_fields(), cfg, write=True) as ix:
            ix.add(*word_doc(1))
        live, held = live_ids(root), milvus_ids(root)
        assert list(held["text"]) == list(live["text"]) and len(live["text"]) == 8
        reader = Index.open(root, hash_fields(), cfg)
        try:
            assert {h.doc_id for h in reader.search("report", k=10)} == {"d0", "d1"}
        finally:
            reader.close()
    finally:
        stop_server(again)

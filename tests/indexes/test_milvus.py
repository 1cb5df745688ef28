"""Vectors in Milvus Lite (index.vectors: milvus): same results as FAISS, filters inside Milvus, commit point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="index.vectors: milvus needs pip install 'mmrag[milvus]'")
pytest.importorskip("milvus_lite", reason="Milvus Lite needs pip install 'mmrag[milvus]'")

from mmrag.config import FieldConfig, IndexConfig  # noqa: E402
from mmrag.errors import ConfigError, IndexLocked, IndexMismatch  # noqa: E402
from mmrag.indexes import integrity, milvus  # noqa: E402
from mmrag.indexes.index import Index  # noqa: E402
from mmrag.indexes.verify import verify_index  # noqa: E402
from tests.hash_encoder import HashMultiEncoder  # noqa: E402
from tests.indexes.helpers import build, hash_fields, make_doc, word_doc  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ["alpha report", "appendix zulu golf", "number 7 page 2", "kilo lima", "report number 12"]
FILTERS = [
    {"doc_id": ["d3", "d5", "d17"]},
    {"page": "2-3"},
    {"metadata": {"group": "1"}},
    {"path": "/docs/doc1*.pdf"},
    {"path": "/docs/doc?.pdf", "page": 1},
    {"path": "/docs/doc[12].pdf"},  # a GLOB class: LIKE cannot say it, the doc store's page ids go instead
    {"metadata": {"group": 'x"1'}},  # a quote: not written into an expression, resolved by the doc store
]


@pytest.fixture(autouse=True)
def nothing_left_open():
    yield
    assert milvus.open_connections() == []  # every client closed, every Milvus Lite server stopped


def both_fields():
    return hash_fields() + [FieldConfig(name="page", encoder="test-hash", input="pages", options={"dim": 32})]


def ranked(ix, q, **kw):
    return [(h.doc_id, h.page, round(h.score, 5)) for h in ix.search(q, **kw)]


def _docstore(root: Path):
    import sqlite3

    return sqlite3.connect(f"file:{root / 'docstore.sqlite'}?mode=ro", uri=True)


def vectors_of(root: Path) -> milvus.MilvusVectors:
    """The index's collections, found through the doc store's record (close it after use)."""
    con = _docstore(root)
    try:
        rec = json.loads(con.execute("SELECT value FROM meta WHERE key='vectors'").fetchone()[0])
    finally:
        con.close()
    return milvus.MilvusVectors(milvus.resolve_uri(rec["uri"], root), rec["collection"])


def milvus_ids(root: Path) -> dict[str, np.ndarray]:
    """Every id each field's collection holds, read straight from Milvus."""
    with vectors_of(root) as mv:
        return {name: mv.ids(name) for name in ("text", "page")}  # empty where no collection exists yet


def live_ids(root: Path) -> dict[str, np.ndarray]:
    con = _docstore(root)
    try:
        return {"text": np.array([r[0] for r in con.execute("SELECT id FROM chunks ORDER BY id")], np.int64),
                "page": np.array([r[0] for r in con.execute("SELECT id FROM pages ORDER BY id")], np.int64)}
    finally:
        con.close()


def build_random(root: Path, docs: list, cfg: IndexConfig, commit_each: bool = False) -> Index:
    """Both fields filled with seeded random unit vectors: no two scores tie, so the top pages are unique."""
    rng = np.random.default_rng(7)

    def unit(n):
        v = rng.standard_normal((n, 32)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    vectors = [{"text": unit(len(d[2])), "page": unit(len(d[1]))} for d in docs]
    with Index.open(root, both_fields(), cfg, write=True) as ix:
        for d, v in zip(docs, vectors):
            ix.add(*d, vectors=v)
            if commit_each:
                ix.commit()
    return Index.open(root, both_fields(), cfg)


@pytest.mark.parametrize("candidates,sparse", [(4, False), (100, True)])
def test_same_top_pages_and_scores_as_faiss(tmp_path, candidates, sparse):
    """Exact search (FLAT in Milvus, flat FAISS) on the same vectors: identical pages and scores.

    With 4 candidates per channel and no BM25, Milvus's own search picks the pages; with BM25 on,
    the fusion of all channels over the candidate union is compared. Filters included.
    """
    docs = [word_doc(i, n_pages=1 + i % 3) for i in range(30)]
    faiss_ix = build_random(tmp_path / "faiss", docs, IndexConfig(candidates=candidates, sparse=sparse))
    milvus_ix = build_random(tmp_path / "milvus", docs, IndexConfig(candidates=candidates, sparse=sparse,
                                                                    vectors="milvus"), commit_each=True)
    try:
        assert not (tmp_path / "milvus" / "segments").exists() or not any((tmp_path / "milvus" / "segments").iterdir())
        for q in QUERIES:
            for channels in (None, ["text"], ["page"]):
                want = ranked(faiss_ix, q, k=8, channels=channels)
                assert len(want) >= 5 and ranked(milvus_ix, q, k=8, channels=channels) == want, (q, channels)
            for flt in FILTERS:
                assert ranked(milvus_ix, q, k=5, filters=flt) == ranked(faiss_ix, q, k=5, filters=flt), (q, flt)
    finally:
        faiss_ix.close()
        milvus_ix.close()


def test_filters_become_milvus_expressions():
    assert milvus.filter_expression({"doc_id": "d1", "page": "2-5"}) == \
        'doc_id in ["d1"] and (page_number >= 2 and page_number <= 5)'
    assert milvus.filter_expression({"path": "/data/*/report-?.pdf"}) == 'path like "/data/%/report-_.pdf"'
    assert milvus.filter_expression({"metadata": {"year": 2020}}) == 'metadata["year"] == "2020"'
    for cannot in ({"path": "/a/[ab].pdf"}, {"path": "/a/x_1.pdf"}, {"doc_id": 'a"b'}, {"metadata": {"k": "a\\b"}}):
        assert milvus.filter_expression(cannot) is None
        assert milvus.search_expression(cannot, np.array([3, 9])) == "page_id in [3, 9]"


def test_metadata_values_match_like_the_doc_store(tmp_path):
    docs = [make_doc(1, [["alpha one"]], {"year": 2020, "draft": True, "tag": "x"}),
            make_doc(2, [["alpha two"]], {"year": "2021", "draft": False}),
            make_doc(3, [["alpha three"]], {"tags": ["a", "b"]})]
    f_ix = build(tmp_path / "f", docs)
    m_ix = build(tmp_path / "m", docs, cfg=IndexConfig(vectors="milvus", sparse=False))
    try:
        for meta in ({"year": 2020}, {"year": "2021"}, {"draft": 1}, {"draft": "0"}, {"tags": '["a","b"]'},
                     {"tag": "x", "year": "2020"}, {"year": "1999"}):
            want = [(h.doc_id, h.page) for h in f_ix.search("alpha", k=5, filters={"metadata": meta})]
            assert [(h.doc_id, h.page) for h in m_ix.search("alpha", k=5, filters={"metadata": meta})] == want, meta
    finally:
        f_ix.close()
        m_ix.close()


def test_upsert_and_delete_keep_milvus_equal_to_the_doc_store(tmp_path):
    root = tmp_path / "ix"
    fields = both_fields()
    cfg = IndexConfig(vectors="milvus")
    build(root, [word_doc(i) for i in range(6)], fields=fields, cfg=cfg).close()
    changed = make_doc(1, [["xylophone quartet rehearsal"], ["zebra crossing"]])
    with Index.open(root, fields, cfg, write=True) as ix:
        ix.add(*changed)  # same doc id and path: replaces its pages, chunks and vectors
        ix.delete(["d2"])
    got = milvus_ids(root)
    live = live_ids(root)
    assert np.array_equal(got["text"], live["text"]) and np.array_equal(got["page"], live["page"])
    ix = Index.open(root, fields, cfg)
    try:
        top = ix.search("xylophone quartet rehearsal", k=3, channels=["text"])[0]
        assert (top.doc_id, top.page) == ("d1", 1)
        assert all(h.doc_id != "d2" for h in ix.search("report", k=50))
        assert {h.doc_id for h in ix.search("report", k=50, filters={"doc_id": "d1"})} <= {"d1"}
    finally:
        ix.close()
    assert verify_index(root)["ok"]


@pytest.mark.parametrize("field_input", ["chunks", "pages"])  # ColBERT-style chunks, ColPali-style pages
def test_multivector_field_is_one_row_per_token_and_scores_exact_maxsim(tmp_path, field_input):
    fields = hash_fields() + [FieldConfig(name="tokens", encoder="test-hash-multi", input=field_input,
                                          options={"dim": 32})]
    docs = [word_doc(i) for i in range(10)]
    root = tmp_path / "ix"
    cfg = IndexConfig(vectors="milvus")
    build(root, docs[:6], fields=fields, cfg=cfg).close()
    with Index.open(root, fields, cfg, write=True) as ix:
        for d in docs[6:]:
            ix.add(*d)
        ix.delete(["d2"])
    enc = HashMultiEncoder(32)
    q = "kilo report appendix"
    qm = enc.encode_query(q)
    items = [(p.doc_id, p.page_number, p.text) for d in docs for p in d[1]] if field_input == "pages" else \
        [(c.doc_id, c.page_number, c.text) for d in docs for c in d[2]]
    items = [it for it in items if it[0] != "d2"]
    best: dict = {}
    for doc_id, page, text in items:
        s = float((qm @ enc.encode_text([text])[0].T).max(axis=1).sum())
        best[(doc_id, page)] = max(best.get((doc_id, page), -9), s)
    ix = Index.open(root, fields, cfg)
    try:
        hits = ix.search(q, k=5, channels=["tokens"])
        assert [h.score for h in hits] == pytest.approx(sorted(best.values(), reverse=True)[:5], abs=1e-5)
        assert all(h.doc_id != "d2" for h in ix.search(q, k=30))
        assert {h.doc_id for h in ix.search(q, k=30, channels=["tokens"], filters={"doc_id": ["d4", "d7"]})} == \
            {"d4", "d7"}
        rows = ix._milvus.count("tokens")
    finally:
        ix.close()
    assert rows == sum(len(enc.encode_text([t])[0]) for _, _, t in items)  # one row per token, d2's gone
    ix = Index.open(root, fields, IndexConfig(vectors="milvus", candidates=2))
    try:  # few token candidates: pages BM25 brings in are scored by MaxSim over their fetched tokens
        hits = ix.search(q, k=12)
        assert len(hits) == 12
        for h in hits:
            assert h.scores["tokens"] == pytest.approx(best[(h.doc_id, h.page)], abs=1e-5)
    finally:
        ix.close()
    assert verify_index(root)["ok"]


def _kill_at(root: Path, point: str, first: int, count: int) -> None:
    """Index docs [first, first+count) in a child that SIGKILLs itself at ``point`` of its commit."""
    code = textwrap.dedent(f"""
        import os, signal
        from mmrag.config import IndexConfig
        from mmrag.indexes import milvus
        from mmrag.indexes.docstore import DocStore
        from mmrag.indexes.index import Index
        from tests.indexes.helpers import hash_fields, word_doc
        def die(*a, **k):
            os.kill(os.getpid(), signal.SIGKILL)
        if {point!r} == "before-sqlite-commit":   # vectors are in Milvus, their ids not yet live
            DocStore.commit = die
        else:                                      # ids live in SQLite, replaced vectors not yet deleted
            milvus.flush_deletes = lambda mv, store: die() if store.con.execute(
                "SELECT count(*) FROM milvus_deletes").fetchone()[0] else None
        ix = Index.open({str(root)!r}, hash_fields(), IndexConfig(vectors="milvus"), write=True)
        for i in range({first}, {first + count}):
            ix.add(*word_doc(i, n_pages=3))
        ix.commit()
    """)
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()[-2000:]


@pytest.mark.parametrize("point", ["before-sqlite-commit", "before-milvus-deletes"])
def test_writer_killed_inside_its_commit(tmp_path, point):
    """Readers never see what the doc store does not hold; the next writer removes it from Milvus."""
    root = tmp_path / "ix"
    build(root, [word_doc(i) for i in range(4)], cfg=IndexConfig(vectors="milvus")).close()
    before = live_ids(root)["text"]
    _kill_at(root, point, first=0 if point == "before-milvus-deletes" else 4, count=4)
    live = live_ids(root)["text"]
    if point == "before-sqlite-commit":
        assert np.array_equal(live, before)  # the commit never happened
    else:
        assert not np.array_equal(live, before) and len(live) == len(before) * 3 // 2  # 3 pages a doc now
    held = milvus_ids(root)["text"]
    assert np.isin(live, held).all()  # no live chunk without its vector...
    assert len(np.setdiff1d(held, live)) > 0  # ...and the dead writer's extra rows are still in Milvus
    ix = Index.open(root, hash_fields(), IndexConfig(vectors="milvus"))
    try:  # a reader returns only what the doc store holds, with exact scores
        hits = ix.search("report", k=100, channels=["text"])
        assert hits and {h.chunk_id for h in hits} <= {c[0] for c in ix.store.con.execute("SELECT chunk_id FROM chunks")}
        assert len(hits) == len(ix.store.page_ids())
    finally:
        ix.close()
    report = verify_index(root)
    assert report["ok"], report["problems"]
    Index.open(root, hash_fields(), IndexConfig(vectors="milvus"), write=True).close()  # the next writer
    assert np.array_equal(milvus_ids(root)["text"], live_ids(root)["text"])
    integrity.forget_verified()  # a fresh reader process: the doc store's checksum is checked again
    ix = Index.open(root, hash_fields(), IndexConfig())
    try:
        assert ix.search("report", k=3)
    finally:
        ix.close()
    assert verify_index(root)["ok"]


@pytest.mark.slow  # seven writer processes, each importing pymilvus: ~20 s on 2 busy cores
def test_killed_writers_at_random_points_leave_milvus_equal_to_the_doc_store(tmp_path):
    """kill -9 the indexer (tests.indexes.crash_writer) at random times; each rerun resumes.

    After every kill the index loads and every live chunk has its vector; after the last run the
    collection holds exactly the live chunks and search equals an undisturbed build's.
    """
    import random
    import time

    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def cmd(root):
        return [sys.executable, "-m", "tests.indexes.crash_writer", str(root), "24", "2", "milvus"]

    t0 = time.monotonic()
    p = subprocess.run(cmd(tmp_path / "clean"), cwd=ROOT, env=env, capture_output=True, timeout=120)
    full = time.monotonic() - t0
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    ix = Index.open(tmp_path / "clean", hash_fields(), IndexConfig())
    reference = ranked(ix, "report appendix", k=100)
    ix.close()
    root = tmp_path / "ix"
    rng = random.Random(13)
    seen: set = set()
    kills = 0
    for _ in range(5):
        p = subprocess.Popen(cmd(root), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.4 * full, 0.9 * full))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait(timeout=60)
        if (root / "manifest.json").exists():
            assert np.isin(live_ids(root)["text"], milvus_ids(root)["text"]).all()  # no chunk without its vector
            ix = Index.open(root, hash_fields(), IndexConfig())
            try:
                docs = {d["doc_id"] for d in ix.documents()}
                assert {h.doc_id for h in ix.search("report appendix", k=100)} <= docs
            finally:
                ix.close()
            assert seen <= docs  # a commit, once made, is never lost
            seen = docs
        if len(seen) == 24:  # finished before the kill: start over so the next kill hits a run in progress
            root, seen = tmp_path / f"ix-{kills}-{len(list(tmp_path.iterdir()))}", set()
    assert kills >= 2
    p = subprocess.run(cmd(root), cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert np.array_equal(milvus_ids(root)["text"], live_ids(root)["text"])  # and no vector without its chunk
    ix = Index.open(root, hash_fields(), IndexConfig())
    try:
        assert len(ix.documents()) == 24
        assert ranked(ix, "report appendix", k=100) == reference
    finally:
        ix.close()
    assert verify_index(root)["ok"]


def test_milvus_lite_is_one_process_at_a_time(tmp_path):
    root = tmp_path / "ix"
    build(root, [word_doc(i) for i in range(3)], cfg=IndexConfig(vectors="milvus")).close()
    code = textwrap.dedent(f"""
        import sys, time
        from mmrag.config import IndexConfig
        from mmrag.indexes.index import Index
        from tests.indexes.helpers import hash_fields
        ix = Index.open({str(root)!r}, hash_fields(), IndexConfig(vectors="milvus"), write=True)
        print("open", flush=True)
        sys.stdin.read()
        ix.close()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"open"
        ix = Index.open(root, hash_fields(), IndexConfig())
        try:
            with pytest.raises(IndexLocked, match="one process at a time"):
                ix.search("report", k=3)
        finally:
            ix.close()
    finally:
        p.communicate(b"", timeout=60)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    ix = Index.open(root, hash_fields(), IndexConfig())  # free again once the writer has gone
    try:
        assert ix.search("report", k=3)
    finally:
        ix.close()


def test_config_mistakes_are_clear_errors(tmp_path):
    build(tmp_path / "faiss", [word_doc(0)]).close()
    with pytest.raises(IndexMismatch, match="FAISS segments"):
        Index.open(tmp_path / "faiss", hash_fields(), IndexConfig(vectors="milvus"), write=True)
    with pytest.raises(ConfigError, match="ending in .db"):
        Index.open(tmp_path / "new", hash_fields(), IndexConfig(vectors="milvus", milvus_uri="vectors"), write=True)
    build(tmp_path / "lite", [word_doc(0)], cfg=IndexConfig(vectors="milvus")).close()
    with pytest.raises(IndexMismatch, match="keeps its vectors in milvus.db"):
        Index.open(tmp_path / "lite", hash_fields(), IndexConfig(vectors="milvus", milvus_uri="/elsewhere/v.db")).search("x")
    assert milvus.resolve_uri("http://milvus:19530", tmp_path) == "http://milvus:19530"
    assert milvus.resolve_uri("sub/v.db", tmp_path) == str(tmp_path.resolve() / "sub" / "v.db")


def test_verify_reports_a_vector_missing_from_milvus(tmp_path):
    root = tmp_path / "ix"
    build(root, [word_doc(i) for i in range(3)], cfg=IndexConfig(vectors="milvus")).close()
    assert verify_index(root)["ok"]
    victim = int(live_ids(root)["text"][0])
    with vectors_of(root) as mv:
        mv.delete("text", np.array([victim]))
    report = verify_index(root)
    assert not report["ok"]
    assert [p["kind"] for p in report["problems"]] == ["coverage"] and "1 live chunks have no vector" in \
        report["problems"][0]["message"]


def test_collections_gone_from_milvus_are_corruption_not_an_empty_search(tmp_path):
    from mmrag.errors import IndexCorrupt

    root = tmp_path / "ix"
    build(root, [word_doc(i) for i in range(3)], cfg=IndexConfig(vectors="milvus")).close()
    with vectors_of(root) as mv:
        mv.drop()
    ix = Index.open(root, hash_fields(), IndexConfig())
    try:
        with pytest.raises(IndexCorrupt, match="has no collection"):
            ix.search("report", k=3)
    finally:
        ix.close()
    assert not verify_index(root)["ok"]


def test_hnsw_collections_search_and_filter(tmp_path):
    """index.milvus_index: HNSW (for large collections); on a small one its graph search finds the exact top."""
    docs = [word_doc(i, n_pages=1 + i % 3) for i in range(20)]
    faiss_ix = build_random(tmp_path / "faiss", docs, IndexConfig(candidates=5, sparse=False))
    hnsw_ix = build_random(tmp_path / "hnsw", docs, IndexConfig(candidates=5, sparse=False, vectors="milvus",
                                                                milvus_index="HNSW"))
    try:
        for q in QUERIES[:3]:
            assert ranked(hnsw_ix, q, k=5) == ranked(faiss_ix, q, k=5)
            assert ranked(hnsw_ix, q, k=5, filters={"page": 2}) == ranked(faiss_ix, q, k=5, filters={"page": 2})
        desc = hnsw_ix._milvus.client.describe_index(hnsw_ix._milvus.name("text"), "vector")
        assert desc["index_type"] == "HNSW"
    finally:
        faiss_ix.close()
        hnsw_ix.close()


def test_repair_writes_missing_vectors_back_into_milvus(tmp_path):
    from mmrag.indexes.repair import repair_index

    root = tmp_path / "ix"
    cfg = IndexConfig(vectors="milvus")
    docs = [word_doc(i, n_pages=2) for i in range(4)]
    build(root, docs, fields=both_fields(), cfg=cfg).close()
    ix = Index.open(root, both_fields(), cfg)
    want = ranked(ix, "alpha report", k=6, filters={"metadata": {"group": "1"}})
    ix.close()
    victims = live_ids(root)
    with vectors_of(root) as mv:
        mv.delete("text", victims["text"][:3])
        mv.delete("page", victims["page"][-2:])
    report = verify_index(root)
    assert {p["field"] for p in report["problems"]} == {"text", "page"}
    result = repair_index(root, both_fields(), cfg)
    assert result["reencoded"] == {"text": 3, "page": 2} and result["after"]["ok"], result["after"]["problems"]
    assert not (root / "segments").exists() or not any((root / "segments").iterdir())  # no FAISS segment made
    held = milvus_ids(root)
    assert np.array_equal(held["text"], victims["text"]) and np.array_equal(held["page"], victims["page"])
    ix = Index.open(root, both_fields(), cfg)
    try:  # the rows came back with their scalar fields: the same filtered search as before
        assert ranked(ix, "alpha report", k=6, filters={"metadata": {"group": "1"}}) == want
    finally:
        ix.close()

"""Index mechanics on a hashed-words encoder: exact scores, fusion, filters, upsert, format."""

import json

import numpy as np
import pytest

from mmrag.config import IndexConfig
from mmrag.errors import IndexCorrupt, IndexLocked, IndexMismatch, IndexNotFound
from mmrag.indexes.index import Index
from mmrag.indexes.sparse import tokenize
from tests.hash_encoder import HashEncoder
from tests.indexes.helpers import build, hash_fields, make_doc, word_doc


@pytest.fixture()
def docs():
    return [word_doc(i) for i in range(12)]


def all_chunks(docs):
    return [(c, d[0].doc_id) for d in docs for c in d[2]]


def brute_force_dense(docs, query, dim=32):
    """Page ranking by max cosine over chunks, computed directly from the encoder."""
    enc = HashEncoder(dim)
    chunks = all_chunks(docs)
    scores = enc.encode_text([c.text for c, _ in chunks]) @ enc.encode_query(query)[0]
    best: dict = {}
    for (c, _), s in zip(chunks, scores):
        key = (c.doc_id, c.page_number)
        best[key] = max(best.get(key, -9), float(s))
    return best


def test_dense_only_search_equals_brute_force(tmp_path, docs):
    ix = build(tmp_path / "ix", docs, commit_each=True)  # many segments
    q = "bravo delta appendix"
    hits = ix.search(q, k=24, channels=["text"])
    want = brute_force_dense(docs, q)
    for h in hits:
        assert h.score == pytest.approx(want[(h.doc_id, h.page)], abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].score == pytest.approx(max(want.values()), abs=1e-5)


def test_bm25_only_equals_raw_bm25s(tmp_path, docs):
    import bm25s

    ix = build(tmp_path / "ix", docs)
    q = "golf appendix report"
    chunks = all_chunks(docs)
    model = bm25s.BM25(k1=0.9, b=0.4)
    model.index(tokenize([c.text for c, _ in chunks]), show_progress=False)
    raw = model.get_scores(tokenize([q])[0])
    best: dict = {}
    for (c, _), s in zip(chunks, raw):
        key = (c.doc_id, c.page_number)
        best[key] = max(best.get(key, 0.0), float(s))
    hits = ix.search(q, k=5, channels=["bm25"])
    top = sorted(best.values(), reverse=True)[:5]
    assert [h.score for h in hits] == pytest.approx(top, rel=1e-5)
    for h in hits:
        assert h.score == pytest.approx(best[(h.doc_id, h.page)], rel=1e-5)


def test_page_bm25_channel_equals_raw_bm25s_over_page_texts(tmp_path, docs):
    import bm25s

    cfg = IndexConfig(page_bm25=True)
    ix = build(tmp_path / "ix", docs, cfg=cfg)
    pages = [(d[0].doc_id, p.page_number, p.text) for d in docs for p in d[1]]
    model = bm25s.BM25(k1=0.9, b=0.4)
    model.index(tokenize([t for _, _, t in pages]), show_progress=False)
    q = "golf appendix report"
    raw = model.get_scores(tokenize([q])[0])
    want = {(d, n): float(s) for (d, n, _), s in zip(pages, raw)}
    hits = ix.search(q, k=10, channels=["bm25-page"])
    assert [h.score for h in hits] == pytest.approx(sorted(want.values(), reverse=True)[:10], rel=1e-5)
    for h in hits:
        assert h.score == pytest.approx(want[(h.doc_id, h.page)], rel=1e-5)
        assert h.scores["bm25-page"] == pytest.approx(h.score)
    # a hybrid search fuses it as a third channel; a delete drops the document's pages from it
    assert set(ix.search(q, k=3)[0].scores) == {"text", "bm25", "bm25-page"}
    gone = hits[0].doc_id
    with Index.open(tmp_path / "ix", hash_fields(), cfg, write=True) as w:
        w.delete([gone])
    assert gone not in {h.doc_id for h in ix.search(q, k=24, channels=["bm25-page"])}
    assert ix.verify() == []
    # a reader without the option ignores the channel; an index built without it has none
    plain = Index.open(tmp_path / "ix", hash_fields(), IndexConfig())
    assert set(plain.search(q, k=3)[0].scores) == {"text", "bm25"}
    assert set(build(tmp_path / "old", docs[:3]).search(q, k=3, channels=None)[0].scores) == {"text", "bm25"}


def test_chunk_headings_are_indexed_but_not_shown(tmp_path):
    from mmrag.types import Chunk

    c = Chunk(chunk_id="d9#1#0", doc_id="d9", page_number=1, text="net revenue 100", heading="Statements of Operations")
    assert c.index_text == "Statements of Operations\nnet revenue 100"
    plain_doc = make_doc(9, [["net revenue 100"]])
    doc, pages, _ = plain_doc
    ix = build(tmp_path / "ix", [plain_doc, word_doc(1)])
    with Index.open(tmp_path / "ix2", hash_fields(), IndexConfig(), write=True) as w:
        w.add(doc, pages, [c])
        w.add(*word_doc(1))
    with_heading = Index.open(tmp_path / "ix2", hash_fields(), IndexConfig())
    q = "statements operations"
    assert not [h for h in ix.search(q, k=5, channels=["bm25"]) if h.doc_id == "d9"]
    hit = with_heading.search(q, k=1, channels=["bm25"])[0]
    assert hit.doc_id == "d9" and hit.snippet == "net revenue 100"


def test_hybrid_snippet_is_the_best_chunk_with_its_box(tmp_path):
    doc = make_doc(1, [["kilo lima mike", "zulu yankee xray zulu"], ["oscar papa"]])
    ix = build(tmp_path / "ix", [doc, word_doc(5)])
    hit = ix.search("zulu xray", k=1)[0]
    assert (hit.doc_id, hit.page) == ("d1", 1)
    assert hit.snippet == "zulu yankee xray zulu" and hit.chunk_id == "d1#1#1"
    assert hit.bbox == doc[1][0].blocks[1].bbox
    assert set(hit.scores) == {"text", "bm25"} and hit.text.startswith("kilo lima mike")
    assert [b.text for b in hit.blocks] == ["kilo lima mike", "zulu yankee xray zulu"]


def test_filters_restrict_results(tmp_path, docs):
    ix = build(tmp_path / "ix", docs)
    hits = ix.search("report", k=50, filters={"metadata": {"group": "1"}, "page": 2})
    assert hits and all(h.page == 2 and int(h.doc_id[1:]) % 3 == 1 for h in hits)
    assert len(hits) == 4
    assert ix.search("report", k=5, filters={"doc_id": ["nope"]}) == []


def test_delete_and_upsert(tmp_path, docs):
    root = tmp_path / "ix"
    reader = build(root, docs)
    assert any(h.doc_id == "d3" for h in reader.search("report number 3", k=3))
    with Index.open(root, hash_fields(), IndexConfig(), write=True) as ix:
        ix.delete(["d3"])
        new = make_doc(4, [["completely new words sierra"]])  # same id and path as d4: replaces it
        ix.add(*new)
    assert all(h.doc_id != "d3" for h in reader.search("report number 3", k=30))  # reader follows commits
    hits = reader.search("completely new words", k=1)
    assert (hits[0].doc_id, hits[0].snippet) == ("d4", "completely new words sierra")
    assert reader.store.counts() == {"documents": 11, "pages": 21, "chunks": 41}
    assert [p for p in reader.documents() if p["doc_id"] == "d4"][0]["pages"] == 1


def test_merging_segments_keeps_results(tmp_path, docs):
    one = build(tmp_path / "a", docs)
    many = build(tmp_path / "b", docs, cfg=IndexConfig(max_segments=2), commit_each=True)
    assert len(many.store.segments()) <= 2
    for q in ("alpha bravo", "appendix kilo", "report number 7"):
        a = [(h.doc_id, h.page, round(h.score, 5)) for h in one.search(q, k=10)]
        b = [(h.doc_id, h.page, round(h.score, 5)) for h in many.search(q, k=10)]
        assert a == b


def test_hnsw_and_rrf_settings(tmp_path, docs):
    cfg = IndexConfig(dense="hnsw", fusion="rrf")
    ix = build(tmp_path / "ix", docs, cfg=cfg)
    seg = ix.store.segments()[0]
    assert seg["kind"] == "hnsw" and (tmp_path / "ix" / "segments" / seg["name"] / "faiss.index").is_file()
    flat = build(tmp_path / "flat", docs, cfg=IndexConfig(fusion="rrf"))
    assert [h.page_id for h in ix.search("charlie echo", k=3)] == [h.page_id for h in flat.search("charlie echo", k=3)]


def test_auto_dense_scans_small_segments_and_graphs_large_ones(tmp_path, docs, monkeypatch):
    import mmrag.indexes.dense as dense

    assert dense.segment_kind("auto", dense.AUTO_HNSW_MIN_VECTORS - 1) == "flat"
    assert dense.segment_kind("auto", dense.AUTO_HNSW_MIN_VECTORS) == "hnsw"
    assert dense.segment_kind("ivfpq", 10) == "flat" and dense.segment_kind("hnsw", 10) == "hnsw"
    monkeypatch.setattr(dense, "AUTO_HNSW_MIN_VECTORS", 20)  # 12 docs x 4 chunks: first segment small
    ix = build(tmp_path / "ix", docs[:2], cfg=IndexConfig(dense="auto"), commit_each=True)
    kinds = sorted(s["kind"] for s in ix.store.segments())
    big = build(tmp_path / "big", docs, cfg=IndexConfig(dense="auto"))
    assert kinds == ["flat", "flat"] and [s["kind"] for s in big.store.segments()] == ["hnsw"]
    q = "bravo delta appendix"
    want = brute_force_dense(docs, q)
    hits = big.search(q, k=5, channels=["text"])
    assert hits[0].score == pytest.approx(max(want.values()), abs=1e-5)


def test_deleted_rows_do_not_crowd_out_live_candidates(tmp_path, docs):
    """A segment search asks for depth + the rows deleted since, so ``depth`` live chunks, the best
    live ones, still come back (pages are compared by score: tied chunks may sit on any page)."""
    cfg = IndexConfig(candidates=4)
    ix = build(tmp_path / "ix", docs, cfg=cfg)
    q = "bravo delta appendix"
    top = [h.doc_id for h in ix.search(q, k=4, channels=["text"])]
    gone = list(dict.fromkeys(top[:3]))
    with Index.open(tmp_path / "ix", hash_fields(), cfg, write=True) as w:
        w.delete(gone)
    snap = ix.snapshot()
    qv = ix.encode_query("text", q)
    live = snap.live_ids("text")
    cands = snap._dense_candidates("text", qv, 4, None)
    assert len(cands) == 4 and set(cands) <= set(live.tolist())
    live_scores = np.concatenate([seg.vectors_of(seg.locate(live)[0][seg.locate(live)[1]]) @ qv.reshape(-1)
                                  for seg in snap.segments["text"]])
    got = np.sort(snap._dense_scores("text", qv, cands))[::-1]
    np.testing.assert_allclose(got, np.sort(live_scores)[::-1][:4], atol=1e-6)
    after = ix.search(q, k=4, channels=["text"])
    assert after and not {h.doc_id for h in after} & set(gone)


def test_manifest_records_identity_counts_and_checksums(tmp_path, docs):
    ix = build(tmp_path / "ix", docs)
    m = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert m["format_version"] == 1 and m["commit"] >= 1
    f = m["fields"][0]
    assert f["encoder"] == "test-hash" and f["identity"]["dim"] == 32 and f["identity"]["model"] == "test/hashed-words"
    assert m["counts"] == {"documents": 12, "pages": 24, "chunks": 48}
    for seg in m["segments"]:
        for name, info in seg["checksums"].items():
            assert (tmp_path / "ix" / "segments" / seg["name"] / name).stat().st_size == info["bytes"]
    assert ix.verify() == []
    # no pickle anywhere: every .npy loads with allow_pickle=False
    for p in (tmp_path / "ix").rglob("*.npy"):
        np.load(p, allow_pickle=False)
    vec = next((tmp_path / "ix" / "segments").rglob("vectors.npy"))
    data = bytearray(vec.read_bytes())
    data[-1] ^= 0xFF
    vec.write_bytes(bytes(data))
    assert any("checksum mismatch" in p for p in ix.verify())


def test_other_encoder_or_dim_is_index_mismatch(tmp_path, docs):
    build(tmp_path / "ix", docs[:2])
    before = (tmp_path / "ix" / "manifest.json").read_bytes()
    with pytest.raises(IndexMismatch, match="test-hash"):
        Index.open(tmp_path / "ix", hash_fields(dim=16), IndexConfig())
    with pytest.raises(IndexMismatch):
        Index.open(tmp_path / "ix", hash_fields(dim=16), IndexConfig(), write=True)
    # same config, but the model behind the name now differs: caught when the encoder loads
    ix = Index.open(tmp_path / "ix", hash_fields(), IndexConfig(), encoder_factory=lambda f: HashEncoder(8))
    with pytest.raises(IndexMismatch, match="8-d"):
        ix.search("alpha", k=1)
    assert (tmp_path / "ix" / "manifest.json").read_bytes() == before


def test_missing_index_and_format_version(tmp_path, docs):
    with pytest.raises(IndexNotFound):
        Index.open(tmp_path / "nothing", hash_fields(), IndexConfig())
    assert not (tmp_path / "nothing").exists()
    build(tmp_path / "ix", docs[:1])
    m = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    m["format_version"] = 99
    (tmp_path / "ix" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexMismatch, match="format version 99"):
        Index.open(tmp_path / "ix", hash_fields(), IndexConfig())
    (tmp_path / "ix" / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt):
        Index.open(tmp_path / "ix", hash_fields(), IndexConfig())


def test_one_writer_at_a_time(tmp_path):
    with Index.open(tmp_path / "ix", hash_fields(), IndexConfig(), write=True):
        with pytest.raises(IndexLocked):
            Index.open(tmp_path / "ix", hash_fields(), IndexConfig(), write=True)
    Index.open(tmp_path / "ix", hash_fields(), IndexConfig(), write=True).close()


def test_batches_commit_by_count_and_failed_batch_commits_nothing(tmp_path, docs):
    root = tmp_path / "ix"
    with Index.open(root, hash_fields(), IndexConfig(commit_docs=5), write=True) as ix:
        for d in docs[:7]:
            ix.add(*d)
        assert ix.pending == 2 and int(ix.store.get_meta("commit")) == 1
    with pytest.raises(RuntimeError):
        with Index.open(root, hash_fields(), IndexConfig(), write=True) as ix:
            ix.add(*docs[8])
            raise RuntimeError("crash in the caller")
    r = Index.open(root, hash_fields(), IndexConfig())
    assert sorted(d["doc_id"] for d in r.documents()) == [f"d{i}" for i in range(7)]


def test_page_input_field_indexes_one_vector_per_page(tmp_path, docs):
    from mmrag.config import FieldConfig

    fields = hash_fields() + [FieldConfig(name="page", encoder="test-hash", input="pages", options={"dim": 32})]
    ix = build(tmp_path / "ix", docs, fields=fields)
    segs = {s["field"]: s["count"] for s in ix.store.segments()}
    assert segs == {"text": 48, "page": 24}
    hit = ix.search("report number 7 page 2", k=1, channels=["page"])[0]
    enc = HashEncoder(32)
    page_texts = {(p.doc_id, p.page_number): p.text for d in docs for p in d[1]}
    sims = {k: float(enc.encode_text([t])[0] @ enc.encode_query("report number 7 page 2")[0]) for k, t in page_texts.items()}
    assert hit.score == pytest.approx(max(sims.values()), abs=1e-5)


def test_multivector_field_scores_are_exact_maxsim(tmp_path, docs):
    from mmrag.config import FieldConfig
    from tests.hash_encoder import HashMultiEncoder

    fields = hash_fields() + [FieldConfig(name="tokens", encoder="test-hash-multi", input="chunks", options={"dim": 32})]
    root = tmp_path / "ix"
    build(root, docs[:6], fields=fields)
    with Index.open(root, fields, IndexConfig(), write=True) as ix:  # a second segment, and a delete
        for d in docs[6:]:
            ix.add(*d)
        ix.delete(["d2"])
    ix = Index.open(root, fields, IndexConfig())
    assert {s["kind"] for s in ix.store.segments() if s["field"] == "tokens"} == {"multivector"}
    enc = HashMultiEncoder(32)
    q = "kilo report appendix"
    qm = enc.encode_query(q)
    best: dict = {}
    for c, doc_id in all_chunks([d for d in docs if d[0].doc_id != "d2"]):
        s = float((qm @ enc.encode_text([c.text])[0].T).max(axis=1).sum())
        best[(c.doc_id, c.page_number)] = max(best.get((c.doc_id, c.page_number), -9), s)
    hits = ix.search(q, k=5, channels=["tokens"])
    assert [h.score for h in hits] == pytest.approx(sorted(best.values(), reverse=True)[:5], abs=1e-3)
    assert all(h.doc_id != "d2" for h in ix.search(q, k=30))
    assert set(ix.search(q, k=1)[0].scores) == {"text", "tokens", "bm25"}

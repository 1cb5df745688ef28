"""The Python API over a prebuilt index: query checks, filters, rerank mapping, ask, pages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmrag.api import RAG, rerank_hits
from mmrag.errors import ConfigError, IndexNotFound, QueryError, UploadRejected
from mmrag.rerankers.base import Reranker
from tests.indexes.helpers import build, make_doc, word_doc


def write_config(tmp: Path, **index) -> Path:
    from tests.hash_encoder import register

    register()
    cfg = {"fields": [{"name": "text", "encoder": "test-hash", "input": "chunks", "options": {"dim": 32}}],
           "index": index, "ingest": {"ocr": "never"},
           "generator": {"name": "extractive", "options": {"encoder": None}}}  # lexical only: no model load
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture()
def rag(tmp_path):
    docs = [word_doc(i) for i in range(6)]
    docs.append(make_doc(42, [["The warranty lasts 24 months from the date of purchase."],
                              ["Returns are accepted within 30 days."]], {"kind": "policy"}))
    build(tmp_path / "ix", docs)
    return RAG.from_config(write_config(tmp_path), index=tmp_path / "ix")


def test_search_returns_pages_with_snippets(rag):
    hits = rag.search("how long does the warranty last", k=3)
    assert (hits[0].doc_id, hits[0].page) == ("d42", 1)
    assert hits[0].snippet.startswith("The warranty lasts 24 months")
    assert hits[0].bbox is not None and hits[0].path == "/docs/doc42.pdf"
    assert rag.search("warranty", k=10, filters={"metadata": {"kind": "policy"}, "page": 2})[0].page == 2


@pytest.mark.parametrize("query", ["", "   ", "x" * 100_000])
def test_bad_queries_are_query_errors(rag, query):
    with pytest.raises(QueryError):
        rag.search(query)


def test_missing_index_and_missing_folder(tmp_path):
    with pytest.raises(IndexNotFound):
        RAG.from_config(write_config(tmp_path), index=tmp_path / "none").search("anything")
    assert not (tmp_path / "none").exists()
    with pytest.raises(ConfigError, match="no index folder"):
        RAG.from_config(write_config(tmp_path)).search("anything")


def test_overrides_are_strict(tmp_path):
    r = RAG.from_config(write_config(tmp_path), index=tmp_path, search={"k": 4}, **{"index.fusion": "rrf"})
    assert (r.config.index.fusion, r.config.search.k, r.index_dir) == ("rrf", 4, tmp_path)
    assert r.config.fields[0].encoder == "test-hash"
    with pytest.raises(ConfigError, match="fusoin"):
        RAG.from_config(write_config(tmp_path), **{"index.fusoin": "rrf"})


class ReverseByLength(Reranker):
    """Scores a page by the length of its text: an order the first stage never produces."""

    name = "by-length"

    def score(self, query, candidates):
        return [len(c.text) for c in candidates]


def test_rerank_reorders_first_stage_pages_and_keeps_their_scores(rag):
    first = rag.search("report appendix", k=rag.config.search.rerank_depth, rerank=False)
    got = rag.search("report appendix", k=4, rerank=ReverseByLength())
    want = sorted(first, key=lambda h: -len(h.text))[:4]
    assert [h.page_id for h in got] == [h.page_id for h in want]
    assert [h.score for h in got] == [float(len(h.text)) for h in want]
    by_id = {h.page_id: h.score for h in first}
    assert all(h.scores["first_stage"] == pytest.approx(by_id[h.page_id]) for h in got)


def test_rerank_candidates_carry_page_text_and_metadata(rag):
    seen = []

    class Spy(Reranker):
        def score(self, query, candidates):
            seen.extend(candidates)
            return [c.score for c in candidates]

    hits = rag.search("warranty", k=2, rerank=Spy())
    c = next(c for c in seen if c.id == "d42#1")
    assert c.text.startswith("The warranty") and c.metadata["path"] == "/docs/doc42.pdf"
    assert len(seen) == min(rag.config.search.rerank_depth, 14) and hits[0].page_id == "d42#1"
    assert callable(c.image.image)


def test_ask_answers_with_citations(rag):
    pytest.importorskip("mmrag.generate.extractive")
    answer = rag.ask("How long does the warranty last?")
    assert "24 months" in answer.text
    assert answer.citations and (answer.citations[0].doc_id, answer.citations[0].page) == ("d42", 1)
    assert answer.contexts and answer.contexts[0].page_id == "d42#1"


def test_documents_page_and_delete(rag):
    assert len(rag.documents()) == 7
    page = rag.page("d42", 2)
    assert page.text == "Returns are accepted within 30 days." and page.blocks[0].bbox[0] == 10.0
    with pytest.raises(QueryError):
        rag.page("d42", 9)
    assert rag.delete(["d42", "nope"]) == 1
    assert all(h.doc_id != "d42" for h in rag.search("warranty", k=10))


def test_add_bytes_refuses_bad_uploads(rag):
    with pytest.raises(UploadRejected, match="type"):
        rag.add_bytes(b"MZ...", "tool.exe")
    with pytest.raises(UploadRejected, match="empty"):
        rag.add_bytes(b"", "a.pdf")
    rag.config.ui.max_upload_mb = 0
    with pytest.raises(UploadRejected, match="limit"):
        rag.add_bytes(b"%PDF-1.4", "a.pdf")
    assert not (rag.index_dir / "uploads").exists()


def test_rerank_hits_keeps_every_hit_once(rag):
    hits = rag.search("report", k=8, rerank=False)
    out = rerank_hits(ReverseByLength(), "report", hits, k=8)
    assert sorted(h.page_id for h in out) == sorted(h.page_id for h in hits)

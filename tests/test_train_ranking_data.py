"""Ranking-data loaders on small files: BEIR + BM25 candidates, TREC run + qrels + texts, rank_llm JSON."""

from __future__ import annotations

import json

import pytest

from mmrag.errors import ConfigError
from mmrag.train import ranking_data
from mmrag.train.ranking_types import RankingExample

CORPUS = [
    {"_id": "d1", "title": "Aspirin", "text": "aspirin lowers the risk of heart attack"},
    {"_id": "d2", "title": "", "text": "heart attack symptoms include chest pain"},
    {"_id": "d3", "title": "Vitamin C", "text": "vitamin c does not prevent the common cold"},
    {"_id": "d4", "title": "", "text": "zinc lozenges shorten the common cold"},
    {"_id": "d5", "title": "", "text": "unrelated text about volcanoes"},
]
QUERIES = [
    {"_id": "q1", "text": "does aspirin prevent heart attack"},
    {"_id": "q2", "text": "what shortens the common cold"},
    {"_id": "q3", "text": "a query without positive labels"},
]


def write_beir(folder, qrels_rows):
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in CORPUS) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in QUERIES) + "\n")
    (folder / "qrels").mkdir()
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                                "".join(f"{q}\t{d}\t{g}\n" for q, d, g in qrels_rows))
    return folder


def test_beir_with_bm25_candidates_keeps_bm25_order_labels_and_titles(tmp_path):
    folder = write_beir(tmp_path / "beir", [("q1", "d1", 1), ("q2", "d4", 2), ("q2", "d3", 0), ("q3", "d5", 0)])
    examples = ranking_data.from_beir(folder, "train", candidates="bm25", depth=3, progress=False)
    assert [e.qid for e in examples] == ["q1", "q2"]  # q3 has no positive label
    q1, q2 = examples
    assert isinstance(q1, RankingExample) and q1.query == "does aspirin prevent heart attack"
    assert q1.candidates[0] == ("d1", "Aspirin\naspirin lowers the risk of heart attack")  # title, then text
    assert {d for d, _ in q1.candidates} == {"d1", "d2", "d3"}  # d3 shares "prevent", d2 "heart attack"
    # d4 and d5 share no term: BM25 0, not a candidate
    assert q1.positives() == ["d1"]
    assert q2.candidates[0][0] == "d4" and q2.label("d4") == 2 and q2.label("d3") == 0
    assert len(q2.candidates) <= 3


def test_beir_appends_a_positive_the_first_stage_missed_after_the_candidates(tmp_path):
    folder = write_beir(tmp_path / "beir", [("q1", "d5", 1)])  # volcanoes: BM25 never finds it
    (ex,) = ranking_data.from_beir(folder, "train", candidates="bm25", depth=2, progress=False)
    assert [d for d, _ in ex.candidates][-1] == "d5" and ex.positives() == ["d5"]
    assert [d for d, _ in ex.candidates][0] == "d1" and len(ex.candidates) == 3
    (bare,) = ranking_data.from_beir(folder, "train", candidates="bm25", depth=2, include_positives=False,
                                     progress=False)
    assert "d5" not in [d for d, _ in bare.candidates] and bare.positives() == []


def test_beir_errors_name_the_missing_file_and_bad_choice(tmp_path):
    folder = write_beir(tmp_path / "beir", [("q1", "d1", 1)])
    with pytest.raises(ConfigError, match="qrels/dev.tsv"):
        ranking_data.from_beir(folder, "dev", candidates="bm25")
    with pytest.raises(ConfigError, match="index, bm25"):
        ranking_data.from_beir(folder, "train", candidates="dense")


def test_trec_run_with_tsv_texts_orders_by_score_and_skips_unlabelled_queries(tmp_path):
    (tmp_path / "run.trec").write_text("q1 Q0 d2 1 9.0 bm25\nq1 Q0 d1 2 7.5 bm25\nq1 Q0 d9 3 7.0 bm25\n"
                                       "q2 Q0 d3 1 3.0 bm25\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d1 2\nq1 0 d2 0\nq2 0 d3 0\n")
    (tmp_path / "corpus.tsv").write_text("d1\taspirin text\nd2\theart text\nd3\tcold text\n")
    (tmp_path / "queries.tsv").write_text("q1\tdoes aspirin help\nq2\tcold\n")
    examples = ranking_data.from_trec_run(tmp_path / "run.trec", tmp_path / "qrels.txt", tmp_path / "corpus.tsv",
                                          tmp_path / "queries.tsv")
    assert len(examples) == 1  # q2's only judged document is not relevant
    (ex,) = examples
    assert ex.query == "does aspirin help"
    assert ex.candidates == [("d2", "heart text"), ("d1", "aspirin text")]  # d9 has no text: dropped
    assert ex.label("d1") == 2 and ex.positives() == ["d1"]


def test_trec_run_reads_beir_jsonl_texts_too(tmp_path):
    folder = write_beir(tmp_path / "beir", [("q1", "d1", 1)])
    (tmp_path / "run.trec").write_text("q1 Q0 d2 1 2.0 x\n")
    (ex,) = ranking_data.from_trec_run(tmp_path / "run.trec", folder / "qrels" / "train.tsv",
                                       folder / "corpus.jsonl", folder / "queries.jsonl")
    assert [d for d, _ in ex.candidates] == ["d2", "d1"]  # d1: the missed positive, appended


def test_rank_llm_json_keeps_hit_order_and_qids(tmp_path):
    data = [{"query": "first query", "hits": [
        {"qid": "7", "docid": "b", "content": "passage b", "score": 3.0, "rank": 1},
        {"qid": "7", "docid": "a", "content": "passage a", "score": 2.0, "rank": 2}]},
        {"query": "unjudged", "hits": [{"qid": "8", "docid": "c", "content": "passage c", "score": 1.0}]}]
    (tmp_path / "top.json").write_text(json.dumps(data))
    (tmp_path / "qrels.txt").write_text("7 0 a 3\n7 0 b 0\n")
    (ex,) = ranking_data.from_rank_llm(tmp_path / "top.json", tmp_path / "qrels.txt")
    assert ex.qid == "7" and ex.query == "first query"
    assert ex.candidates == [("b", "passage b"), ("a", "passage a")] and ex.positives() == ["a"]
    (short,) = ranking_data.from_rank_llm(tmp_path / "top.json", tmp_path / "qrels.txt", depth=1)
    assert short.candidates == [("b", "passage b")]


def test_rank_llm_on_the_shared_dl19_file(shared_data):
    folder = shared_data / "trec-dl19-passage-bm25top100"
    examples = ranking_data.from_rank_llm(folder / "bm25_top100_dl19.json", folder / "qrels.dl19-passage.txt")
    assert len(examples) == 43 and all(len(e.candidates) == 100 for e in examples)
    assert sum(len(e.positives()) for e in examples) > 43  # every DL19 query has judged positives


def test_bad_files_raise_config_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "q.txt").write_text("1 0 a 1\n")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ranking_data.from_rank_llm(tmp_path / "bad.json", tmp_path / "q.txt")
    (tmp_path / "c.tsv").write_text("only-an-id\n")
    with pytest.raises(ConfigError, match="id<TAB>text"):
        ranking_data.read_texts(tmp_path / "c.tsv")
    with pytest.raises(ConfigError, match="not found"):
        ranking_data.from_trec_run(tmp_path / "none.trec", tmp_path / "q.txt", tmp_path / "c.tsv", tmp_path / "c.tsv")

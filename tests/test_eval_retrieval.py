"""evaluate_beir on a tiny BEIR folder written here, checked against ir-measures directly."""

from __future__ import annotations

import json

import pytest

from mmrag.config import from_dict
from mmrag.errors import ConfigError
from mmrag.eval.retrieval import evaluate_beir
from tests.hash_encoder import register

DOCS = {
    "d1": ("Solar power", "Photovoltaic panels convert sunlight into electricity for homes."),
    "d2": ("Bees", "Honey bees pollinate crops and produce honey in hives."),
    "d3": ("Trains", "The regional train timetable changes in March for weekend services."),
    "d4": ("Taxes", "Income tax returns are due in April and late filing brings a penalty."),
    "q2": ("Query id clash", "pollinate pollinate bees honey crops hives"),
}
QUERIES = {"q1": "sunlight electricity panels", "q2": "which insects pollinate crops", "q3": "tax penalty late"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d4": 1, "d3": 1}}


@pytest.fixture()
def dataset(tmp_path):
    d = tmp_path / "beir"
    (d / "qrels").mkdir(parents=True)
    (d / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": t, "text": x}) + "\n" for k, (t, x) in DOCS.items()))
    (d / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in QUERIES.items()))
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{doc}\t{g}" for q, r in QRELS.items() for doc, g in r.items()]
    (d / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return d


def config():
    register()
    return from_dict({"fields": [{"name": "text", "encoder": "test-hash", "options": {"dim": 64}}]})


def test_metrics_match_ir_measures_on_the_written_run(dataset, tmp_path):
    import ir_measures

    from mmrag.eval.trec import read_qrels, read_run

    m = evaluate_beir(dataset, config=config(), mode="bm25", out=tmp_path / "out", progress=False,
                      index_dir=tmp_path / "ix")
    run = read_run(tmp_path / "out" / "run.trec")
    assert all("q2" not in docs for q, docs in run.items() if q == "q2")  # a doc equal to the query id is ignored
    assert run["q1"] and max(run["q1"], key=run["q1"].get) == "d1"
    qrels = read_qrels(dataset / "qrels" / "test.tsv")
    want = ir_measures.calc_aggregate([ir_measures.parse_measure("nDCG@10")], qrels, run)
    assert m["nDCG@10"] == pytest.approx(list(want.values())[0])
    assert m["queries"] == 3 and json.loads((tmp_path / "out" / "metrics.json").read_text())["mode"] == "bm25"
    # a second mode reuses the built index (no re-indexing) and answers with the same queries
    m2 = evaluate_beir(dataset, config=config(), mode="hybrid", out=tmp_path / "out2", progress=False,
                       index_dir=tmp_path / "ix")
    assert m2["index_seconds"] < 5 and m2["queries"] == 3 and 0 < m2["nDCG@10"] <= 1


def test_bad_mode_and_missing_files(dataset, tmp_path):
    with pytest.raises(ConfigError, match="mode"):
        evaluate_beir(dataset, config=config(), mode="sparse", progress=False, index_dir=tmp_path / "ix")
    with pytest.raises(Exception, match="qrels/dev.tsv"):
        evaluate_beir(dataset, config=config(), split="dev", progress=False, index_dir=tmp_path / "ix")
    assert not (tmp_path / "ix").exists()


def test_rerank_reorders_only_the_first_depth_hits(dataset, tmp_path):
    """A fusion of the negated first-stage score reverses what it sees: the top 2 swap, the rest stay."""
    from mmrag.eval.trec import read_run

    plain = evaluate_beir(dataset, config=config(), mode="hybrid", out=tmp_path / "a", progress=False,
                          index_dir=tmp_path / "ix")
    register()
    cfg = from_dict({"fields": [{"name": "text", "encoder": "test-hash", "options": {"dim": 64}}],
                     "reranker": {"name": "fusion", "options": {"rerankers": [], "first_stage_weight": -1.0}}})
    reranked = evaluate_beir(dataset, config=cfg, mode="hybrid", out=tmp_path / "b", progress=False,
                             index_dir=tmp_path / "ix", rerank="fusion", rerank_depth=2)
    before, after = read_run(tmp_path / "a" / "run.trec"), read_run(tmp_path / "b" / "run.trec")
    swapped = 0
    for q in before:
        old = sorted(before[q], key=lambda d: -before[q][d])
        new = sorted(after[q], key=lambda d: -after[q][d])
        assert new == (old[:2][::-1] + old[2:] if len(old) >= 2 else old), q
        swapped += len(old) >= 2
    assert swapped and reranked["reranker"] == "fusion" and reranked["rerank_depth"] == 2 and "reranker" not in plain


def test_training_candidates_come_from_the_same_index(dataset, tmp_path):
    from mmrag.train.ranking_data import from_beir

    examples = from_beir(dataset, "test", candidates="index", depth=3, config=config(), progress=False)
    assert [e.qid for e in examples] == ["q1", "q2", "q3"]
    q1 = examples[0]
    assert q1.candidates[0][0] == "d1" and len(q1.candidates) == 3 and q1.positives() == ["d1"]
    assert all(d != e.qid for e in examples for d, _ in e.candidates)  # a doc with the query's id is skipped

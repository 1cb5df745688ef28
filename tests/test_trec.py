"""Metrics go through ir-measures with trec_eval semantics; formats round-trip."""

from __future__ import annotations

import math
from pathlib import Path

from mmrag.eval.trec import evaluate, read_qrels, read_run, run_from_rankings, write_run
from tests.conftest import shared_path


def test_ndcg_linear_gain_matches_hand_computation(tmp_path: Path) -> None:
    qrels_file = tmp_path / "qrels.txt"
    qrels_file.write_text("q1 0 a 3\nq1 0 b 1\nq1 0 c 0\nq2 0 x 1\n")
    qrels = read_qrels(qrels_file)
    run = run_from_rankings({"q1": ["c", "b", "a"], "q2": ["y", "x"], "q9": ["z"]})
    got = evaluate(qrels, run, ["nDCG@10"])["nDCG@10"]
    dcg1 = 0 / math.log2(2) + 1 / math.log2(3) + 3 / math.log2(4)
    idcg1 = 3 / math.log2(2) + 1 / math.log2(3)
    dcg2, idcg2 = 1 / math.log2(3), 1.0
    assert abs(got - (dcg1 / idcg1 + dcg2 / idcg2) / 2) < 1e-9  # q9 (no qrels) ignored


def test_judged_query_missing_from_run_counts_zero(tmp_path: Path) -> None:
    f = tmp_path / "q.tsv"
    f.write_text("query-id\tcorpus-id\tscore\nq1\ta\t1\nq2\tb\t1\n")
    qrels = read_qrels(f)
    assert evaluate(qrels, {"q1": {"a": 1.0}}, ["R@10"])["R@10"] == 0.5


def test_run_round_trip(tmp_path: Path) -> None:
    run = {"q": {"a": 0.5, "b": 2.0, "c": -1.0}}
    write_run(run, tmp_path / "r.trec")
    assert read_run(tmp_path / "r.trec") == run
    lines = (tmp_path / "r.trec").read_text().split("\n")
    assert lines[0].split()[2] == "b" and lines[0].split()[3] == "1"


def test_dl19_bm25_reference_number() -> None:
    d = shared_path("trec-dl19-passage-bm25top100")
    m = evaluate(read_qrels(d / "qrels.dl19-passage.txt"), read_run(d / "run.bm25.dl19.trec"), ["nDCG@10"])
    assert abs(m["nDCG@10"] - 0.5058) < 5e-4

"""``mmrag train reranker``: help teaches methods, inputs and outputs; errors are clear; a run trains
a cross-encoder whose folder the ``cross-encoder`` reranker loads."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.train.methods import METHODS

runner = CliRunner()


def test_help_lists_every_method_and_the_inputs_and_outputs():
    result = runner.invoke(app, ["train", "reranker", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in METHODS:
        assert name in result.output
    for words in ("--beir", "--run", "--rank-llm", "--qrels", "--corpus", "--synthetic-docs", "model:",
                  "reranker cross-encoder", "train_report.json"):
        assert words in result.output, words


def test_exactly_one_input_and_known_method(tmp_path):
    r = runner.invoke(app, ["train", "reranker", "--method", "cross-encoder", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "exactly one input" in r.output
    r = runner.invoke(app, ["train", "reranker", "--method", "nope", "--out", str(tmp_path / "o"),
                            "--rank-llm", "x.json", "--qrels", "q.txt"])
    assert r.exit_code == 2 and "cross-encoder" in r.output
    r = runner.invoke(app, ["train", "reranker", "--method", "cross-encoder", "--out", str(tmp_path / "o"),
                            "--rank-llm", "x.json"])
    assert r.exit_code == 2 and "--qrels" in r.output
    r = runner.invoke(app, ["train", "reranker", "--method", "cross-encoder", "--out", str(tmp_path / "o"),
                            "--rank-llm", "x.json", "--qrels", "q.txt", "--options", "[1]"])
    assert r.exit_code == 2 and "JSON object" in r.output


def test_a_missing_method_module_or_package_is_an_error_with_the_pip_command(tmp_path, monkeypatch):
    (tmp_path / "needs_pkg_mmrag_test.py").write_text("import not_a_real_package_xyz\n\ndef train(e, o, p):\n    return {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(METHODS, "gone", ("mmrag.train.gone_for_the_test", "nothing"))
    monkeypatch.setitem(METHODS, "needy", ("needs_pkg_mmrag_test", "nothing"))
    common = ["--out", str(tmp_path / "o"), "--rank-llm", "x.json", "--qrels", "q.txt"]
    r = runner.invoke(app, ["train", "reranker", "--method", "gone", *common])
    assert r.exit_code == 2 and "pip install" in r.output and "mmrag.train.gone_for_the_test" in r.output
    r = runner.invoke(app, ["train", "reranker", "--method", "needy", *common])
    assert r.exit_code == 2 and "pip install not-a-real-package-xyz" in r.output
    sys.modules.pop("needs_pkg_mmrag_test", None)


def test_synthetic_docs_belong_to_the_cross_encoder(tmp_path):
    r = runner.invoke(app, ["train", "reranker", "--method", "first", "--synthetic-docs", "--out", str(tmp_path),
                            "--rank-llm", "x.json", "--qrels", "q.txt"])
    assert r.exit_code == 2 and "--method cross-encoder" in r.output


@pytest.mark.slow  # 74 s on a heavily loaded 2-core machine: builds a tiny BERT, trains 3 steps via the CLI
def test_train_cross_encoder_from_rank_llm_json_and_rerank_with_it(tmp_path):
    from mmrag.rerankers import load
    from mmrag.types import Candidate
    from tests.tiny import tiny_sentence_transformer

    bert = tiny_sentence_transformer(tmp_path / "tiny", "mean").parent / "bert"
    data = [{"query": f"query {q}", "hits": [{"qid": str(q), "docid": f"{q}-{d}", "content": f"passage {d} of {q}",
                                              "score": 10.0 - d} for d in range(6)]} for q in range(4)]
    (tmp_path / "top.json").write_text(json.dumps(data))
    (tmp_path / "qrels.txt").write_text("".join(f"{q} 0 {q}-2 1\n" for q in range(4)))
    out = tmp_path / "model"
    r = runner.invoke(app, ["train", "reranker", "--method", "cross-encoder", "--rank-llm", str(tmp_path / "top.json"),
                            "--qrels", str(tmp_path / "qrels.txt"), "--model", str(bert), "--max-steps", "3",
                            "--batch-size", "4", "--out", str(out), "--options", '{"negatives": 2}', "--json", "-q"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["queries"] == 4 and summary["rows"] == 4 * (1 + 2 + 1)  # + 1 easy negative
    assert json.loads((out / "train_report.json").read_text())["backbone"] == str(bert)
    reranker = load("cross-encoder", model=str(out), device="cpu")
    ranked = reranker.rerank("query 0", [Candidate("a", "passage 1 of 0"), Candidate("b", "passage 2 of 0")])
    assert sorted(s.candidate.id for s in ranked) == ["a", "b"]

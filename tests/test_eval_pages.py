"""``mmrag eval pages``: answer-string matching, and recall on a small PDF set the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mmrag.errors import IndexNotFound
from mmrag.eval.pages import answer_items, answer_recall, evaluate_pages
from mmrag.rerankers.base import Reranker

PAGES = {  # file → page texts; each page is about one thing
    "alpha.pdf": ["Glaciers in the Alps lost a tenth of their ice volume in 2022.",
                  "The alpine marmot hibernates for six months in burrows.",
                  "Cable cars carry 1,200 skiers per hour up the north face."],
    "beta.pdf": ["Quarterly revenue rose to 4.1 billion dollars on strong cloud sales.",
                 "Operating margin narrowed because of marmot-themed marketing costs.",
                 "The board approved a dividend of 0.42 dollars per share."],
    "gamma.pdf": ["Volcanic ash grounded flights across northern Europe for a week.",
                  "Seismographs recorded two thousand small earthquakes before the eruption."],
}
QUESTIONS = [  # qid, doc, question, answer, evidence pages (1-based)
    ("q1", "alpha.pdf", "How much ice volume did glaciers in the Alps lose in 2022?", "a tenth", [1]),
    ("q2", "alpha.pdf", "How long does the alpine marmot hibernate?", "six months", [2]),
    ("q3", "beta.pdf", "What dividend per share did the board approve?", "0.42 dollars", [3]),
    ("q4", "beta.pdf", "Why did operating margin narrow, and what was quarterly revenue?", "['4.1 billion', 'marketing']",
     [1, 2]),
    ("q5", "gamma.pdf", "How many earthquakes did seismographs record before the eruption?", "two thousand", [2]),
    ("q6", "gamma.pdf", "What is the dividend of the volcano company?", "Not answerable", []),
]


def write_dataset(root: Path) -> Path:
    import pymupdf

    docs = root / "documents"
    docs.mkdir(parents=True)
    for name, texts in PAGES.items():
        pdf = pymupdf.open()
        for text in texts:
            page = pdf.new_page()
            page.insert_textbox(pymupdf.Rect(72, 72, 540, 300), text, fontsize=12)
        pdf.save(docs / name)
    with open(root / "questions.jsonl", "w") as f:
        for qid, doc, question, answer, _ in QUESTIONS:
            f.write(json.dumps({"qid": qid, "doc_id": doc, "question": question, "answer": answer}) + "\n")
    with open(root / "qrels_pages.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, doc, _, _, pages in QUESTIONS:
            for p in pages:
                f.write(f"{qid}\t{doc}#{p}\t1\n")
    return root


def write_config(root: Path) -> Path:
    from tests.hash_encoder import register

    register()
    cfg = {"fields": [{"name": "text", "encoder": "test-hash", "input": "chunks", "options": {"dim": 64}}],
           "ingest": {"ocr": "never"}, "generator": {"name": "extractive", "options": {"encoder": None}},
           "ask": {"contexts": 2}}
    path = root / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def recall_by_hand(run_file: Path, k: int) -> dict[str, float]:
    """Recall@k per judged question, computed from run.trec and the table above (no ir-measures)."""
    ranked: dict[str, list[tuple[int, str]]] = {}
    for line in run_file.read_text().splitlines():
        qid, _, doc, rank, _, _ = line.split()
        ranked.setdefault(qid, []).append((int(rank), doc))
    out = {}
    for qid, doc, _, _, pages in QUESTIONS:
        if pages:
            top = [d for _, d in sorted(ranked.get(qid, []))[:k]]
            out[qid] = sum(f"{doc}#{p}" in top for p in pages) / len(pages)
    return out


@pytest.mark.parametrize(
    ("gold", "generated", "want"),
    [
        ("six months", "It hibernates for Six Months.", 1.0),
        ("1,200", "carry 1200 skiers", 1.0),
        ("7", "about 17 percent", 0.0),  # whole words only
        ("4.1", "rose to 4.1 billion", 1.0),
        ("4.1", "rose to 4.15 billion", 0.0),
        ("18.29%", "18.29% of voters", 1.0),
        ("7", "rose 7% to $4.1", 1.0),
        ("$4.1", "rose 7% to 4.1", 1.0),
        ("['a tenth', 'marmot']", "a tenth of the ice", 0.5),
        ("[]", "anything", 0.0),
    ],
)
def test_answer_recall_table(gold: str, generated: str, want: float) -> None:
    assert answer_recall(gold, generated) == want


def test_answer_items_reads_list_answers() -> None:
    assert answer_items("['Democrats', 'Republicans']") == ["Democrats", "Republicans"]
    assert answer_items("[not a list") == ["[not a list"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The dataset, its config and an index folder shared by the tests below (built on first use)."""
    root = tmp_path_factory.mktemp("pages")
    return write_dataset(root / "data"), write_config(root), root / "ix"


def test_page_recall_matches_a_hand_computation(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, cfg, ix = built
    out = tmp_path / "out"
    m = evaluate_pages(data, config=cfg, scope="document", index_dir=ix, out=out, progress=False, answer=True)
    assert m["questions"] == 5  # q6 has no evidence page
    for k in (1, 3, 5):
        by_hand = recall_by_hand(out / "run.trec", k)
        assert m[f"R@{k}"] == pytest.approx(sum(by_hand.values()) / len(by_hand))
    assert m["R@1"] >= 0.8 and m["R@5"] == 1.0  # distinct pages: the search finds them
    # document scope: every ranked page belongs to the question's own document
    for line in (out / "run.trec").read_text().splitlines():
        qid, _, page_id, *_ = line.split()
        assert page_id.split("#")[0] == dict((q[0], q[1]) for q in QUESTIONS)[qid]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["R@3"] == m["R@3"]
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 6 and m["answerable_questions"] == 5 and m["unanswerable_questions"] == 1
    assert m["answer_recall"] == pytest.approx(sum(a["recall"] for a in answers if a["answerable_gold"]) / 5)
    assert next(a for a in answers if a["qid"] == "q2")["recall"] == 1.0  # "six months" is in the sentence


def test_corpus_scope_ranks_pages_of_every_document(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, cfg, ix = built
    out = tmp_path / "out"
    m = evaluate_pages(data, config=cfg, scope="corpus", index_dir=ix, out=out, progress=False, limit=2)
    assert m["questions"] == 2
    docs = {line.split()[2].split("#")[0] for line in (out / "run.trec").read_text().splitlines()}
    assert len(docs) > 1
    again = evaluate_pages(data, config=cfg, scope="corpus", index_dir=ix, out=tmp_path / "again", progress=False,
                           limit=2, build=False)  # search the index as it is: same ranking
    assert (tmp_path / "again" / "run.trec").read_text() == (out / "run.trec").read_text()
    assert again["R@5"] == m["R@5"]


class ReverseReranker(Reranker):
    """Puts the first stage's order upside down: an order no search produces by itself."""

    name = "test-reverse"

    def score(self, query, candidates):
        return [float(i) for i in range(len(candidates))]


def test_the_presets_reranker_applies_unless_rerank_none(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from mmrag.config import load_config
    from mmrag.rerankers import REGISTRY
    from mmrag.registry import Backend

    REGISTRY.register(Backend("test-reverse", "tests.test_eval_pages:ReverseReranker", "reverse (tests only)"))
    data, cfg_path, ix = built
    cfg = load_config(cfg_path, {"reranker": {"name": "test-reverse"}, "search": {"rerank_depth": 3}})

    def ranking(rerank: str | None, out: str) -> list[str]:
        m = evaluate_pages(data, config=cfg, index_dir=ix, out=tmp_path / out, progress=False, limit=1,
                           rerank=rerank, build=False)
        assert m["rerank"] == (rerank or "test-reverse")
        return [line.split()[2] for line in (tmp_path / out / "run.trec").read_text().splitlines()]

    first = ranking("none", "first")
    assert ranking(None, "preset") == first[:3][::-1]  # the preset's reranker saw the top 3


def test_missing_dataset_parts_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "documents").mkdir()
    with pytest.raises(IndexNotFound, match="questions.jsonl"):
        evaluate_pages(tmp_path, config=write_config(tmp_path), progress=False)


def test_cli_prints_the_metrics_as_json(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mmrag.cli import app

    data, cfg, ix = built
    res = CliRunner().invoke(app, ["eval", "pages", "--dataset", str(data), "--config", str(cfg),
                                   "--index", str(ix), "--out", str(tmp_path), "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    assert {"R@1", "R@3", "R@5", "hit@1", "hit@5", "questions", "seconds"} <= set(metrics)
    bad = CliRunner().invoke(app, ["eval", "pages", "--dataset", str(tmp_path / "nope"), "--json"])
    assert bad.exit_code == 2

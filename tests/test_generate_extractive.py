"""The extractive generator on hand-made pages: which sentence it picks, what it cites, when it abstains."""

from __future__ import annotations

import math

import pytest

from mmrag.errors import ConfigError
from mmrag.generate import load
from mmrag.generate.base import NO_ANSWER
from mmrag.generate.extractive import ExtractiveGenerator, lexical_scores, split_sentences, table_rows
from mmrag.types import Block, Hit

TITLE_BOX = (72.0, 60.0, 540.0, 90.0)
BODY_BOX = (72.0, 100.0, 540.0, 300.0)
TABLE_BOX = (72.0, 320.0, 540.0, 420.0)


def _page(doc: str, page: int, blocks: list[Block], score: float = 1.0) -> Hit:
    return Hit(doc_id=doc, path=f"/docs/{doc}.pdf", page=page, score=score,
               text="\n".join(b.text for b in blocks), blocks=blocks)


def _hits() -> list[Hit]:
    p3 = _page("report", 3, [
        Block("Survey methods", TITLE_BOX, "title"),
        Block("The survey was fielded in March 2018 among 1,503 adults. "
              "Interviews were conducted in English and Spanish by landline and cell phone. "
              "The margin of sampling error is 2.9 percentage points.", BODY_BOX),
        Block("| Group | Share |\n|---|---|\n| Democrats | 31% |\n| Republicans | 26% |\n| Independents | 38% |",
              TABLE_BOX, "table"),
    ])
    p7 = _page("report", 7, [
        Block("Independents who lean toward a party are in general agreement with partisans on many issues. "
              "Only a small share of Americans, about 7%, declined to lean toward a party.", BODY_BOX),
    ], score=0.5)
    return [p3, p7]


def test_picks_the_sentence_that_answers_and_cites_its_block() -> None:
    gen = ExtractiveGenerator(encoder=None, max_sentences=1)
    ans = gen.answer("What is the margin of sampling error of the survey?", _hits())
    assert ans.answerable
    assert ans.text == "The margin of sampling error is 2.9 percentage points."
    assert [(c.doc_id, c.page, c.bbox) for c in ans.citations] == [("report", 3, BODY_BOX)]
    assert ans.citations[0].path == "/docs/report.pdf"
    assert 0 < ans.confidence <= 1


def test_answer_from_a_lower_ranked_page_cites_that_page() -> None:
    gen = ExtractiveGenerator(encoder=None, max_sentences=1)
    ans = gen.answer("What share of Americans declined to lean toward a party?", _hits())
    assert "about 7%" in ans.text
    assert [(c.page, c.bbox) for c in ans.citations] == [(7, BODY_BOX)]


def test_table_row_is_found_with_its_header_and_the_table_box() -> None:
    gen = ExtractiveGenerator(encoder=None, max_sentences=1)
    ans = gen.answer("What share are independents?", _hits())
    assert ans.text == "| Independents | 38% |"
    assert ans.citations[0].bbox == TABLE_BOX


def test_unrelated_question_gets_no_answer_and_no_citation() -> None:
    gen = ExtractiveGenerator(encoder=None)
    ans = gen.answer("Which volcano erupted on Iceland's glacier?", _hits())
    assert ans.text == NO_ANSWER
    assert not ans.answerable and ans.citations == []
    assert ans.contexts == _hits()


def test_no_contexts_is_no_answer() -> None:
    ans = ExtractiveGenerator(encoder=None).answer("anything at all?", [])
    assert ans.text == NO_ANSWER and not ans.answerable


def test_several_sentences_come_back_in_reading_order_with_one_citation_per_block() -> None:
    gen = ExtractiveGenerator(encoder=None, max_sentences=3, relative=0.0, min_confidence=0.0)
    ans = gen.answer("survey interviews conducted March adults", _hits())
    pos = [ans.text.find(s) for s in ("The survey was fielded", "Interviews were conducted")]
    assert -1 not in pos and pos == sorted(pos)
    keys = [(c.doc_id, c.page, c.bbox) for c in ans.citations]
    assert len(keys) == len(set(keys))


def test_page_without_layout_falls_back_to_its_text_and_box() -> None:
    hit = Hit("d", "/d.pdf", 2, 1.0, text="Revenue grew 12% in 2021. Costs fell.", bbox=(1.0, 2.0, 3.0, 4.0))
    ans = ExtractiveGenerator(encoder=None, max_sentences=1).answer("How much did revenue grow in 2021?", [hit])
    assert ans.text == "Revenue grew 12% in 2021."
    assert ans.citations[0].bbox == (1.0, 2.0, 3.0, 4.0)


def test_lexical_scores_match_a_hand_computed_bm25() -> None:
    docs = [["margin", "error"], ["margin"], ["cat", "dog", "bird"]]
    k1, b = 1.2, 0.5
    got = lexical_scores(["margin", "error", "absent"], docs, k1=k1, b=b)
    n, avg = 3, 2.0
    idf = {t: math.log(1 + (n + 1) / (df + 0.5)) for t, df in (("margin", 2), ("error", 1), ("absent", 0))}

    def bm25(terms: list[str]) -> float:
        norm = k1 * (1 - b + b * len(terms) / avg)
        return sum(idf[t] * (k1 + 1) / (1 + norm) for t in ("margin", "error") if t in terms)

    total = sum(idf.values())
    want = [min(bm25(d) / total, 1.0) for d in docs]
    assert got == pytest.approx(want)
    assert got[2] == 0.0 and got[0] > got[1] > 0


def test_sentence_splitter_keeps_numbers_and_abbreviations_together() -> None:
    text = "Sales rose 3.5 percent in 2020, e.g. in Europe. Profit was $1.2 million! Why? Because.\n\nNew para"
    assert split_sentences(text) == ["Sales rose 3.5 percent in 2020, e.g. in Europe.", "Profit was $1.2 million!",
                                     "Why?", "Because.", "New para"]


def test_table_rows_skip_the_rule_and_carry_the_header() -> None:
    rows = table_rows("| a | b |\n|---|---|\n| 1 | 2 |")
    assert rows == [("| a | b |", ""), ("| 1 | 2 |", "| a | b |")]


def test_dense_scores_come_from_the_encoder_it_is_given() -> None:
    """With dense_weight 1 the ranking is the encoder's cosine order, lexical overlap ignored."""
    import numpy as np

    class Axis:
        """Embeds a text on one axis per keyword: cosine 1 with a query that names the same keyword."""

        def encode_text(self, texts: list[str]) -> np.ndarray:
            vecs = np.array([[("telephone" in t) + ("phone" in t) * 0.0, ("Spanish" in t) * 1.0, 0.1]
                             for t in texts], dtype="float32")
            vecs[0] = [0.0, 1.0, 0.0]  # the query points at the "Spanish" axis
            return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    gen = ExtractiveGenerator(encoder=Axis(), dense_weight=1.0, max_sentences=1, min_confidence=0.0)
    ans = gen.answer("margin of sampling error", _hits())  # lexically about the margin sentence
    assert ans.text.startswith("Interviews were conducted in English and Spanish")


def test_registry_loads_it_and_rejects_unknown_options() -> None:
    assert isinstance(load("extractive", encoder=None), ExtractiveGenerator)
    with pytest.raises(ConfigError, match="no option 'temperature'"):
        load("extractive", temperature=0.3)


@pytest.mark.slow
def test_minilm_finds_a_paraphrased_answer() -> None:
    pytest.importorskip("sentence_transformers")
    gen = ExtractiveGenerator(encoder="minilm", max_sentences=1, dense_weight=0.7)
    ans = gen.answer("Which languages were the interviews done in?", _hits())
    assert ans.text.startswith("Interviews were conducted in English and Spanish")
    assert ans.citations[0].bbox == BODY_BOX

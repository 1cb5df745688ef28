"""Model-free parts of the VLM stage: MM-R5 answer parsing, citation parsing and mapping,
Yes/No from log-probs, the adaptive threshold, and the OpenAI wire format."""

from __future__ import annotations

import base64
import io
import math

import pytest
from PIL import Image

from mmrag.generate.citations import best_block, cite, claim_for, parse_citations, reference
from mmrag.generate.openai_compatible import fit_pixels, to_openai_messages, yes_probability_from_top
from mmrag.generate.qwen_vl import is_refusal
from mmrag.rerankers.mm_r5 import parse_ranking
from mmrag.types import Block, Hit
from mmrag.vlm import image_part, text_part, trim

# --- MM-R5: "<answer>[...]</answer>" → 0-based permutation, or None (keep input order) -------
RANKINGS = [
    ("<think>x</think><answer>[3, 1, 2]</answer>", 3, [2, 0, 1]),
    ("<answer>[2]</answer>", 4, [1, 0, 2, 3]),  # missing ids follow in input order
    ("<answer>[2, 2, 1, 2]</answer>", 3, [1, 0, 2]),  # duplicates dropped
    ("<answer>[0, 9, 2, -1]</answer>", 3, [1, 0, 2]),  # out of range (0 and -1 are not ids)
    ("<answer>[Image 3, image 1]</answer>", 3, [2, 0, 1]),
    ("<answer>['2', \"1\"]</answer>", 2, [1, 0]),
    ("<answer>[]</answer>", 3, [0, 1, 2]),
    ("<answer>[1, 2]</answer> ... <answer>[2, 1]</answer>", 2, [1, 0]),  # the last answer counts
    ("<ANSWER> [3,1,2] </ANSWER>", 3, [2, 0, 1]),
    ("<answer>[1,\n 3,\n 2]</answer>", 3, [0, 2, 1]),
    ("<answer>[2, 1, ]</answer>", 2, [1, 0]),  # trailing comma
]
UNREADABLE = [
    "",
    "no tags at all [1, 2]",
    "<answer>2, 1</answer>",  # no list
    "<answer>[2, 1</answer>",  # unclosed list
    "<answer>[two, one]</answer>",
    "<answer>[1.5, 2]</answer>",
    "<answer>[1, 2]",  # unclosed tag
    "<think>[1, 2]</think>",
]


@pytest.mark.parametrize("text,n,expected", RANKINGS)
def test_mm_r5_parser_reads_and_repairs(text: str, n: int, expected: list[int]) -> None:
    assert parse_ranking(text, n) == expected


@pytest.mark.parametrize("text", UNREADABLE)
def test_mm_r5_parser_refuses_unreadable_answers(text: str) -> None:
    assert parse_ranking(text, 3) is None


def test_mm_r5_parser_always_returns_a_permutation() -> None:
    for text, n, _ in RANKINGS:
        assert sorted(parse_ranking(text, n)) == list(range(n))


# --- citations ------------------------------------------------------------------------------
def _hits() -> list[Hit]:
    rev = Block("Net revenue rose to 5.2 million dollars in 2023.", (50.0, 100.0, 300.0, 120.0))
    ceo = Block("Jane Doe was appointed chief executive officer.", (50.0, 200.0, 300.0, 220.0))
    table = Block("Table 2: headcount by region, Europe 120, Asia 80.", (40.0, 400.0, 500.0, 600.0), "table")
    return [
        Hit("d" * 64, "/data/report.pdf", 2, 0.9, blocks=[rev, ceo], bbox=(1.0, 2.0, 3.0, 4.0)),
        Hit("e" * 64, "/data/annex.pdf", 7, 0.8, blocks=[table]),
    ]


CITATION_TEXTS = [
    ("Revenue was 5.2 million [report.pdf p.2].", [("report.pdf", 2)]),
    ("x [report.pdf, p. 2] y", [("report.pdf", 2)]),
    ("x [report p.2; annex.pdf p.7]", [("report", 2), ("annex.pdf", 7)]),
    ("x [report.pdf pp. 2-4]", [("report.pdf", 2), ("report.pdf", 3), ("report.pdf", 4)]),
    ("x [report.pdf p.2, 5]", [("report.pdf", 2), ("report.pdf", 5)]),
    ("x [p.7]", [("", 7)]),
    ("x [report.pdf page 2]", [("report.pdf", 2)]),
    ("x [1] and [see appendix] and [report.pdf] and [[", []),  # no page: not a citation
    ("x [report.pdf p.2-900]", [("report.pdf", 2)]),  # absurd range: first page only
    ("", []),
]


@pytest.mark.parametrize("text,expected", CITATION_TEXTS)
def test_citation_parser(text: str, expected: list[tuple[str, int]]) -> None:
    assert [(m.doc, m.page) for m in parse_citations(text)] == expected


def test_citations_map_to_the_block_that_supports_each_sentence() -> None:
    hits = _hits()
    text = (f"Net revenue reached 5.2 million in 2023 {reference(hits[0])}. The chief executive is "
            f"Jane Doe [report.pdf p.2]. Europe has 120 staff [annex p.7].")
    cites = cite(text, hits)
    assert [(c.doc_id, c.path, c.page, c.bbox) for c in cites] == [
        ("d" * 64, "/data/report.pdf", 2, (50.0, 100.0, 300.0, 120.0)),
        ("d" * 64, "/data/report.pdf", 2, (50.0, 200.0, 300.0, 220.0)),
        ("e" * 64, "/data/annex.pdf", 7, (40.0, 400.0, 500.0, 600.0)),
    ]


def test_citations_to_unseen_pages_are_dropped_and_garbled_names_resolved_by_page() -> None:
    hits = _hits()
    cites = cite("A [report.pdf p.9]. Europe 120 [anex.pfd p.7]. B [other.pdf p.2]", hits)
    # p.9 was never shown; "anex.pfd" is garbled but p.7 exists once; "other.pdf p.2" resolves to
    # the only page 2 shown (report.pdf)
    assert [(c.path, c.page) for c in cites] == [("/data/annex.pdf", 7), ("/data/report.pdf", 2)]


def test_uncovered_claim_falls_back_to_the_snippet_box_then_none() -> None:
    hits = _hits()
    (c,) = cite("Zebra quantum [report.pdf p.2].", hits)
    assert c.bbox == (1.0, 2.0, 3.0, 4.0)
    (c,) = cite("Zebra quantum [annex.pdf p.7].", hits)
    assert c.bbox is None


def test_claim_is_the_sentence_before_the_citation_or_after_it() -> None:
    text = "First fact. Second fact here [a p.1]. [a p.2] Third fact."
    marks = parse_citations(text)
    assert claim_for(text, marks[0]) == "Second fact here"
    assert claim_for(text, marks[1]) == "Third fact"


def test_best_block_prefers_more_shared_words_then_the_tighter_block() -> None:
    wide = Block("revenue 2023 and many other unrelated words about the company", (0, 0, 9, 9))
    tight = Block("revenue 2023", (1, 1, 2, 2))
    assert best_block("revenue in 2023", [wide, tight]) is tight
    assert best_block("nothing shared", [wide, tight]) is None


def test_refusal_detection() -> None:
    assert is_refusal("The documents do not contain the answer.")
    assert is_refusal("The pages do not provide this information.")
    assert not is_refusal("Revenue was 5 million [a p.1].")
    assert not is_refusal("")


# --- Yes/No from top log-probs ----------------------------------------------------------------
def test_yes_probability_from_logprobs_equals_the_two_way_softmax() -> None:
    top = [{"token": "Yes", "logprob": -0.3}, {"token": " No", "logprob": -1.7}, {"token": "Maybe", "logprob": -3.0}]
    expected = math.exp(-0.3) / (math.exp(-0.3) + math.exp(-1.7))
    assert yes_probability_from_top(top) == pytest.approx(expected, abs=1e-12)
    # the exact token wins over a spaced variant
    top2 = [{"token": " Yes", "logprob": -0.1}, {"token": "Yes", "logprob": -2.0}, {"token": "No", "logprob": -2.0}]
    assert yes_probability_from_top(top2) == pytest.approx(0.5)


def test_yes_probability_when_a_word_is_missing_from_the_top_list() -> None:
    top = [{"token": "Yes", "logprob": -0.1}, {"token": "Sure", "logprob": -2.5}, {"token": "Ok", "logprob": -4.0}]
    # "No" is at most as likely as the least likely listed token
    expected = math.exp(-0.1) / (math.exp(-0.1) + math.exp(-4.0))
    assert yes_probability_from_top(top) == pytest.approx(expected)
    assert yes_probability_from_top([{"token": "Hmm", "logprob": -0.1}]) == 0.0


# --- OpenAI wire format -----------------------------------------------------------------------
def test_openai_messages_carry_images_in_order_as_png_data_urls() -> None:
    red, blue = Image.new("RGB", (56, 84), (255, 0, 0)), Image.new("RGB", (2000, 1000), (0, 0, 255))
    msgs = [{"role": "system", "content": [text_part("sys")]},
            {"role": "user", "content": [text_part("a"), image_part(red, 28 * 28, 28 * 28 * 16),
                                         text_part("b"), image_part(blue, 28 * 28, 100_000)]}]
    out = to_openai_messages(msgs)
    assert out[0] == {"role": "system", "content": "sys"}  # text only: one string, as every server takes it
    kinds = [p["type"] for p in out[1]["content"]]
    assert kinds == ["text", "image_url", "text", "image_url"]
    decoded = []
    for part in out[1]["content"][1::2]:
        url = part["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        decoded.append(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
    assert decoded[0].size == (56, 84) and list(decoded[0].getdata()) == list(red.getdata())  # lossless
    w, h = decoded[1].size
    assert w * h <= 100_000 and abs(w / h - 2.0) < 0.02 and decoded[1].getpixel((5, 5)) == (0, 0, 255)


def test_fit_pixels_scales_up_small_images_and_keeps_fitting_ones() -> None:
    img = Image.new("RGB", (10, 20))
    assert fit_pixels(img, 100, 1000) is img
    up = fit_pixels(img, 800, 10_000)
    assert up.size[0] * up.size[1] >= 760 and up.size[1] == 2 * up.size[0]


def test_trim_cuts_at_a_word_and_collapses_whitespace() -> None:
    assert trim("a  b\n\nc", 10) == "a b c"
    assert trim("alpha beta gamma delta", 12) == "alpha beta ..."
    assert trim("alpha beta gamma delta", 10) == "alpha beta ..."  # a cut on a space keeps the word


def test_vlm_modules_import_without_the_ml_stack() -> None:
    """A client of an OpenAI-compatible server needs neither torch nor transformers."""
    import subprocess
    import sys

    code = ("import sys, mmrag.generate.openai_compatible, mmrag.rerankers.mm_r5, mmrag.rerankers.ragllava; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_text_only_messages_for_a_text_llm_server_carry_references_and_layout_text() -> None:
    from mmrag.generate.openai_compatible import OpenAICompatibleGenerator

    gen = OpenAICompatibleGenerator(base_url="http://127.0.0.1:9/v1", images=False, text_chars=31)
    hits = _hits()
    hits[0].text = "Net revenue rose to 5.2 million dollars in 2023, driven by exports."
    msgs = gen.messages("What was revenue?", hits)  # no page is rendered: the PDFs do not exist
    parts = msgs[1]["content"]
    assert all(p["type"] == "text" for m in msgs for p in m["content"])
    user = "".join(p["text"] for p in parts)
    assert user.index("[report.pdf p.2]") < user.index("[annex.pdf p.7]")
    assert "Net revenue rose to 5.2 million ..." in user and "exports" not in user  # trimmed to 31 chars
    assert "ignore them" in msgs[0]["content"][0]["text"]

"""hf-causal: the grounded prompt, citation parsing and mapping, and generation on real and tiny models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mmrag.errors import ConfigError
from mmrag.generate.base import NO_ANSWER
from mmrag.generate.hf_causal import HFCausalGenerator, drop_repeats
from mmrag.types import Block, Hit
from tests.test_generate_extractive import BODY_BOX, TABLE_BOX, TITLE_BOX, _hits

OTHER_BOX = (72.0, 500.0, 540.0, 600.0)


def _contexts() -> list[Hit]:
    hits = _hits()  # report.pdf p.3 (title, body, table) and p.7
    hits.append(Hit("fin", "/docs/Annual-Report_2021.pdf", 3, 0.2, text="Net revenue was $4.1 billion.",
                    blocks=[Block("Net revenue was $4.1 billion.", OTHER_BOX)]))
    return hits


@pytest.mark.parametrize(
    ("output", "want"),
    [
        ("It is 2.9 points [report p.3].", [("report", 3)]),
        ("About 7% [report.pdf, p. 7] and 2.9 [report page 3].", [("report", 7), ("report", 3)]),
        ("Revenue was $4.1 billion [Annual-Report_2021.pdf p.3].", [("fin", 3)]),
        ("See [2] and [Source 3].", [("report", 7), ("fin", 3)]),  # numbers of the prompt's sources
        ("See [4] and [0].", []),  # numbers out of range: fallback to the top page
        ("[report p.9] is not a context page", []),
        ("[unknown p.3]", []),  # two contexts have a page 3: a garbled name cannot pick one
        ("no citation at all", []),
        ("[report p.3][report p.7]", [("report", 3), ("report", 7)]),
    ],
)
def test_citations_table(output: str, want: list[tuple[str, int]]) -> None:
    ans = HFCausalGenerator(model="unused").to_answer(output, _contexts())
    got = [(c.doc_id, c.page) for c in ans.citations]
    assert got == (want or [("report", 3)])  # nothing valid cited → the top context


def test_citation_maps_to_the_block_that_supports_the_claim() -> None:
    gen = HFCausalGenerator(model="unused")
    ans = gen.to_answer("The margin of error is 2.9 points [report p.3]. Independents are 38% [report p.3].",
                        _contexts())
    assert ans.answerable
    assert [(c.doc_id, c.page, c.bbox) for c in ans.citations] == [("report", 3, BODY_BOX), ("report", 3, TABLE_BOX)]


def test_invalid_citation_falls_back_to_the_page_the_answer_comes_from() -> None:
    gen = HFCausalGenerator(model="unused")
    ans = gen.to_answer("Net revenue was $4.1 billion [report p.12].", _contexts())
    assert [(c.doc_id, c.page, c.bbox) for c in ans.citations] == [("fin", 3, OTHER_BOX)]
    ans = gen.to_answer("Something no page says.", _contexts())  # no overlap: the top context
    assert [(c.doc_id, c.page) for c in ans.citations] == [("report", 3)]


@pytest.mark.parametrize("output", [NO_ANSWER, "The sources do not contain the answer to this.", "Not answerable.", ""])
def test_refusals_become_no_answer(output: str) -> None:
    ans = HFCausalGenerator(model="unused").to_answer(output, _contexts())
    assert ans.text == NO_ANSWER and not ans.answerable and ans.citations == []


def test_drop_repeats_cuts_greedy_loops() -> None:
    assert drop_repeats("It is 2.9. The survey ran in March.\n\nIt is 2.9. The survey ran") == \
        "It is 2.9. The survey ran in March."
    assert drop_repeats("One. Two. Three.") == "One. Two. Three."


def test_prompt_tags_every_source_and_keeps_the_relevant_sentence_under_budget() -> None:
    hits = _contexts()
    filler = Block(" ".join(f"Unrelated filler sentence number {i} about gardening." for i in range(200)), TITLE_BOX)
    hits[1].blocks.insert(0, filler)
    hits[1].text = "\n".join(b.text for b in hits[1].blocks)
    gen = HFCausalGenerator(model="unused", context_tokens=300)
    system, user = gen.build_messages("What share of Americans declined to lean toward a party?", hits)
    assert "only" in system["content"] and NO_ANSWER in system["content"]
    content = user["content"]
    for tag in ("Source 1 [report.pdf p.3]", "Source 2 [report.pdf p.7]", "Source 3 [Annual-Report_2021.pdf p.3]"):
        assert tag in content
    assert "declined to lean toward a party" in content  # the supporting sentence survived the trim
    assert len(content) < 2000  # the 10,000-character filler did not
    assert content.rstrip().endswith("Question: What share of Americans declined to lean toward a party?\n"
                                     "Answer with citations:")


def test_sources_put_the_best_sentence_first_unless_reading_order_is_asked() -> None:
    q = "What is the margin of sampling error?"
    hit = _contexts()[0]
    first = HFCausalGenerator(model="unused").source_text(q, hit, 2000)
    assert first.startswith("The margin of sampling error is 2.9 percentage points.")
    reading = HFCausalGenerator(model="unused", sentence_order="reading").source_text(q, hit, 2000)
    assert reading.startswith("Survey methods The survey was fielded in March 2018")
    assert sorted(first.split()) == sorted(reading.split())  # same sentences, other order
    with pytest.raises(ConfigError, match="sentence_order"):
        HFCausalGenerator(sentence_order="random")


def test_no_contexts_no_model_call() -> None:
    ans = HFCausalGenerator(model="unused").answer("anything?", [])
    assert ans.text == NO_ANSWER and not ans.answerable


def test_tiny_model_generates_greedily_and_reports_its_token_probability(smollm2_dir: Path) -> None:
    """Real generate path on a tiny random Llama: the confidence equals exp(mean log p) of its tokens."""
    import torch
    from transformers import AutoTokenizer

    from tests.tiny import tiny_causal_lm

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = tiny_causal_lm(len(tok), "llama", seed=1)
    gen = HFCausalGenerator(model=model, tokenizer=tok, max_new_tokens=8)
    messages = gen.build_messages("What is the margin of sampling error?", _contexts())
    prompt = gen.prompt_ids(messages)
    assert tok.decode(prompt).count("<|im_start|>") == 3  # system, user, and the assistant turn
    with torch.inference_mode():
        seq = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             do_sample=False, max_new_tokens=8, pad_token_id=tok.eos_token_id)[0]
        new = seq[len(prompt):]
        logits = model(seq[None, :-1]).logits[0, len(prompt) - 1:]
    logp = torch.log_softmax(logits.float(), -1)[torch.arange(len(new)), new]
    text, confidence = gen.generate(messages)
    assert text == drop_repeats(tok.decode(new, skip_special_tokens=True))
    assert confidence == pytest.approx(math.exp(logp.mean().item()), rel=1e-3)
    ans = gen.answer("What is the margin of sampling error?", _contexts())
    assert ans.citations and all((c.doc_id, c.page) in {(h.doc_id, h.page) for h in _contexts()} for c in ans.citations)


@pytest.mark.slow
def test_bundled_smollm2_answers_from_the_sources(smollm2_dir: Path) -> None:
    gen = HFCausalGenerator(max_new_tokens=32, contexts=1)
    ans = gen.answer("What is the margin of sampling error of the survey?", _contexts()[:2])
    assert ans.answerable and "2.9" in ans.text
    assert (ans.citations[0].doc_id, ans.citations[0].page) == ("report", 3)
    assert 0.0 < ans.confidence <= 1.0

"""LLM rerankers on a tiny random-weight Llama with SmolLM2's tokenizer and chat template.

Each read-out is checked against an independent recomputation from the raw model outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mmrag.rerankers import load  # noqa: E402
from mmrag.types import Candidate  # noqa: E402

QUERY = "how long does a flea live"
TEXTS = [
    "A flea can live up to a year depending on its host [2].",
    "The Eiffel Tower is in Paris.",
    "Flea eggs hatch in two days to two weeks.",
    "Dogs and cats often carry fleas in summer.",
    "Stock markets fell on Monday after the report.",
    "The life cycle of a flea lasts from 20 days to a year.",
]


def cands(n: int = 6) -> list[Candidate]:
    return [Candidate(f"d{i}", TEXTS[i % len(TEXTS)], score=float(10 - i)) for i in range(n)]


@pytest.fixture(scope="session")
def tiny_lm_dir(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved 2-layer Llama (random weights) with SmolLM2's tokenizer."""
    from transformers import AutoTokenizer

    from tests.tiny import tiny_causal_lm

    out = tmp_path_factory.mktemp("tiny_llama")
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    tiny_causal_lm(len(tok), "llama", seed=1).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def ref(tiny_lm_dir: Path):
    """The same tiny model loaded independently (eager attention) for recomputation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, attn_implementation="eager").eval()
    return model, AutoTokenizer.from_pretrained(tiny_lm_dir)


def test_first_order_equals_letter_logits(tiny_lm_dir: Path, ref) -> None:
    model, tok = ref
    r = load("first", model=str(tiny_lm_dir), window=6, step=3)
    cs = cands(6)
    text = r.prompt(QUERY, cs)
    assert text.endswith("[") and "[F] " in text and "e.g., [A] > [B]" in text
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        last = model(input_ids=ids).logits[0, -1]
    letters = [tok.convert_tokens_to_ids(L) for L in "ABCDEF"]
    expected = np.argsort(-last[letters].numpy(), kind="stable")
    out = r.rerank(QUERY, cs)
    assert [s.id for s in out] == [cs[i].id for i in expected]
    assert np.allclose(r.last_logits, last[letters].numpy(), atol=1e-4)


def test_first_refuses_tokenizer_without_single_letters(tiny_lm_dir: Path) -> None:
    from mmrag.errors import ConfigError
    from mmrag.rerankers.first import letter_token_ids

    class SplitTok:  # spells every letter as two tokens
        def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
            return {"input_ids": [ord(c) for c in text for _ in range(2 if c.isalpha() else 1)]}

    with pytest.raises(ConfigError, match="one token"):
        letter_token_ids(SplitTok(), 3)


def test_rankgpt_uses_greedy_generation(tiny_lm_dir: Path, ref) -> None:
    from mmrag.rerankers.listwise import parse_ranking

    model, tok = ref
    r = load("rankgpt", model=str(tiny_lm_dir), window=6, step=3, max_new_tokens=12)
    cs = cands(6)
    text = r.prompt(QUERY, cs)
    assert "[6] " in text and "Rank the passages based on their relevance to query: " + QUERY in text
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                             do_sample=False, pad_token_id=tok.pad_token_id)
    expected_text = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
    out = r.rerank(QUERY, cs)
    assert r.last_output == expected_text
    assert [s.id for s in out] == [cs[i].id for i in parse_ranking(expected_text, 6)]


def test_insertrank_prompt_shows_scores(tiny_lm_dir: Path) -> None:
    r = load("insertrank", model=str(tiny_lm_dir), scores="percent", window=3, step=1, max_new_tokens=4)
    cs = cands(6)
    out = r.rerank(QUERY, cs)
    assert sorted(s.id for s in out) == sorted(c.id for c in cs)
    text = r.prompt(QUERY, cs[:2])  # min-max of the whole query's candidates (10 .. 5)
    assert "BM25 score: 100.0" in text and "BM25 score: 80.0" in text


def test_reasonrank_prompt_hides_bracketed_numbers(tiny_lm_dir: Path) -> None:
    r = load("reasonrank", model=str(tiny_lm_dir), max_new_tokens=6)
    text = r.prompt(QUERY, cands(2))
    assert "host (2)." in text and "<answer>" in text and "[2] The Eiffel" in text
    out = r.rerank(QUERY, cands(3))
    assert len(out) == 3


def test_rank_r1_setwise(tiny_lm_dir: Path) -> None:
    r = load("rank-r1", model=str(tiny_lm_dir), children=2, top_k=2, max_new_tokens=6)
    text = r.prompt(QUERY, cands(3))
    assert f'Given the query: "{QUERY}", which of the following documents is most relevant?' in text
    out = r.rerank(QUERY, cands(6))
    assert sorted(s.id for s in out) == [f"d{i}" for i in range(6)]


def _icr_formula(model, prefix, q, tail, na, spans) -> np.ndarray:
    """ICR from two full passes with output_attentions (no cache reuse)."""
    def per_key(query_ids):
        ids = torch.tensor([prefix + query_ids + tail])
        with torch.no_grad():
            att = model(input_ids=ids, output_attentions=True).attentions
        rows = sum(a[0, :, len(prefix):len(prefix) + len(query_ids)].sum(0) for a in att)
        return rows.mean(0).double().numpy()[: len(prefix)]  # keys of the shared prefix

    diff = per_key(q) - per_key(na)
    toks = np.concatenate([np.arange(s, e) for s, e in spans])
    vals = diff[toks]
    thr = vals.mean() - 2 * vals.std()
    return np.array([sum(diff[t] for t in range(s, e) if diff[t] > thr) for s, e in spans])


@pytest.mark.parametrize("fast_prefix", [True, False])
def test_icr_equals_direct_recomputation(tiny_lm_dir: Path, ref, fast_prefix: bool) -> None:
    model, tok = ref
    r = load("icr", model=str(tiny_lm_dir), window=6, step=3, fast_prefix=fast_prefix)
    cs = cands(5)
    lay = r.layout(QUERY, cs)
    # Best first-stage candidate last; each span covers exactly its document's tokens.
    assert lay.doc_spans[0][0] > lay.doc_spans[-1][0]
    for (s, e), c in zip(lay.doc_spans, cs):
        assert tok.decode(lay.prefix[s:e]) == c.text
    assert tok.decode(lay.query) == QUERY
    na = tok("N/A", add_special_tokens=False)["input_ids"]
    expected = _icr_formula(model, lay.prefix, lay.query, lay.tail, na, lay.doc_spans)
    got = r.window_scores(QUERY, cs)
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-5)
    out = r.rerank(QUERY, cs)
    assert [s.id for s in out] == [cs[i].id for i in np.argsort(-expected, kind="stable")]


def test_query_likelihood_equals_unbatched_logprobs(tiny_lm_dir: Path, ref) -> None:
    model, tok = ref
    r = load("query-likelihood", model=str(tiny_lm_dir), batch_size=4)
    cs = cands(6)
    got = r.score(QUERY, cs)
    expected = []
    q = tok(" " + QUERY, add_special_tokens=False)["input_ids"]
    for c in cs:
        prompt = f"Passage: {c.text}\nPlease write a question based on this passage.\nQuestion:"
        p = tok(prompt)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([p + q])).logits[0]
        lp = torch.log_softmax(logits, -1)
        expected.append(np.mean([lp[len(p) - 1 + j, t].item() for j, t in enumerate(q)]))
    assert np.allclose(got, expected, atol=1e-4)


def test_model_cached_per_instance(tiny_lm_dir: Path) -> None:
    a = load("rankgpt", model=str(tiny_lm_dir))
    b = load("first", model=str(tiny_lm_dir))
    assert a.lm[0] is a.lm[0] and a.lm[0] is b.lm[0]  # one copy in memory


@pytest.fixture(scope="session")
def llm_rerankers(tiny_lm_dir: Path) -> dict:
    m = str(tiny_lm_dir)
    return {
        "rankgpt": load("rankgpt", model=m, window=4, step=2, max_new_tokens=6),
        "first": load("first", model=m, window=4, step=2),
        "insertrank": load("insertrank", model=m, window=4, step=3, max_new_tokens=6, scores="minmax"),
        "reasonrank": load("reasonrank", model=m, window=4, step=2, max_new_tokens=6),
        "rank-r1": load("rank-r1", model=m, children=2, top_k=2, max_new_tokens=6),
        "icr": load("icr", model=m, window=4, step=2),
        "query-likelihood": load("query-likelihood", model=m),
    }


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.sampled_from(TEXTS + ["[1] > [2] </think>", ""]), max_size=7),
       top_k=st.one_of(st.none(), st.integers(1, 8)))
def test_llm_rerank_is_permutation(llm_rerankers: dict, texts: list[str], top_k: int | None) -> None:
    cs = [Candidate(f"c{i}", t, score=float(-i)) for i, t in enumerate(texts)]
    for name, r in llm_rerankers.items():
        out = r.rerank(QUERY, cs, top_k=top_k)
        expect = len(cs) if not top_k else min(top_k, len(cs))
        assert len(out) == expect and len({s.id for s in out}) == expect, name
        if not top_k:
            assert sorted(s.id for s in out) == sorted(c.id for c in cs), name

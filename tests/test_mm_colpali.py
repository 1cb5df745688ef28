"""ColPali on a tiny random PaliGemma: token matrices, padding dropped, store MaxSim = score_retrieval."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from mmrag import encoders  # noqa: E402
from mmrag.indexes.multivector import MultiVectorStore  # noqa: E402
from tests.tiny import tiny_colpali  # noqa: E402

pytestmark = pytest.mark.slow  # needs the SmolLM2 tokenizer (converted from the bundled GGUF on first use)


@pytest.fixture(scope="module")
def colpali(smollm2_dir, tmp_path_factory):
    folder = tiny_colpali(smollm2_dir, tmp_path_factory.mktemp("colpali"))
    return encoders.load("colpali", model=str(folder), batch_size=2, progress=False, device="cpu")


def test_colpali_pages_queries_and_maxsim(colpali):
    import torch

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, size=(80, 60, 3), dtype=np.uint8)) for _ in range(3)]
    pages = colpali.encode_image(images)
    texts = ["what is red", "a much longer question about the blue revenue chart"]
    queries = colpali.encode_text(texts, is_query=True)
    assert colpali.multivector and colpali.dim == 32
    assert len({m.shape[0] for m in pages}) == 1 and pages[0].shape[0] > 16  # 16 patch tokens + prompt
    mask = colpali.processor.process_queries(text=texts, return_tensors="pt")["attention_mask"]
    assert [m.shape[0] for m in queries] == mask.sum(1).tolist()
    for m in pages + queries:
        np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    store = MultiVectorStore(32, "float32")
    store.add([10, 11, 12], pages)
    ref = colpali.processor.score_retrieval([torch.from_numpy(q) for q in queries],
                                            [torch.from_numpy(p) for p in pages]).numpy()
    for qi, q in enumerate(queries):
        ids, scores = store.search(q, k=3)
        np.testing.assert_allclose(scores, ref[qi][ids - 10], rtol=1e-4)
        assert list(ids - 10) == list(np.argsort(-ref[qi], kind="stable"))

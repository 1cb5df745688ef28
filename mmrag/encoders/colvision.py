"""ColPali and ColQwen2: one vector per page patch / query token, scored by late interaction (MaxSim).

Loaded with transformers' ``ColPaliForRetrieval`` / ``ColQwen2ForRetrieval`` and their processors
(``process_images`` for pages, ``process_queries`` for queries, as the vidore authors do). The
model already L2-normalises each token vector; padding rows are dropped, so each item comes back
as a ``(tokens, dim)`` float32 matrix ready for ``MultiVectorStore``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mmrag.encoders.base import l2_normalise
from mmrag.encoders.vision_base import VisionEncoder, to_numpy

if TYPE_CHECKING:
    from PIL.Image import Image


def maxsim(query: np.ndarray, item: np.ndarray) -> float:
    """Late-interaction score: sum over query tokens of the best dot product with an item token."""
    return float((np.asarray(query, np.float32) @ np.asarray(item, np.float32).T).max(axis=1).sum())


class ColVisionEncoder(VisionEncoder):
    """Shared loading and read-out of the ColPali family (multi-vector, MaxSim)."""

    multivector = True
    model_class = ""
    processor_class = ""
    default_model = ""

    def __init__(self, model: Any = None, *, batch_size: int = 4, dtype: str = "auto",
                 device: str = "auto", dpi: int | None = None, progress: bool = True,
                 revision: str | None = None):
        super().__init__(batch_size=batch_size, dtype=dtype, device=device, dpi=dpi,
                         progress=progress, revision=revision)
        self._load_hf(model, self.model_class, self.processor_class)
        self.dim = int(self.torch_model.config.embedding_dim)

    def _read_out(self, batch: Any) -> list[np.ndarray]:
        batch = batch.to(self.device)
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(self.torch_dtype)
        emb = to_numpy(self.torch_model(**batch).embeddings)
        mask = batch["attention_mask"].bool().cpu().numpy()
        return [l2_normalise(e[m]) for e, m in zip(emb, mask)]

    def _text_batch(self, texts: list[str], is_query: bool) -> list[np.ndarray]:
        # Pages are images; text passages are encoded like queries (the only text path these models have).
        return self._read_out(self.processor.process_queries(text=texts, return_tensors="pt"))

    def _image_batch(self, images: list["Image"]) -> list[np.ndarray]:
        return self._read_out(self.processor.process_images(images=images, return_tensors="pt"))


class ColPaliEncoder(ColVisionEncoder):
    """ColPali (PaliGemma backbone, 448 px pages → 1,024 patch vectors of 128 dims)."""

    name = "colpali"
    model_class = "ColPaliForRetrieval"
    processor_class = "ColPaliProcessor"
    default_model = "vidore/colpali-v1.3-hf"


class ColQwen2Encoder(ColVisionEncoder):
    """ColQwen2 (Qwen2-VL backbone, dynamic resolution, 128-dim token vectors)."""

    name = "colqwen2"
    model_class = "ColQwen2ForRetrieval"
    processor_class = "ColQwen2Processor"
    default_model = "vidore/colqwen2-v1.0-hf"

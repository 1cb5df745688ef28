"""Loading and running a Qwen2-VL backbone as an embedder (shared by the DSE and MM-Embed encoders)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Sequence

from mmrag.encoders.vision_base import VisionEncoder, open_image, to_numpy


class QwenVLEmbedder(VisionEncoder):
    """A Qwen2-VL model read out as one vector per input; subclasses say how inputs become prompts.

    Subclasses implement ``_embed(texts, images, is_query)`` returning a (n, dim) torch tensor
    (already normalised); inference, mixed queries and fine-tuning all go through it.
    """

    model_class = "Qwen2VLForConditionalGeneration"
    default_model = ""

    def __init__(self, model: Any = None, *, batch_size: int = 4, dtype: str = "auto", device: str = "auto",
                 dpi: int | None = None, progress: bool = True, revision: str | None = None,
                 min_pixels: int = 28 * 28, max_pixels: int = 2560 * 28 * 28, attn_implementation: str | None = None):
        super().__init__(batch_size=batch_size, dtype=dtype, device=device, dpi=dpi,
                         progress=progress, revision=revision)
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self._load_hf(model, self.model_class, "AutoProcessor",
                      {"attn_implementation": attn_implementation} if attn_implementation else None,
                      {"size": {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}})
        cfg = self.torch_model.config
        self.hidden_size = int(getattr(getattr(cfg, "text_config", cfg), "hidden_size"))

    @abstractmethod
    def _embed(self, texts: list[str | None], images: list[Any], is_query: bool) -> Any:
        """(n, dim) normalised torch tensor for items with a text, an image or both."""

    # ------------------------------------------------------------------ batch hooks
    def _text_batch(self, texts: list[str], is_query: bool) -> Any:
        return to_numpy(self._embed(texts, [None] * len(texts), is_query))

    def _image_batch(self, images: list) -> Any:
        return to_numpy(self._embed([None] * len(images), images, False))

    def encode_query_mm(self, text: str | None = None, image: Any = None) -> Any:
        """One joint input for text + image queries (the model reads both in one prompt)."""
        import torch

        from mmrag.errors import QueryError

        if text is None and image is None:
            raise QueryError("a query needs text, an image, or both")
        with torch.inference_mode():
            return to_numpy(self._embed([text], [open_image(image) if image is not None else None], True))

    def train_embed(self, texts: Sequence[str | None], images: Sequence[Any], *, is_query: bool = False) -> Any:
        """Differentiable embeddings for fine-tuning (same prompts and pooling as inference)."""
        return self._embed(list(texts), [open_image(i) if i is not None else None for i in images], is_query)

    def save_trained(self, out: Any) -> None:
        if hasattr(self.torch_model, "merge_and_unload"):  # a peft LoRA wrapper: fold the adapters in
            self.torch_model = self.torch_model.merge_and_unload()
        self.torch_model.save_pretrained(out, safe_serialization=True)
        self.processor.save_pretrained(out)

    # ------------------------------------------------------------------ running the backbone
    def _forward_hidden(self, batch: Any) -> Any:
        """Last hidden layer for a processor batch, (n, seq, hidden)."""
        batch = batch.to(self.device)
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(self.torch_dtype)
        out = self.torch_model(**batch, output_hidden_states=True, return_dict=True, use_cache=False)
        return out.hidden_states[-1]

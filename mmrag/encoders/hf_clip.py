"""transformers CLIPModel and SiglipModel: page images and text in one space."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.encoders.vision_base import DualTowerEncoder

if TYPE_CHECKING:
    from PIL.Image import Image


def _features(out: Any) -> Any:
    """``get_*_features`` returns a tensor in transformers 4.x and an output object in 5.x."""
    return out if hasattr(out, "shape") else out.pooler_output


class HFClipEncoder(DualTowerEncoder):
    """``CLIPModel`` + its processor, by Hugging Face id, local folder or a (model, processor) pair."""

    name = "hf-clip"
    default_dpi = 72
    model_class = "CLIPModel"
    default_model = "openai/clip-vit-large-patch14"
    text_kwargs: dict = {"padding": True, "truncation": True}

    def __init__(self, model: Any = None, *, batch_size: int = 32,
                 dtype: str = "auto", device: str = "auto", dpi: int | None = None,
                 progress: bool = True, revision: str | None = None):
        super().__init__(batch_size=batch_size, dtype=dtype, device=device, dpi=dpi,
                         progress=progress, revision=revision)
        self._load_hf(model, self.model_class, "AutoProcessor")
        self.dim = int(self.torch_model.config.projection_dim if hasattr(self.torch_model.config, "projection_dim")
                       else self.torch_model.config.text_config.hidden_size)

    def _text_features(self, texts: list[str], is_query: bool) -> Any:
        batch = self.processor(text=texts, return_tensors="pt", **self.text_kwargs).to(self.device)
        return _features(self.torch_model.get_text_features(
            input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")))

    def _image_features(self, images: list["Image"]) -> Any:
        batch = self.processor(images=images, return_tensors="pt")
        pixels = batch["pixel_values"].to(self.device, self.torch_dtype)
        return _features(self.torch_model.get_image_features(pixel_values=pixels))

    def save_trained(self, out: Path) -> None:
        self.torch_model.save_pretrained(out, safe_serialization=True)
        self.processor.save_pretrained(out)


class SiglipEncoder(HFClipEncoder):
    """``SiglipModel``: text padded to the fixed length it was trained with, last-token pooling inside."""

    name = "siglip"
    model_class = "SiglipModel"
    default_model = "google/siglip-so400m-patch14-384"
    text_kwargs = {"padding": "max_length", "max_length": 64, "truncation": True}

    def _text_features(self, texts: list[str], is_query: bool) -> Any:
        # SigLIP was trained without an attention mask on text: pass none, as its authors do.
        batch = self.processor(text=texts, return_tensors="pt", **self.text_kwargs).to(self.device)
        return _features(self.torch_model.get_text_features(input_ids=batch["input_ids"]))

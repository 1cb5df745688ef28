"""MM-Embed-style universal multimodal retriever: an instruction-conditioned MLLM bi-encoder.

Queries carry a task instruction, candidates none (Lin et al. 2024, "MM-Embed"); text, an
image, or both go into one input, and the embedding is the mean of the final hidden states over
the content tokens (the instruction is excluded from the pool, as in NV-Embed), L2-normalised.

Two backends:
- ``vlm`` (ours): any transformers Qwen2-VL checkpoint; tested here on a tiny random model and
  fine-tunable with ``mmrag train encoder``.
- ``nvidia``: the official ``nvidia/MM-Embed`` (LLaVA-NeXT + NV-Embed pooling) through its
  remote code: ``model.encode([{"txt": ..., "img": ...}], is_query=..., instruction=...)``.
``backend="auto"`` picks ``nvidia`` for that id or a folder whose config maps to remote code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from mmrag.encoders.qwen_vl import QwenVLEmbedder
from mmrag.encoders.vision_base import VisionEncoder, hf_load, l2_normalise_torch, open_image, to_numpy
from mmrag.errors import ConfigError

if TYPE_CHECKING:
    from mmrag.types import Page

DEFAULT_INSTRUCTION = "Retrieve a document page that answers the question."
VISION = "<|vision_start|><|image_pad|><|vision_end|>"


def _backend_for(model: Any) -> str:
    if isinstance(model, (tuple, list)):
        return "vlm"
    if str(model) == "nvidia/MM-Embed":
        return "nvidia"
    cfg = Path(str(model)) / "config.json"
    if cfg.is_file() and "auto_map" in json.loads(cfg.read_text()):
        return "nvidia"
    return "vlm"


class MMEmbedEncoder(QwenVLEmbedder):
    """Instruction-conditioned multimodal bi-encoder (text, image or both per input)."""

    name = "mm-embed"
    default_model = "nvidia/MM-Embed"

    def __init__(self, model: Any = None, *, backend: str = "auto", instruction: str = DEFAULT_INSTRUCTION,
                 max_text_tokens: int = 512, batch_size: int = 4, dtype: str = "auto", device: str = "auto",
                 dpi: int | None = None, progress: bool = True, revision: str | None = None,
                 min_pixels: int = 28 * 28, max_pixels: int = 1280 * 28 * 28,
                 attn_implementation: str | None = None):
        model = model or self.default_model
        self.backend = _backend_for(model) if backend == "auto" else backend
        if self.backend not in ("vlm", "nvidia"):
            raise ConfigError(f"mm-embed: backend must be auto, vlm or nvidia; got {backend!r}")
        self.instruction = instruction
        self.max_text_tokens = int(max_text_tokens)
        if self.backend == "vlm":
            super().__init__(model, batch_size=batch_size, dtype=dtype, device=device, dpi=dpi, progress=progress,
                             revision=revision, min_pixels=min_pixels, max_pixels=max_pixels,
                             attn_implementation=attn_implementation)
            self.dim = self.hidden_size
            return
        VisionEncoder.__init__(self, batch_size=batch_size, dtype=dtype, device=device, dpi=dpi,
                               progress=progress, revision=revision)
        import transformers

        self.model_id = str(model)
        self.torch_model = hf_load(transformers.AutoModel, self.model_id, self.name, revision=revision,
                                   trust_remote_code=True, dtype=self.torch_dtype)
        self.torch_model = self.torch_model.to(self.device).eval()
        self.processor = None
        self.dim = int(self._embed(["probe"], [None], False).shape[-1])

    def encode_page(self, pages: Sequence["Page"]) -> Any:
        """Pages are read as the model intends: the page image and its layout text in one input."""
        return self._stream(list(pages), lambda b: to_numpy(self._embed(
            [p.text or None for p in b], [self.page_image(p) for p in b], False)), "pages")

    # ------------------------------------------------------------------ embedding
    def _embed(self, texts: list[str | None], images: list[Any], is_query: bool) -> Any:
        if self.backend == "nvidia":
            items = [{k: v for k, v in (("txt", t), ("img", im)) if v is not None} for t, im in zip(texts, images)]
            out = self.torch_model.encode(items, is_query=is_query, instruction=self.instruction if is_query else None,
                                          max_length=self.max_text_tokens)["hidden_states"]
            return l2_normalise_torch(out.float())
        return self._embed_vlm(texts, images, is_query)

    def _embed_vlm(self, texts: list[str | None], images: list[Any], is_query: bool) -> Any:
        import torch

        tok = self.processor.tokenizer
        prefix = tok(f"Instruct: {self.instruction}\nQuery: ", add_special_tokens=False)["input_ids"] if is_query else []
        ids, pool, types, pixels, grids = [], [], [], [], []
        for text, image in zip(texts, images):
            if text is not None:
                text = tok.decode(tok(text, add_special_tokens=False)["input_ids"][:self.max_text_tokens])
            content = (VISION if image is not None else "") + (text or "")
            enc = self.processor(text=[content], images=[open_image(image)] if image is not None else None,
                                 return_tensors="pt")
            body = enc["input_ids"][0].tolist() + [tok.eos_token_id]
            ids.append(prefix + body)
            mm = enc.get("mm_token_type_ids")  # which tokens are image tokens (M-RoPE positions)
            types.append([0] * len(prefix) + (mm[0].tolist() if mm is not None else [0] * (len(body) - 1)) + [0])
            pool.append([0] * len(prefix) + [1] * len(body))
            if image is not None:
                pixels.append(enc["pixel_values"])
                grids.append(enc["image_grid_thw"])
        width = max(len(x) for x in ids)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
        attention = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
        pool_mask = torch.tensor([p + [0] * (width - len(p)) for p in pool], dtype=torch.float32)
        batch: dict = {"input_ids": input_ids, "attention_mask": attention,
                       "mm_token_type_ids": torch.tensor([x + [0] * (width - len(x)) for x in types])}
        if pixels:
            batch["pixel_values"] = torch.cat(pixels)
            batch["image_grid_thw"] = torch.cat(grids)
        from transformers import BatchFeature

        hidden = self._forward_hidden(BatchFeature(batch)).float()
        pool_mask = pool_mask.to(hidden.device).unsqueeze(-1)
        mean = (hidden * pool_mask).sum(1) / pool_mask.sum(1).clamp(min=1)
        return l2_normalise_torch(mean)

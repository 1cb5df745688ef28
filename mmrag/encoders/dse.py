"""DSE, document screenshot embedding (Ma et al. 2024): a Qwen2-VL bi-encoder read at the last token.

Prompts follow the MrLight/dse-qwen2-2b-mrl-v1 model card: the page screenshot resized to
``page_size`` square with "What is shown in this image?", queries as "Query: ..." next to a
1x1 dummy image, text passages as "Document: ...", the chat template plus ``<|endoftext|>``,
left padding, the last token's final hidden state, truncated to ``dimension`` (Matryoshka) and
L2-normalised.
"""

from __future__ import annotations

from typing import Any

from mmrag.encoders.qwen_vl import QwenVLEmbedder
from mmrag.encoders.vision_base import l2_normalise_torch

PAGE_PROMPT = "What is shown in this image?"


class DSEEncoder(QwenVLEmbedder):
    """Document screenshot embedding with Qwen2-VL last-token pooling."""

    name = "dse"
    default_model = "MrLight/dse-qwen2-2b-mrl-v1"

    def __init__(self, model: Any = None, *, dimension: int | None = None, page_size: int = 680,
                 batch_size: int = 4, dtype: str = "auto", device: str = "auto", dpi: int | None = None,
                 progress: bool = True, revision: str | None = None, min_pixels: int = 28 * 28,
                 max_pixels: int = 2560 * 28 * 28, attn_implementation: str | None = None):
        super().__init__(model, batch_size=batch_size, dtype=dtype, device=device, dpi=dpi, progress=progress,
                         revision=revision, min_pixels=min_pixels, max_pixels=max_pixels,
                         attn_implementation=attn_implementation)
        self.page_size = int(page_size)
        self.dim = min(int(dimension), self.hidden_size) if dimension else self.hidden_size

    def messages(self, text: str | None, image: Any, is_query: bool) -> list[dict]:
        """The chat message DSE was trained on for a query, a page screenshot or a text passage."""
        from PIL import Image

        if image is not None:
            side = self.page_size
            content = [{"type": "image", "image": image, "resized_height": side, "resized_width": side},
                       {"type": "text", "text": f"Query: {text}" if is_query and text else (text or PAGE_PROMPT)}]
        else:
            prefix = "Query" if is_query else "Document"
            content = [{"type": "image", "image": Image.new("RGB", (28, 28)), "resized_height": 1, "resized_width": 1},
                       {"type": "text", "text": f"{prefix}: {text}"}]
        return [{"role": "user", "content": content}]

    def _embed(self, texts: list[str | None], images: list[Any], is_query: bool) -> Any:
        from qwen_vl_utils import process_vision_info

        msgs = [self.messages(t, im, is_query) for t, im in zip(texts, images)]
        prompts = [self.processor.apply_chat_template(m, tokenize=False, add_generation_prompt=True) + "<|endoftext|>"
                   for m in msgs]
        image_inputs, _ = process_vision_info(msgs)[:2]
        tok = self.processor.tokenizer
        side, tok.padding_side = tok.padding_side, "left"
        try:
            batch = self.processor(text=prompts, images=image_inputs, padding="longest", return_tensors="pt")
        finally:
            tok.padding_side = side
        last = self._forward_hidden(batch)[:, -1].float()
        return l2_normalise_torch(last[:, :self.dim])

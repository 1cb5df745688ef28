"""Vision-language models through transformers: loading, chat messages with page images, read-out.

Messages use the Qwen-VL chat format: a list of ``{"role", "content"}`` where content is a list
of ``{"type": "text", "text"}`` and ``{"type": "image", "image": PIL, "min_pixels", "max_pixels"}``
parts. The same messages serve the local backend here (``qwen_vl_utils.process_vision_info``
resizes page images the way Qwen models expect) and the OpenAI-compatible backend
(``mmrag.generate.openai_compatible`` sends the images as base64 data URLs).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from mmrag.errors import ConfigError, ModelNotFound, QueryError

if TYPE_CHECKING:
    from PIL.Image import Image

    from mmrag.types import Candidate, Hit

log = logging.getLogger("mmrag.vlm")

PATCH_FACTOR = 28  # Qwen-VL: 14-pixel patches merged 2x2
DEFAULT_MIN_PIXELS = 256 * PATCH_FACTOR * PATCH_FACTOR  # the Qwen2.5-VL model card's suggestion
DEFAULT_MAX_PIXELS = 1280 * PATCH_FACTOR * PATCH_FACTOR

Message = dict[str, Any]


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def image_part(image: "Image", min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict:
    """An image in a message, with the pixel budget the Qwen resizer applies to it."""
    if min_pixels > max_pixels:
        raise ConfigError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
    return {"type": "image", "image": image, "min_pixels": int(min_pixels), "max_pixels": int(max_pixels)}


def message_images(messages: Sequence[Message]) -> list["Image"]:
    """The images of ``messages`` in the order they appear."""
    return [part["image"] for m in messages if isinstance(m["content"], list)
            for part in m["content"] if part.get("type") == "image"]


def candidate_images(candidates: Sequence["Candidate"], who: str) -> list["Image"]:
    """Each candidate's page image, in order; a clear error for a candidate without one."""
    images = []
    for c in candidates:
        img = c.get_image()
        if img is None:
            raise QueryError(f"{who} reads page images, but candidate {c.id} has none; index pages "
                             "with images (or PDF paths) or choose a text reranker")
        images.append(img)
    return images


def trim(text: str, max_chars: int) -> str:
    """Collapse whitespace and cut at a word boundary to at most ``max_chars`` characters."""
    flat = " ".join(text.split())
    if len(flat) <= max_chars:
        return flat
    cut = flat[:max_chars]
    if flat[max_chars] != " ":  # do not end on half a word
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + " ..."


def hit_image(hit: "Hit", dpi: int = 144) -> "Image":
    """The page image of a search hit: the index's stored PNG if it is there, else rendered from the source."""
    if hit.image_path and Path(hit.image_path).is_file():
        from PIL import Image as PILImage

        with PILImage.open(hit.image_path) as im:
            return im.convert("RGB")
    from mmrag.ingest.render import render_page

    return render_page(hit.path, hit.page, dpi=dpi)


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _resolve_dtype(dtype: str | None, device: str) -> Any:
    import torch

    if dtype in (None, "", "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return getattr(torch, dtype)
    except AttributeError:
        raise ConfigError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16") from None


class VLM:
    """A transformers image-text-to-text model with its processor (Qwen2-VL, Qwen2.5-VL, LLaVA)."""

    def __init__(self, model: Any, processor: Any, name: str = ""):
        self.model = model
        self.processor = processor
        self.name = name
        self.model_type = str(getattr(model.config, "model_type", ""))

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def device(self) -> Any:
        return self.model.device

    @property
    def is_qwen(self) -> bool:
        return self.model_type.startswith("qwen")

    def token_id(self, word: str) -> int:
        """Id of the first token of ``word`` (how a one-word answer starts)."""
        ids = self.tokenizer.encode(word, add_special_tokens=False)
        if not ids:
            raise ValueError(f"the tokenizer of {self.name} turns {word!r} into no tokens")
        return int(ids[0])

    def inputs(self, conversations: Sequence[Sequence[Message]]) -> Any:
        """Tokenised, left-padded model inputs for a batch of conversations, images in order."""
        texts = [self.processor.apply_chat_template(list(conv), tokenize=False, add_generation_prompt=True)
                 for conv in conversations]
        if self.is_qwen:
            from qwen_vl_utils import process_vision_info

            images, _ = process_vision_info([list(c) for c in conversations])
        else:  # other processors resize images themselves
            images = [img for conv in conversations for img in message_images(conv)] or None
        batch = self.processor(text=texts, images=images, padding=True, padding_side="left", return_tensors="pt")
        return batch.to(self.device)

    def next_token_logits(self, conversations: Sequence[Sequence[Message]]) -> Any:
        """Float32 logits of the first generated token, one row per conversation."""
        import torch

        batch = self.inputs(conversations)
        with torch.inference_mode():
            out = self.model(**batch, logits_to_keep=1)
        return out.logits[:, -1, :].float()

    def generate(self, messages: Sequence[Message], max_new_tokens: int = 512, temperature: float = 0.0,
                 top_p: float | None = None) -> str:
        """The model's reply to one conversation (greedy when ``temperature`` is 0)."""
        import torch

        batch = self.inputs([messages])
        kwargs: dict[str, Any] = {"max_new_tokens": int(max_new_tokens), "do_sample": temperature > 0}
        if temperature > 0:
            kwargs["temperature"] = float(temperature)
            if top_p is not None:
                kwargs["top_p"] = float(top_p)
        else:  # a checkpoint's sampling defaults would only warn under greedy decoding
            kwargs.update(temperature=None, top_p=None, top_k=None)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        with torch.inference_mode():
            out = self.model.generate(**batch, **kwargs, pad_token_id=pad)
        new = out[0, batch["input_ids"].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True)

    def yes_probability(self, conversations: Sequence[Sequence[Message]], yes: str = "Yes",
                        no: str = "No") -> list[float]:
        """softmax over the first-token logits of ``yes`` and ``no``: P(yes), one per conversation."""
        import torch

        logits = self.next_token_logits(conversations)
        pair = logits[:, [self.token_id(yes), self.token_id(no)]]
        return torch.softmax(pair, dim=-1)[:, 0].tolist()


def make_backend(backend: str, *, model: str, device: str | None = None, dtype: str | None = "auto",
                 attn_implementation: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, timeout: float = 600.0, retries: int = 2,
                 top_logprobs: int = 20) -> Any:
    """The model behind a VLM reranker or generator: local transformers, or an OpenAI-style server.

    Both offer ``generate(messages, max_new_tokens, temperature)`` and
    ``yes_probability(conversations)`` on the same Qwen-VL messages.
    """
    if backend == "transformers":
        return load_vlm(model, device, dtype, attn_implementation)
    if backend == "openai":
        from mmrag.generate.openai_compatible import chat_client

        return chat_client(base_url, model, api_key=api_key, timeout=timeout, retries=retries,
                           top_logprobs=top_logprobs)
    raise ConfigError(f"unknown backend {backend!r}; use transformers or openai")


def load_vlm(model: str, device: str | None = None, dtype: str | None = "auto",
             attn_implementation: str | None = None) -> VLM:
    """Load a VLM and its processor by hub id or local folder. Cached: a reranker and a
    generator on the same checkpoint share one copy."""
    return _load_vlm(model, resolve_device(device), dtype or "auto", attn_implementation)


@functools.lru_cache(maxsize=2)
def _load_vlm(model: str, device: str, dtype: str, attn_implementation: str | None) -> VLM:
    import transformers

    kwargs: dict[str, Any] = {"dtype": _resolve_dtype(dtype, device)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        processor = transformers.AutoProcessor.from_pretrained(model)
        net = transformers.AutoModelForImageTextToText.from_pretrained(model, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelNotFound(
            f"cannot load vision-language model '{model}': {e}. Give a local folder, or download it "
            f"first (huggingface-cli download {model}); this machine may be offline (HF_HUB_OFFLINE=1)."
        ) from None
    net = net.to(device).eval()
    log.info("loaded %s (%s) on %s", model, net.config.model_type, device)
    return VLM(net, processor, name=model)

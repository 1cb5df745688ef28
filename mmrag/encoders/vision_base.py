"""What every image/multimodal encoder shares: device and dtype, batching, page images, mixed queries.

Subclasses implement ``_text_batch(texts, is_query)`` and ``_image_batch(images)`` for one batch
(a ``(n, dim)`` array, or a list of ``(tokens, dim)`` matrices when ``multivector``). The base
streams inputs through them ``batch_size`` at a time, so a 500-page PDF never has more than one
batch of page tensors in memory (ColPali issue #87: a 15-page PDF asking for 59 GiB).
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from mmrag.encoders.base import Encoder, l2_normalise
from mmrag.errors import ConfigError, ModelNotFound, QueryError
from mmrag.vlm import resolve_device

if TYPE_CHECKING:
    from PIL.Image import Image

    from mmrag.types import Page

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


def resolve_dtype(dtype: str, device: str) -> Any:
    """``auto`` → bfloat16 on GPU, float32 on CPU; else the named torch dtype."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype must be auto, float32, bfloat16 or float16; got {dtype!r}")
    return getattr(torch, _DTYPES[dtype])


def to_numpy(t: Any) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def l2_normalise_torch(t: Any) -> Any:
    """Row-wise L2 normalisation of a torch tensor (keeps gradients)."""
    import torch

    return torch.nn.functional.normalize(t, dim=-1)


def open_image(x: Any) -> "Image":
    """A PIL image from a PIL image, a path, or a Page."""
    from PIL import Image as PILImage

    if isinstance(x, PILImage.Image):
        return x.convert("RGB") if x.mode != "RGB" else x
    if hasattr(x, "image") and callable(x.image):
        return x.image()
    p = Path(x)
    if not p.is_file():
        raise QueryError(f"image not found: {p}")
    with PILImage.open(p) as im:
        return im.convert("RGB")


def hf_load(loader: Callable[..., Any], model: str, what: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(model)`` turning 'not found offline' into ModelNotFound."""
    try:
        return loader.from_pretrained(model, **kwargs)
    except OSError as e:
        raise ModelNotFound(
            f"{what}: cannot load '{model}' ({str(e).splitlines()[0]}); give a local folder, or "
            "download it first (huggingface-cli download) on a machine with access to the Hub") from None


class VisionEncoder(Encoder):
    """Base of the CLIP / SigLIP / ColPali / ColQwen2 / DSE / MM-Embed encoders."""

    modalities = frozenset({"text", "image"})
    default_dpi = 144

    def __init__(self, *, batch_size: int = 8, dtype: str = "auto", device: str = "auto",
                 dpi: int | None = None, progress: bool = True, revision: str | None = None):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        self.torch_dtype = resolve_dtype(dtype, self.device)
        self.dpi = dpi if dpi is not None else self.default_dpi
        self.progress = progress
        self.revision = revision
        self.model_id = ""

    def _load_hf(self, model: Any, model_class: str, processor_class: str, model_kwargs: dict | None = None,
                 processor_kwargs: dict | None = None) -> None:
        """Set ``torch_model``/``processor`` from a (model, processor) pair, or load them by id or folder."""
        import transformers

        pair = unpack_pair(model)
        if pair is not None:
            self.torch_model, self.processor = pair
            self.model_id = getattr(self.torch_model.config, "_name_or_path", "") or model_class
        else:
            self.model_id = str(model or getattr(self, "default_model", ""))
            self.torch_model = hf_load(getattr(transformers, model_class), self.model_id, self.name,
                                       revision=self.revision, dtype=self.torch_dtype, **(model_kwargs or {}))
            self.processor = hf_load(getattr(transformers, processor_class), self.model_id, self.name,
                                     revision=self.revision, **(processor_kwargs or {}))
        self.torch_model = self.torch_model.to(self.device, self.torch_dtype).eval()

    # -------------------------------------------------------------- per-batch hooks
    @abstractmethod
    def _text_batch(self, texts: list[str], is_query: bool) -> Any:
        """One batch of texts → (n, dim) array, or a list of matrices when multi-vector."""

    @abstractmethod
    def _image_batch(self, images: list["Image"]) -> Any:
        """One batch of PIL images → (n, dim) array, or a list of matrices when multi-vector."""

    # -------------------------------------------------------------- public API
    def encode_text(self, texts: Sequence[str], *, is_query: bool = False) -> Any:
        return self._stream(list(texts), lambda b: self._text_batch(b, is_query), "text")

    def encode_image(self, images: Sequence[Any]) -> Any:
        return self._stream(list(images), lambda b: self._image_batch([open_image(x) for x in b]), "images")

    def encode_page(self, pages: Sequence["Page"]) -> Any:
        """Encode page images rendered at this encoder's ``dpi``, one batch at a time."""
        return self._stream(list(pages), lambda b: self._image_batch([self.page_image(p) for p in b]), "pages")

    def page_image(self, page: "Page") -> "Image":
        """The page rendered at ``self.dpi`` from its source file, else the image it carries."""
        if page.source_path and not page.image_path and page._image is None:
            return page.image(dpi=self.dpi)
        return page.image()

    def encode_query(self, query: str) -> Any:
        return self.encode_text([query], is_query=True)

    def encode_query_mm(self, text: str | None = None, image: Any = None) -> Any:
        """Encode a query that is text, an image, or both (one row / one matrix).

        Dual encoders (CLIP, SigLIP) add the normalised text and image vectors; multi-vector
        encoders concatenate the token matrices; MLLM encoders override this with one joint input.
        """
        if text is None and image is None:
            raise QueryError("a query needs text, an image, or both")
        parts = []
        if text is not None:
            parts.append(self.encode_text([text], is_query=True))
        if image is not None:
            parts.append(self.encode_image([image]))
        if self.multivector:
            return [np.concatenate([p[0] for p in parts], axis=0)]
        return l2_normalise(np.sum(parts, axis=0))

    # -------------------------------------------------------------- plumbing
    def _stream(self, items: list, fn: Callable[[list], Any], what: str) -> Any:
        import torch

        out: list = []
        batches = range(0, len(items), self.batch_size)
        with torch.inference_mode():
            for start in _bar(batches, self.progress and len(items) > self.batch_size,
                              f"{self.name}: {what}"):
                out.append(fn(items[start:start + self.batch_size]))
        if self.multivector:
            return [m for batch in out for m in batch]
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out, axis=0)


def _bar(it: Iterable, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, unit="batch", leave=False)


def unpack_pair(model: Any) -> tuple[Any, Any] | None:
    """An already-built ``(model, processor)`` pair, or None when ``model`` is an id or a folder."""
    if isinstance(model, (tuple, list)) and len(model) == 2:
        return model[0], model[1]
    return None


class DualTowerEncoder(VisionEncoder):
    """CLIP-style encoders: a text tower and an image tower into one space.

    Subclasses give the raw tower outputs as torch tensors (``_text_features``,
    ``_image_features``); the same code then serves inference (normalised numpy) and training
    (``train_embed``: gradients on, text and image of an item summed, then normalised).
    """

    torch_model: Any = None

    @abstractmethod
    def _text_features(self, texts: list[str], is_query: bool) -> Any:
        """Unnormalised text-tower output, a (n, dim) torch tensor."""

    @abstractmethod
    def _image_features(self, images: list["Image"]) -> Any:
        """Unnormalised image-tower output, a (n, dim) torch tensor."""

    @abstractmethod
    def save_trained(self, out: Path) -> None:
        """Write the (fine-tuned) model as safetensors into ``out`` so ``model=out`` loads it."""

    def _text_batch(self, texts: list[str], is_query: bool) -> np.ndarray:
        return l2_normalise(to_numpy(self._text_features(texts, is_query)))

    def _image_batch(self, images: list["Image"]) -> np.ndarray:
        return l2_normalise(to_numpy(self._image_features(images)))

    def train_embed(self, texts: Sequence[str | None], images: Sequence[Any], *, is_query: bool = False) -> Any:
        """Differentiable embeddings of items that have a text, an image, or both (normalised sum)."""
        import torch

        n = len(texts)
        out = torch.zeros((n, self.dim), device=self.device, dtype=torch.float32)
        t_idx = [i for i in range(n) if texts[i] is not None]
        i_idx = [i for i in range(n) if images[i] is not None]
        if t_idx:
            feats = self._text_features([texts[i] for i in t_idx], is_query).float()
            out = out.index_add(0, torch.tensor(t_idx, device=self.device), l2_normalise_torch(feats))
        if i_idx:
            with _running_stats_for_single(self.torch_model, len(i_idx)):
                feats = self._image_features([open_image(images[i]) for i in i_idx]).float()
            out = out.index_add(0, torch.tensor(i_idx, device=self.device), l2_normalise_torch(feats))
        return l2_normalise_torch(out)


class _running_stats_for_single:
    """While training, a single image gives BatchNorm no batch statistics: use the running ones."""

    def __init__(self, model: Any, n: int):
        self.layers = []
        if n == 1 and model is not None and model.training:
            import torch

            self.layers = [m for m in model.modules()
                           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training]

    def __enter__(self) -> None:
        for m in self.layers:
            m.eval()

    def __exit__(self, *exc: object) -> None:
        for m in self.layers:
            m.train()

"""The Encoder contract: float32, L2-normalised vectors (or one matrix per item for multi-vector)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Sequence

import numpy as np

from mmrag.errors import ConfigError

if TYPE_CHECKING:
    from PIL.Image import Image

    from mmrag.types import Page


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in float32; zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class Encoder(ABC):
    """Turns text, images or pages into vectors.

    ``modalities`` says what it can read ("text", "image"). ``multivector`` encoders return a
    list with one ``(tokens, dim)`` matrix per item instead of one ``(n, dim)`` array.
    ``identity`` goes into the index manifest so an index is never searched with another model.
    """

    name: str = ""
    dim: int = 0
    modalities: frozenset[str] = frozenset({"text"})
    multivector: bool = False

    @property
    def identity(self) -> dict:
        """What the manifest records: encoder name, model id/revision, dim."""
        return {"name": self.name, "model": getattr(self, "model_id", self.name),
                "revision": getattr(self, "revision", None), "dim": self.dim,
                "multivector": self.multivector}

    @abstractmethod
    def encode_text(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        """Encode texts; ``is_query`` lets asymmetric models add their query instruction."""

    def encode_image(self, images: Sequence["Image"]) -> np.ndarray:
        raise ConfigError(f"encoder '{self.name}' reads no images; choose an image or multimodal encoder")

    def encode_page(self, pages: Sequence["Page"]) -> np.ndarray:
        """Encode whole pages: by image when the encoder sees images, else by their text."""
        if "image" in self.modalities:
            return self.encode_image([p.image() for p in pages])
        return self.encode_text([p.text for p in pages])

    def encode_query(self, query: str) -> np.ndarray:
        return self.encode_text([query], is_query=True)

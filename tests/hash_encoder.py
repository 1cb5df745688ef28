"""A cheap deterministic text encoder (hashed word features) for index mechanics tests.

Registered as "test-hash" only by tests that call `register()`; the default preset uses MiniLM.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np

from mmrag.encoders.base import Encoder, l2_normalise


class HashEncoder(Encoder):
    name = "test-hash"
    model_id = "test/hashed-words"

    def __init__(self, dim: int = 64):
        self.dim = int(dim)

    def encode_text(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return l2_normalise(out)


class HashMultiEncoder(HashEncoder):
    """Multi-vector flavour: one hashed vector per word (MaxSim scoring, like ColBERT)."""

    name = "test-hash-multi"
    model_id = "test/hashed-word-tokens"
    multivector = True

    def encode_text(self, texts: Sequence[str], *, is_query: bool = False) -> list[np.ndarray]:
        return [super(HashMultiEncoder, self).encode_text(re.findall(r"\w+", t.lower()) or [""]) for t in texts]

    def encode_query(self, query: str) -> np.ndarray:
        return self.encode_text([query], is_query=True)[0]


def register() -> None:
    from mmrag.encoders import REGISTRY
    from mmrag.registry import Backend

    REGISTRY.register(Backend("test-hash", "tests.hash_encoder:HashEncoder", "hashed words (tests only)"))
    REGISTRY.register(Backend("test-hash-multi", "tests.hash_encoder:HashMultiEncoder", "hashed word tokens (tests only)"))

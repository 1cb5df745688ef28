"""RagLLaVA-style knowledge-enhanced reranking: ask a VLM, page by page, "is this relevant?".

Each candidate page is shown as its image plus its layout text as the caption; the score is
P(Yes) = softmax over the first-token logits of "Yes" and "No". ``select`` then keeps at most
``top_k`` pages (default 2) that clear an adaptive threshold, so a generator sees only pages the
model believes in, and can say "not answerable" when none pass (``last_passed == 0``).
``images=False`` asks about the layout text alone, for a text-only LLM (e.g. behind a server).
"""

from __future__ import annotations

from typing import Sequence

from mmrag.rerankers.base import Reranker, scored_from_scores
from mmrag.types import Candidate, Scored
from mmrag.vlm import (DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, Message, candidate_images, image_part,
                       make_backend, text_part, trim)

PROMPT = ("Image Caption: {caption}\nQuestion: {query}\nBased on the image and its caption, is the image "
          "relevant to the question? Answer 'Yes' or 'No'.")


TEXT_PROMPT = ("Passage: {caption}\nQuestion: {query}\nIs the passage relevant to the question? "
               "Answer 'Yes' or 'No'.")


def build_messages(query: str, image: object, caption: str, min_pixels: int, max_pixels: int) -> list[Message]:
    """One Yes/No request: the page image, then the caption and the question (no image: the text alone)."""
    if image is None:
        return [{"role": "user", "content": [text_part(TEXT_PROMPT.format(caption=caption, query=query))]}]
    return [{"role": "user", "content": [image_part(image, min_pixels, max_pixels),
                                         text_part(PROMPT.format(caption=caption, query=query))]}]


class RagLLaVAReranker(Reranker):
    """Pointwise P(Yes) of page image + caption; works with Qwen2-VL, Qwen2.5-VL and LLaVA.

    With ``backend="openai"`` the score comes from the first token's ``top_logprobs`` (servers
    allow at most 20 by default; see ``yes_probability_from_top``).

    Adaptive threshold: a page passes when P(Yes) ≥ ``min_score`` (the model leans to Yes) and
    P(Yes) ≥ ``relative`` × the best P(Yes) for this query (it is close to the best page).
    """

    name = "ragllava"

    def __init__(self, model: str = "Qwen/Qwen2.5-VL-7B-Instruct", backend: str = "transformers",
                 top_k: int = 2, min_score: float = 0.5, relative: float = 0.5, caption_chars: int = 1000,
                 batch_size: int = 4, min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS,
                 device: str | None = None, dtype: str | None = "auto", attn_implementation: str | None = None,
                 base_url: str | None = None, api_key: str | None = None, timeout: float = 600.0,
                 retries: int = 2, top_logprobs: int = 20, images: bool = True, progress: bool = False):
        self.images = bool(images)
        self.top_k, self.min_score, self.relative = int(top_k), float(min_score), float(relative)
        self.caption_chars, self.batch_size = int(caption_chars), max(1, int(batch_size))
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self.progress = progress
        self.backend = make_backend(backend, model=model, device=device, dtype=dtype,
                                    attn_implementation=attn_implementation, base_url=base_url,
                                    api_key=api_key, timeout=timeout, retries=retries, top_logprobs=top_logprobs)
        self.last_passed = 0  # pages ``select`` keeps for the latest query (0: nothing to answer from)

    def messages(self, query: str, candidate: Candidate, image: object) -> list[Message]:
        return build_messages(query, image, trim(candidate.text, self.caption_chars), self.min_pixels, self.max_pixels)

    def score(self, query: str, candidates: list[Candidate]) -> list[float]:
        """P(Yes) per candidate, recorded as ``candidate.metadata["relevance"]``, and whether
        ``select`` keeps it as ``metadata["passes"]`` (what a generator should read)."""
        from tqdm.auto import tqdm

        scores: list[float] = []
        with tqdm(total=len(candidates), desc="ragllava", unit="page", disable=not self.progress) as bar:
            for start in range(0, len(candidates), self.batch_size):
                chunk = candidates[start:start + self.batch_size]  # pages render per batch, not all at once
                images = candidate_images(chunk, "ragllava") if self.images else [None] * len(chunk)
                convs = [self.messages(query, c, img) for c, img in zip(chunk, images)]
                scores.extend(self.backend.yes_probability(convs))
                bar.update(len(chunk))
        chosen = {id(s.candidate) for s in self.select(scored_from_scores(candidates, scores))}
        for c, s in zip(candidates, scores):
            c.metadata["relevance"] = s
            c.metadata["passes"] = id(c) in chosen
        self.last_passed = len(chosen)
        return scores

    def threshold(self, scores: Sequence[float]) -> float:
        """The adaptive cut for one query's scores."""
        return max(self.min_score, self.relative * max(scores, default=0.0))

    def select(self, scored: Sequence[Scored]) -> list[Scored]:
        """The pages worth generating from: at most ``top_k`` that clear the threshold (maybe none)."""
        threshold = self.threshold([s.score for s in scored])
        return [s for s in scored if s.score >= threshold][: self.top_k]

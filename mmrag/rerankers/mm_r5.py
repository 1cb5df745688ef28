"""MM-R5: one listwise call over the page images with a reasoning Qwen2.5-VL model.

The model (i2vec/MM-R5) thinks in ``<think>`` and answers ``<answer>[3, 1, 2]</answer>`` with
1-based image ids. Whatever it prints, the result is a permutation: bad ids are dropped, missing
ones follow in input order, and an unreadable answer keeps the input order.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Sequence

from mmrag.rerankers.base import Reranker, scored_from_order
from mmrag.types import Candidate, Scored
from mmrag.vlm import (DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, Message, candidate_images, image_part, make_backend,
                       text_part)

log = logging.getLogger("mmrag.rerankers.mm_r5")

SYSTEM_PROMPT = (
    "You are a careful assistant talking with a user. First reason about the user's request step by "
    "step, then give the result. Put the reasoning inside <think> </think> tags and the result inside "
    "<answer> </answer> tags: <think> reasoning </think><answer> result </answer>"
)

USER_PROMPT = (
    "Rank the images below by how relevant they are to the question, most relevant first. Look at "
    "each image and explain what it shows before deciding. Reply as "
    "<think>your analysis of each image</think><answer>[id_1, id_2, ...]</answer>, where the list "
    "holds every image id once, ordered from most to least relevant.\n"
    "The question is: {query}\n\n"
    "There are {n} images, id from 1 to {n}, Image ID to image mapping:\n"
)

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_ID = re.compile(r"^(?:image\s*|id\s*)?([-+]?\d+)$", re.I)


def parse_ranking(text: str, n: int) -> list[int] | None:
    """0-based order from the last ``<answer>[...]</answer>``; None when it cannot be read.

    Duplicates and ids outside 1..n are dropped and missing ids appended in input order, so a
    readable answer always yields a full permutation of ``range(n)``.
    """
    answers = _ANSWER.findall(text or "")
    if not answers:
        return None
    body = answers[-1].strip()
    if not (body.startswith("[") and body.endswith("]")):
        return None
    items = [x.strip().strip("'\"") for x in body[1:-1].split(",")]
    ids: list[int] = []
    for item in items:
        if not item:
            continue
        m = _ID.match(item)
        if m is None:
            return None
        ids.append(int(m.group(1)) - 1)
    order: list[int] = []
    for i in ids:
        if 0 <= i < n and i not in order:
            order.append(i)
    order.extend(i for i in range(n) if i not in order)
    return order


def build_messages(query: str, images: Sequence[Any], min_pixels: int, max_pixels: int) -> list[Message]:
    """The single MM-R5 request: system prompt, instructions, then ``Image i:`` and each image."""
    content: list[dict] = [text_part(USER_PROMPT.format(query=query, n=len(images)))]
    for i, img in enumerate(images, 1):
        content.append(text_part(f"\nImage {i}: "))
        content.append(image_part(img, min_pixels, max_pixels))
    return [{"role": "system", "content": [text_part(SYSTEM_PROMPT)]}, {"role": "user", "content": content}]


class MMR5Reranker(Reranker):
    """Listwise reranking of page images in one generation (MM-R5 on Qwen2.5-VL)."""

    name = "mm-r5"

    def __init__(self, model: str = "i2vec/MM-R5", backend: str = "transformers",
                 temperature: float = 0.3, max_new_tokens: int = 8192,
                 min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS,
                 device: str | None = None, dtype: str | None = "auto", attn_implementation: str | None = None,
                 base_url: str | None = None, api_key: str | None = None, timeout: float = 600.0,
                 retries: int = 2):
        self.temperature = float(temperature)
        self.max_new_tokens = int(max_new_tokens)
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self.backend = make_backend(backend, model=model, device=device, dtype=dtype,
                                    attn_implementation=attn_implementation, base_url=base_url,
                                    api_key=api_key, timeout=timeout, retries=retries)
        self.last_output: str = ""  # the model's raw reply to the latest query (for inspection)

    def messages(self, query: str, candidates: Sequence[Candidate]) -> list[Message]:
        return build_messages(query, candidate_images(candidates, "mm-r5"), self.min_pixels, self.max_pixels)

    def _rerank(self, query: str, candidates: list[Candidate]) -> list[Scored]:
        self.last_output = self.backend.generate(self.messages(query, candidates),
                                                 max_new_tokens=self.max_new_tokens,
                                                 temperature=self.temperature)
        order = parse_ranking(self.last_output, len(candidates))
        if order is None:
            log.warning("mm-r5: no readable <answer>[...]</answer> in the reply; keeping the input order")
            order = list(range(len(candidates)))
        return scored_from_order(candidates, order)

    def score(self, query: str, candidates: list[Candidate]) -> Sequence[float]:
        """Rank-derived scores (n for the first, 1 for the last)."""
        scored = self._rerank(query, candidates)
        by_id = {id(s.candidate): s.score for s in scored}
        return [by_id[id(c)] for c in candidates]

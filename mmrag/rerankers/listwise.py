"""Listwise machinery shared by RankGPT, FIRST, InsertRank, ReasonRank and ICR.

- ``parse_ranking``: read a ranking out of whatever a model printed, robustly.
- ``sliding_window_order``: RankGPT's back-to-front window pass, fixed for lists shorter than
  the window and for a head that the step does not divide (RankGPT's loop skips both).
- ``WindowReranker``: a reranker that orders windows of candidates and slides over the list.
"""

from __future__ import annotations

import re
import unicodedata
from abc import abstractmethod
from typing import Callable, Sequence, TypeVar

from mmrag.errors import ConfigError
from mmrag.rerankers.base import Reranker, scored_from_order
from mmrag.types import Candidate, Scored

T = TypeVar("T")

_NUM_ID = re.compile(r"\[\s*(\d+)\s*\]")
_LETTER_ID = re.compile(r"\[\s*([A-Za-z])\s*\]")


def letter_label(i: int) -> str:
    """0 → "A", 19 → "T"."""
    if not 0 <= i < 26:
        raise ConfigError("letter identifiers go from A to Z: use a window of at most 26")
    return chr(ord("A") + i)


def strip_reasoning(text: str) -> str:
    """The part after the last ``</think>``; nothing when a ``<think>`` was never closed."""
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    if "<think>" in text:  # generation stopped inside the reasoning: there is no answer yet
        return ""
    return text


def parse_ids(text: str, n: int, *, letters: bool = False) -> list[int]:
    """0-based ids in the order printed: ``[n]`` (or ``[A]``) tokens only, full-width digits
    read as ASCII, duplicates and out-of-range ids dropped. Missing ids are NOT appended."""
    text = unicodedata.normalize("NFKC", strip_reasoning(text))
    if letters:
        raw = [ord(m.upper()) - ord("A") for m in _LETTER_ID.findall(text)]
    else:
        raw = [int(m) - 1 for m in _NUM_ID.findall(text)]
    seen: set[int] = set()
    out: list[int] = []
    for i in raw:
        if 0 <= i < n and i not in seen:
            seen.add(i)
            out.append(i)
    return out


def complete(order: Sequence[int], n: int) -> list[int]:
    """``order`` followed by every id in ``range(n)`` it misses, in their previous order."""
    seen = set(order)
    return list(order) + [i for i in range(n) if i not in seen]


def parse_ranking(text: str, n: int, *, letters: bool = False) -> list[int]:
    """A full permutation of ``range(n)`` from a model's answer (see ``parse_ids``)."""
    return complete(parse_ids(text, n, letters=letters), n)


def window_spans(n: int, window: int, step: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` spans of a back-to-front pass; the last one always starts at 0."""
    if window < 1 or step < 1 or step > window:
        raise ConfigError(f"need 1 <= step <= window, got window={window} step={step}")
    if n <= 0:
        return []
    spans = []
    end = n
    start = max(0, end - window)
    while True:
        spans.append((start, end))
        if start == 0:
            return spans
        end -= step
        start = max(0, end - window)


def sliding_window_order(items: Sequence[T], window: int, step: int,
                         rank: Callable[[list[T]], Sequence[int]]) -> list[int]:
    """Indices of ``items`` after ranking each window (``rank`` returns local ids, maybe
    incomplete or repeated) from the back of the list to its front."""
    order = list(range(len(items)))
    for start, end in window_spans(len(items), window, step):
        chunk = order[start:end]
        local = rank([items[i] for i in chunk])
        clean = complete([i for i in dict.fromkeys(int(x) for x in local) if 0 <= i < len(chunk)], len(chunk))
        order[start:end] = [chunk[i] for i in clean]
    return order


def numbered_passages(passages: Sequence[str], labels: Sequence[str]) -> str:
    """``[label] text`` blocks separated by blank lines."""
    return "\n\n".join(f"[{label}] {p}" for label, p in zip(labels, passages))


def listwise_prompt(query: str, passages: Sequence[str], labels: Sequence[str]) -> str:
    """The RankGPT-style instruction for one window (ids ``[1]..`` or ``[A]..``)."""
    n = len(passages)
    a, b = labels[0], labels[1] if n > 1 else labels[0]
    return (
        f"I will provide you with {n} passages, each indicated by number identifier []. "
        f"Rank the passages based on their relevance to query: {query}.\n\n"
        f"{numbered_passages(passages, labels)}\n\n"
        f"Search query: {query}\n"
        f"Rank the {n} passages above from most to least relevant to the search query. "
        f"The output format should be [] > [], e.g., [{a}] > [{b}]. "
        "Answer with the ranking only, without any explanation."
    )


LISTWISE_SYSTEM = ("You are a search assistant that ranks passages by how well they answer a "
                   "user's query.")


class WindowReranker(Reranker):
    """Ranks windows of candidates with ``rank_window`` and slides back to front."""

    def __init__(self, window: int = 20, step: int = 10, max_words: int | None = 300):
        window_spans(1, window, step)  # validates
        self.window = window
        self.step = step
        self.max_words = max_words

    @abstractmethod
    def rank_window(self, query: str, candidates: list[Candidate]) -> Sequence[int]:
        """Local ids (0-based) of ``candidates``, best first; may be partial or repeat ids."""

    def _rerank(self, query: str, candidates: list[Candidate]) -> list[Scored]:
        order = sliding_window_order(candidates, self.window, self.step,
                                     lambda window: self.rank_window(query, window))
        return scored_from_order(candidates, order)

    def score(self, query: str, candidates: list[Candidate]) -> list[float]:
        """Rank-derived scores (n for the best, 1 for the last), in input order."""
        pos = {id(s.candidate): s.score for s in self._rerank(query, list(candidates))}
        return [pos[id(c)] for c in candidates]

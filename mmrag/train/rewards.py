"""Rewards of the RL recipes (Rank-R1, ReasonRank, MM-R5) as plain functions of a completion.

Rankings are 0-based positions into the window the prompt showed; ``relevance`` maps a position
to its graded label (absent = 0). The metrics here are training signals computed thousands of
times per run, so they are written out (and checked in the tests against ir-measures); the
evaluation of trained models still goes through ``mmrag.eval.trec`` (ir-measures).
"""

from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

from mmrag.rerankers.listwise import parse_ids

_THINK_ANSWER = re.compile(r"^\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*$", re.S)
_ANY_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_NUMBERS = re.compile(r"\d+")


def think_answer(text: str) -> str | None:
    """The answer body when ``text`` is exactly ``<think>…</think><answer>…</answer>``
    (whitespace around the parts allowed); None for anything else."""
    m = _THINK_ANSWER.match(text or "")
    if m is None or "<think>" in m.group(1) or "<answer>" in m.group(2):
        return None
    return m.group(2)


def format_reward(text: str) -> float:
    """R1-style format reward: 1 for ``<think>…</think><answer>…</answer>``, 0 otherwise."""
    return 1.0 if think_answer(text) is not None else 0.0


# --- ranking metrics on one window ---------------------------------------------------------
def dcg_at_k(order: Sequence[int], relevance: Mapping[int, int], k: int = 10) -> float:
    """DCG with linear gains (trec_eval's nDCG): sum of rel / log2(rank + 1) over the top k."""
    return sum(relevance.get(i, 0) / math.log2(r + 2) for r, i in enumerate(list(order)[:k]))


def ndcg_at_k(order: Sequence[int], relevance: Mapping[int, int], k: int = 10) -> float:
    """nDCG@k of ``order`` against every judged item in ``relevance``; 0 when none is relevant."""
    ideal = sorted((v for v in relevance.values() if v > 0), reverse=True)
    best = sum(g / math.log2(r + 2) for r, g in enumerate(ideal[:k]))
    return dcg_at_k(order, relevance, k) / best if best > 0 else 0.0


def recall_at_k(order: Sequence[int], relevance: Mapping[int, int], k: int = 10) -> float:
    """Share of the relevant items (label > 0) found in the top k; 0 when there are none."""
    relevant = {i for i, v in relevance.items() if v > 0}
    return len(relevant & set(list(order)[:k])) / len(relevant) if relevant else 0.0


def rbo(a: Sequence, b: Sequence, p: float = 0.9) -> float:
    """Extrapolated rank-biased overlap (Webber et al., 2010, RBO_ext for two lists of the same
    length): 1 for identical lists, 0 for disjoint ones; ``p`` weights the top."""
    if not 0 < p < 1:
        raise ValueError("rbo needs 0 < p < 1")
    depth = max(len(a), len(b))
    if depth == 0:
        return 1.0
    seen_a: set = set()
    seen_b: set = set()
    overlap = 0
    total = 0.0
    for d in range(1, depth + 1):
        x = a[d - 1] if d <= len(a) else None
        y = b[d - 1] if d <= len(b) else None
        if x is not None and x == y:
            overlap += 1
        else:
            overlap += (x is not None and x in seen_b) + (y is not None and y in seen_a)
        if x is not None:
            seen_a.add(x)
        if y is not None:
            seen_b.add(y)
        total += overlap / d * p ** d
    return overlap / depth * p ** depth + (1 - p) / p * total


def label_order(n: int, relevance: Mapping[int, int]) -> list[int]:
    """The ideal order of a window: by label, highest first; ties keep their input order."""
    return sorted(range(n), key=lambda i: -relevance.get(i, 0))


# --- Rank-R1 (setwise) ----------------------------------------------------------------------
def choice_reward(text: str, n: int, relevance: Mapping[int, int]) -> float:
    """1 when the document the completion picks (the first ``[k]`` of its answer, or of the text
    when there is no answer tag) is relevant; 0 for a wrong or missing pick."""
    found = _ANY_ANSWER.findall(text or "")
    ids = parse_ids(found[-1] if found else (text or ""), n)
    return 1.0 if ids and relevance.get(ids[0], 0) > 0 else 0.0


# --- ReasonRank (listwise, multi-view) ------------------------------------------------------
def reasonrank_reward(text: str, n: int, relevance: Mapping[int, int], *, k: int = 10,
                      recall_weight: float = 0.2, rbo_weight: float = 0.1, p: float = 0.9) -> float:
    """ReasonRank's multi-view ranking reward: nDCG@k + 0.2·Recall@k + 0.1·RBO(order, label order)
    for a well-formed answer that lists each of the ``n`` ids once; 0 for a well-formed answer
    with a wrong list; -1 (the format penalty) when the think/answer format is broken."""
    body = think_answer(text)
    if body is None:
        return -1.0
    numbers = [int(x) for x in _NUMBERS.findall(body)]
    if len(numbers) != n or set(numbers) != set(range(1, n + 1)):
        return 0.0
    order = [x - 1 for x in numbers]
    return (ndcg_at_k(order, relevance, k) + recall_weight * recall_at_k(order, relevance, k)
            + rbo_weight * rbo(order, label_order(n, relevance), p))


# --- MM-R5 (listwise over page images) ------------------------------------------------------
def template_reward(text: str, n: int) -> float:
    """MM-R5's template reward: 1 for ``<think>…</think><answer>[i, j, …]</answer>`` whose list
    holds every image id 1..n exactly once, 0 otherwise."""
    body = think_answer(text)
    if body is None:
        return 0.0
    body = body.strip()
    if not (body.startswith("[") and body.endswith("]")):
        return 0.0
    items = [x.strip() for x in body[1:-1].split(",")]
    if not all(x.isdigit() for x in items):
        return 0.0
    return 1.0 if sorted(int(x) for x in items) == list(range(1, n + 1)) else 0.0


def rerank_reward(text: str, n: int, relevance: Mapping[int, int]) -> float:
    """MM-R5's reranking reward, here the reciprocal rank of the first relevant image in the
    order the reranker reads from the completion (``mm_r5.parse_ranking``); 0 when unreadable."""
    from mmrag.rerankers.mm_r5 import parse_ranking

    order = parse_ranking(text or "", n)
    if order is None:
        return 0.0
    for r, i in enumerate(order, 1):
        if relevance.get(i, 0) > 0:
            return 1.0 / r
    return 0.0

"""Listwise parsing, sliding windows, setwise heapsort, fusion math: no model needed."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmrag.errors import ConfigError
from mmrag.rerankers.fusion import fuse, normalise, rrf_scores
from mmrag.rerankers.insertrank import format_scores
from mmrag.rerankers.listwise import parse_ranking, sliding_window_order, window_spans
from mmrag.rerankers.rank_r1 import heap_top, parse_choice
from mmrag.rerankers.reasonrank import neutralise_ids, parse_reasoned

# Outputs seen from real listwise rerankers (RankGPT/RankZephyr/Qwen reasoning models).
BAD_OUTPUTS = [
    ("[2] > [1] > [3]", 3, [1, 0, 2]),
    ("Passage 3 is about 1990 and 2 dogs. Ranking: [2] > [3]", 3, [1, 2, 0]),  # digits in prose
    ("[1] > [1] > [2] > [2]", 3, [0, 1, 2]),  # duplicates
    ("[3]", 4, [2, 0, 1, 3]),  # missing ids keep their order
    ("[7] > [0] > [2] > [12]", 4, [1, 0, 2, 3]),  # out of range (0 and > n)
    ("［２］ > ［１］", 2, [1, 0]),  # full-width brackets and digits
    ("[２] > [１] > [３]", 3, [1, 0, 2]),  # full-width digits only
    ("<think>maybe [3] > [1]</think>[2] > [1]", 3, [1, 0, 2]),  # reasoning before the answer
    ("<think>I think [3] is best because", 3, [0, 1, 2]),  # truncated reasoning: no answer
    ("", 3, [0, 1, 2]),
    ("I cannot rank these passages.", 2, [0, 1]),
    ("[ 2 ]>[ 1 ]", 2, [1, 0]),  # spaces inside brackets
    ("2 > 1 > 3", 3, [0, 1, 2]),  # bare numbers are not ids
]


@pytest.mark.parametrize("text,n,expected", BAD_OUTPUTS)
def test_parse_ranking_table(text: str, n: int, expected: list[int]) -> None:
    assert parse_ranking(text, n) == expected


def test_parse_letters() -> None:
    assert parse_ranking("[C] > [a] > [Z] > [C]", 3, letters=True) == [2, 0, 1]


REASONED = [
    ("<think>[1] looks good</think><answer>[3] > [2]</answer>", 3, [2, 1, 0]),
    ("<think>hmm</think> <answer>[2] > [1]", 3, [1, 0, 2]),  # unclosed answer tag
    ("<answer>[1]</answer> then <answer>[2] > [3]</answer>", 3, [1, 2, 0]),  # last answer wins
    ("<think>[3] > [2] cut off", 3, [0, 1, 2]),
    ("[2] > [3]", 3, [1, 2, 0]),  # no tags at all
]


@pytest.mark.parametrize("text,n,expected", REASONED)
def test_parse_reasoned_table(text: str, n: int, expected: list[int]) -> None:
    assert parse_reasoned(text, n) == expected


@pytest.mark.parametrize("text,n,expected", [
    ("<think>[1] or [2]?</think><answer>[2]</answer>", 3, 1),
    ("<think>no idea</think><answer>none</answer>", 3, 0),  # parse failure keeps the parent
    ("<think>[3] seems", 3, 0),
    ("<answer>[9]</answer>", 3, 0),
    ("[3]", 3, 2),
])
def test_parse_choice(text: str, n: int, expected: int) -> None:
    assert parse_choice(text, n) == expected


def test_neutralise_ids() -> None:
    assert neutralise_ids("see [12] and [ 3 ] but not [a]") == "see (12) and (3) but not [a]"


@pytest.mark.parametrize("n,window,step,expected", [
    (100, 20, 10, [(80 - 10 * i, 100 - 10 * i) for i in range(9)]),
    (5, 20, 10, [(0, 5)]),  # fewer candidates than the window
    (25, 20, 10, [(5, 25), (0, 15)]),  # head the step does not divide
    (0, 20, 10, []),
])
def test_window_spans(n: int, window: int, step: int, expected: list) -> None:
    spans = window_spans(n, window, step)
    assert spans == expected
    assert not spans or spans[-1][0] == 0


def test_window_spans_validation() -> None:
    with pytest.raises(ConfigError):
        window_spans(10, 5, 6)


def test_sliding_window_bubbles_best_to_top() -> None:
    # An oracle window ranker (by hidden relevance) must bring the global best to position 0
    # from any position, because windows overlap by window - step.
    relevance = [3, 9, 1, 7, 0, 5, 8, 2, 6, 4, 10, 11]
    order = sliding_window_order(relevance, 4, 2, lambda w: sorted(range(len(w)), key=lambda i: -w[i]))
    assert [relevance[i] for i in order][0] == max(relevance)
    assert sorted(order) == list(range(len(relevance)))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), window=st.integers(1, 12), data=st.data())
def test_sliding_window_is_permutation(n: int, window: int, data: st.DataObject) -> None:
    step = data.draw(st.integers(1, window))
    junk = data.draw(st.lists(st.integers(-5, 20), max_size=15))
    order = sliding_window_order(list(range(n)), window, step, lambda w: junk)
    assert sorted(order) == list(range(n))


def test_heap_top_matches_sort_and_stops_early() -> None:
    rng = np.random.default_rng(0)
    rel = rng.permutation(60).tolist()
    calls = []

    def best_of(group: list[int]) -> int:
        calls.append(len(group))
        return max(range(len(group)), key=lambda j: rel[group[j]])

    top = heap_top(60, 19, 10, best_of)
    assert top == sorted(range(60), key=lambda i: -rel[i])[:10]
    assert max(calls) <= 20  # parent + 19 children per prompt
    full = []
    heap_top(60, 19, 60, lambda g: full.append(1) or max(range(len(g)), key=lambda j: rel[g[j]]))
    assert len(calls) < len(full)  # stopping after top-k saves comparisons


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 50), children=st.integers(1, 20), k=st.integers(1, 60), data=st.data())
def test_heap_top_with_broken_comparator(n: int, children: int, k: int, data: st.DataObject) -> None:
    picks = data.draw(st.lists(st.integers(-3, 25), min_size=1, max_size=10))
    it = itertools.cycle(picks)  # a chain heap (children=1) can ask for >1000 comparisons
    top = heap_top(n, children, k, lambda g: next(it))
    assert len(top) == min(n, k) and len(set(top)) == len(top)
    assert all(0 <= i < n for i in top)


def test_format_scores() -> None:
    assert format_scores([12.3456, 2.0], "raw", 2.0, 12.3456) == ["12.346", "2.000"]
    assert format_scores([12.0, 2.0, 7.0], "minmax", 2.0, 12.0) == ["1.000", "0.000", "0.500"]
    assert format_scores([12.0, 7.0], "percent", 2.0, 12.0) == ["100.0", "50.0"]


def test_fusion_math() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([10.0, 0.0, 5.0, 5.0])
    za = (a - a.mean()) / a.std()
    zb = (b - b.mean()) / b.std()
    assert np.allclose(fuse([a, b], [0.3, 0.7]), 0.3 * za + 0.7 * zb)
    assert np.allclose(normalise(a, "minmax"), [0, 1 / 3, 2 / 3, 1])
    assert np.allclose(normalise(np.ones(3), "zscore"), 0)
    assert np.allclose(rrf_scores(b, 60), [1 / 61, 1 / 64, 1 / 62, 1 / 63])
    assert np.allclose(fuse([a, b], [1, 1], method="rrf"), rrf_scores(a, 60) + rrf_scores(b, 60))

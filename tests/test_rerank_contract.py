"""The permutation guarantee of the Reranker base, whatever a backend returns."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mmrag.rerankers.base import Reranker, ensure_permutation, scored_from_order, scored_from_scores
from mmrag.types import Candidate, Scored


def _cands(n: int) -> list[Candidate]:
    return [Candidate(id=f"d{i}", text=f"text {i}", score=float(n - i)) for i in range(n)]


@given(st.integers(0, 30), st.lists(st.integers(-5, 40), max_size=60))
def test_scored_from_order_is_a_permutation(n: int, order: list[int]) -> None:
    cands = _cands(n)
    out = scored_from_order(cands, order)
    assert sorted(s.id for s in out) == sorted(c.id for c in cands)
    valid = list(dict.fromkeys(i for i in order if 0 <= i < n))
    assert [s.id for s in out[: len(valid)]] == [f"d{i}" for i in valid]
    rest = [s.id for s in out[len(valid):]]
    assert rest == [f"d{i}" for i in range(n) if i not in valid]  # missing ones keep their order
    assert [s.score for s in out] == sorted((s.score for s in out), reverse=True)


@given(st.lists(st.floats(allow_nan=True, allow_infinity=False, width=32), min_size=1, max_size=30))
def test_scored_from_scores_sorts_stably(scores: list[float]) -> None:
    cands = _cands(len(scores))
    out = scored_from_scores(cands, scores)
    assert sorted(s.id for s in out) == sorted(c.id for c in cands)
    got = [s.score for s in out]
    assert got == sorted(got, reverse=True)


class _Broken(Reranker):
    """A backend that loses, duplicates and invents candidates."""

    def _rerank(self, query: str, candidates: list[Candidate]) -> list[Scored]:
        stranger = Candidate(id="x", text="not an input")
        return [Scored(candidates[-1], 5.0), Scored(candidates[-1], 4.0), Scored(stranger, 3.0)]

    def score(self, query: str, candidates: list[Candidate]) -> list[float]:
        return [0.0] * len(candidates)


@given(st.integers(1, 25), st.one_of(st.none(), st.integers(1, 30)))
def test_base_repairs_a_broken_backend(n: int, top_k: int | None) -> None:
    cands = _cands(n)
    out = _Broken().rerank("q", cands, top_k=top_k)
    full = _Broken().rerank("q", cands)
    assert [s.id for s in full] == [cands[-1].id] + [c.id for c in cands[:-1]]
    assert [s.rank for s in full] == list(range(1, n + 1))
    assert out == full[: top_k or n]


def test_ensure_permutation_keeps_scores_descending_for_appended() -> None:
    cands = _cands(3)
    out = ensure_permutation(cands, [Scored(cands[1], 0.5)])
    assert [s.id for s in out] == ["d1", "d0", "d2"]
    assert out[0].score > out[1].score > out[2].score

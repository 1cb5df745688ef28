"""Prefetch: a thread runs an iterator ahead of its consumer (ingest keeps going during commits)."""

from __future__ import annotations

import time

import pytest

from mmrag.engines.prefetch import Prefetch


def test_every_item_in_order() -> None:
    assert list(Prefetch(iter(range(100)), depth=3)) == list(range(100))
    assert list(Prefetch(iter([]), depth=3)) == []


def test_the_producer_runs_ahead_up_to_depth() -> None:
    made: list[int] = []

    def gen():
        for i in range(10):
            made.append(i)
            yield i

    it = Prefetch(gen(), depth=4)
    assert next(it) == 0
    time.sleep(0.3)  # the consumer is busy (a commit encoding): the producer fills the queue
    assert 4 <= len(made) <= 6  # depth queued, one taken, one waiting to be put
    assert list(it) == list(range(1, 10))


def test_a_producer_error_is_raised_in_the_consumer() -> None:
    def gen():
        yield 1
        raise RuntimeError("worker pool broke")

    it = Prefetch(gen(), depth=2)
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="worker pool broke"):
        next(it)


def test_close_stops_the_producer_and_closes_the_iterator_in_its_thread() -> None:
    closed: list[bool] = []

    def gen():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)  # ingest_many kills its workers here

    it = Prefetch(gen(), depth=2)
    assert next(it) == 0
    it.close(timeout=5)
    assert closed == [True]
    assert not it._thread.is_alive()

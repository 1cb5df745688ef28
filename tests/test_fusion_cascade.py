"""The fusion cascade: cheap columns pick the top N, only those get the expensive components."""

from __future__ import annotations

import numpy as np
import pytest

from mmrag.errors import ConfigError
from mmrag.rerankers.fusion import cascade_order, fuse


def test_no_depth_is_a_plain_fusion() -> None:
    rng = np.random.default_rng(0)
    cols = [rng.normal(size=12) for _ in range(3)]
    w = [0.5, 0.2, 0.3]
    order, scores = cascade_order(cols, w, [False, True, True], None)
    fused = fuse(cols, w)
    assert order.tolist() == np.argsort(-fused, kind="stable").tolist()
    assert np.allclose(scores, fused[order])
    order20, _ = cascade_order(cols, w, [False, True, True], 20)  # deeper than the list: the same
    assert order20.tolist() == order.tolist()


def test_cascade_by_hand() -> None:
    expensive = np.array([0.0, 9.0, 5.0, 1.0, 100.0])  # candidate 4 would win on it alone
    cheap = np.array([5.0, 4.0, 3.0, 2.0, 1.0])  # ... but the cheap column ranks it last
    order, scores = cascade_order([expensive, cheap], [1.0, 0.0001], [False, True], 3)
    # top 3 by the cheap column are 0, 1, 2; among them the expensive one orders 1, 2, 0
    assert order.tolist() == [1, 2, 0, 3, 4]
    assert np.all(np.diff(scores) < 0)  # scores agree with the order, the rest below the top
    nan_outside = expensive.copy()
    nan_outside[[3, 4]] = np.nan  # rows the cascade never scored are never read
    order_nan, scores_nan = cascade_order([nan_outside, cheap], [1.0, 0.0001], [False, True], 3)
    assert order_nan.tolist() == order.tolist() and np.allclose(scores_nan, scores)


def test_cascade_options_are_checked() -> None:
    from mmrag.rerankers import load

    with pytest.raises(ConfigError, match="cascade_depth"):
        load("fusion", rerankers=[], first_stage_weight=1.0, cascade_depth=0)
    with pytest.raises(ConfigError, match="cascade_first"):
        load("fusion", rerankers=[], first_stage_weight=1.0, cascade_depth=5, cascade_first=["splade"])


def test_the_default_pair_cascades_at_the_learned_depth() -> None:
    from mmrag.rerankers import load
    from mmrag.rerankers.fusion import LEARNED_CASCADE

    assert load("fusion").cascade_depth == LEARNED_CASCADE[("bi-encoder", "splade")]
    assert load("fusion", runtime="onnx").cascade_depth == LEARNED_CASCADE[("bi-encoder", "splade")]
    assert load("fusion", weights=[0.5, 0.5]).cascade_depth is None  # own weights: every candidate
    assert load("fusion", cascade_depth=None).cascade_depth is None

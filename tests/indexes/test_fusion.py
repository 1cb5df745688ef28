import numpy as np
import pytest

from mmrag.indexes import fusion


def test_minmax_is_weighted_mean_of_rescaled_channels():
    s = {"text": np.array([0.2, 0.8, 0.5]), "bm25": np.array([10.0, 0.0, 5.0])}
    got = fusion.minmax(s, {"text": 3.0, "bm25": 1.0})
    text = (s["text"] - 0.2) / 0.6
    bm25 = s["bm25"] / 10.0
    np.testing.assert_allclose(got, (3 * text + bm25) / 4)


def test_minmax_constant_channel_adds_nothing():
    got = fusion.minmax({"a": np.array([1.0, 1.0]), "b": np.array([0.0, 2.0])}, {})
    np.testing.assert_allclose(got, [0.0, 0.5])


def test_rrf_matches_formula():
    s = {"a": np.array([3.0, 2.0, 1.0]), "b": np.array([1.0, 3.0, 2.0])}
    got = fusion.rrf(s, {"b": 2.0}, k=60)
    want = [1 / 61 + 2 / 63, 1 / 62 + 2 / 61, 1 / 63 + 2 / 62]
    np.testing.assert_allclose(got, want)


def test_single_channel_keeps_raw_scores_and_negative_weight_is_refused():
    np.testing.assert_allclose(fusion.fuse({"a": np.array([5.0, 1.0])}, "minmax", {}), [5.0, 1.0])
    with pytest.raises(ValueError):
        fusion.minmax({"a": np.array([1.0]), "b": np.array([2.0])}, {"a": -1})

"""Negative mining: wrong-modality items from the top, right-modality ones from the band, never a positive."""

from __future__ import annotations

import numpy as np

from mmrag.train.negatives import NegativeConfig, mine, random_negatives

# items 0-5 are images, 6-9 texts; query 0 wants image 2, query 1 wants text 7
MODS = ["image"] * 6 + ["text"] * 4
SCORES = np.array([
    [0.1, 0.5, 0.9, 0.8, 0.7, 0.6, 0.95, 0.85, 0.2, 0.3],
    [0.9, 0.2, 0.3, 0.1, 0.0, 0.4, 0.5, 0.99, 0.6, 0.7],
])


def test_modality_aware_negatives_follow_the_definition():
    cfg = NegativeConfig(wrong_modality=2, same_modality=2, skip=1, band=2, top_k=10)
    negs = mine(SCORES, [{2}, {7}], MODS, cfg, np.random.default_rng(0))
    # query 0: wrong-modality (texts) by rank: 6 (0.95), 7 (0.85); image ranking without the positive: 3,4,5,1,0
    assert negs[0][:2] == [6, 7]
    assert set(negs[0][2:]) == {4, 5}  # skip rank 0 (item 3), band of 2
    # query 1: wrong modality (images): 0 (0.9), 5 (0.4); text ranking w/o positive: 9, 8, 6 → band after skip: 8, 6
    assert negs[1][:2] == [0, 5]
    assert set(negs[1][2:]) == {8, 6}


def test_top_k_limits_wrong_modality_and_positives_are_never_negatives():
    cfg = NegativeConfig(wrong_modality=3, same_modality=1, skip=0, band=1, top_k=1)
    negs = mine(SCORES, [{2, 3}, {7}], MODS, cfg, np.random.default_rng(0))
    assert negs[0][:-1] == [6]  # the top-1 item is the only wrong-modality candidate at depth 1
    assert 2 not in negs[0] and 3 not in negs[0] and negs[0][-1] == 4


def test_random_negatives_exclude_positives_and_vary():
    rng = np.random.default_rng(0)
    negs = random_negatives(10, [{0, 1}] * 200, 3, rng)
    flat = np.array(negs).ravel()
    assert not np.isin(flat, [0, 1]).any() and set(flat) == set(range(2, 10))
    assert all(len(set(n)) == 3 for n in negs)
    cfg = NegativeConfig(kind="random", wrong_modality=1, same_modality=1)
    assert all(len(n) == 2 for n in mine(None, [{0}, {3}], MODS, cfg, rng))


class _BagOfWords:
    """A minimal trainable encoder (hashed bag of words → linear map) to test the loop's schedule."""

    name, dim, device = "bow", 8, "cpu"

    def __init__(self):
        import torch

        torch.manual_seed(0)
        self.torch_model = torch.nn.Linear(64, 8, bias=False)
        self.identity = {"name": self.name}

    def train_embed(self, texts, images, *, is_query=False):
        import zlib

        import torch

        x = torch.zeros(len(texts), 64)
        for i, t in enumerate(texts):
            for w in (t or "").split():
                x[i, zlib.crc32(w.encode()) % 64] += 1.0
        return torch.nn.functional.normalize(self.torch_model(x), dim=-1)

    def save_trained(self, out):
        raise AssertionError("not saved in this test")


def test_loop_warms_up_with_random_negatives_then_mines(monkeypatch):
    import mmrag.train.loop as loop
    from mmrag.train.data import Item, Pair, Query

    kinds = []
    real_mine = loop.mine

    def spy(scores, positives, modalities, cfg, rng, positive_of=None):
        kinds.append((cfg.kind, scores is None))
        return real_mine(scores, positives, modalities, cfg, rng, positive_of)

    monkeypatch.setattr(loop, "mine", spy)
    items = [Item(f"t{i}", text=f"topic{i} words here") for i in range(12)]
    pairs = [Pair(Query(text=f"about topic{i}"), f"t{i}") for i in range(12)]
    cfg = loop.TrainConfig(epochs=3, batch_size=4, lr=0.05, warmup_epochs=1,
                           negatives=NegativeConfig(wrong_modality=0, same_modality=2, skip=0, band=3))
    report = loop.train_encoder(_BagOfWords(), items, pairs, cfg, progress=False)
    assert kinds == [("random", True), ("modality", False), ("modality", False)]
    assert report["history"][-1]["loss"] < report["history"][0]["loss"]
    assert report["trainable_params"] == 64 * 8

"""A small synthetic ranking task a cross-encoder can visibly learn or fail: match both query words.

A query names a colour and an animal ("red cat"); its one relevant passage mentions both; the hard
negatives share one of the two words ("red dog", "blue cat") and the easy ones neither. Held-out
queries are colour-animal pairs never seen in training, so a model must compose, not memorise.
"""

from __future__ import annotations

import itertools

import numpy as np

from mmrag.train.ranking_types import RankingExample

COLOURS = ["red", "green", "blue", "yellow", "black", "white", "pink", "brown", "grey", "orange"]
ANIMALS = ["cat", "dog", "owl", "fox", "cow", "pig", "bee", "ant", "rat", "bat"]
FILLERS = ["the", "a", "small", "big", "old", "young", "sits", "runs", "here", "there"]


def _passage(colour: str, animal: str, rng: np.random.Generator) -> str:
    pre, post = rng.choice(FILLERS, size=2), rng.choice(FILLERS, size=2)
    return f"{pre[0]} {pre[1]} {colour} {animal} {post[0]} {post[1]}"


def make_task(seed: int = 0, heldout: float = 0.3, candidates: int = 8) -> tuple[list[RankingExample], list[RankingExample]]:
    """(train, test) examples over disjoint colour-animal pairs; candidates in random order."""
    rng = np.random.default_rng(seed)
    pairs = list(itertools.product(COLOURS, ANIMALS))
    order = rng.permutation(len(pairs))
    n_test = int(len(pairs) * heldout)
    split = {"test": [pairs[i] for i in order[:n_test]], "train": [pairs[i] for i in order[n_test:]]}
    out = {}
    for name, chosen in split.items():
        examples = []
        for n, (colour, animal) in enumerate(chosen):
            cands = [("pos", _passage(colour, animal, rng))]
            others_c = [c for c in COLOURS if c != colour]
            others_a = [a for a in ANIMALS if a != animal]
            for k in range(candidates - 1):
                kind = k % 3
                c = colour if kind == 0 else str(rng.choice(others_c))
                a = animal if kind == 1 else str(rng.choice(others_a))
                cands.append((f"neg{k}", _passage(c, a, rng)))
            perm = rng.permutation(len(cands))
            examples.append(RankingExample(f"{name}{n}", f"{colour} {animal}", [cands[i] for i in perm], {"pos": 1}))
        out[name] = examples
    return out["train"], out["test"]

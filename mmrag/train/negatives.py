"""Negative sampling for contrastive fine-tuning: modality-aware hard negatives, or random ones.

Modality-aware mining (after MM-Embed, Lin et al. 2024): with the current model, rank every
item for each query, then take (a) items of the *wrong* modality that rank high (they teach the
model which modality the query asks for) and (b) items of the *right* modality that are not the
positive, drawn from a rank band below the very top (ranks ``skip`` .. ``skip + band`` among
same-modality items), since the very top is where unlabelled true positives hide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class NegativeConfig:
    kind: str = "modality"  # modality | random
    wrong_modality: int = 2  # wrong-modality items per query, taken from the top of the ranking
    same_modality: int = 2  # right-modality items per query, sampled from the band
    skip: int = 1  # same-modality ranks skipped at the top (false-negative guard)
    band: int = 10  # width of the same-modality band after the skipped ranks
    top_k: int = 100  # depth of the retrieval the wrong-modality negatives come from


def mine(scores: np.ndarray | None, positives: list[set[int]], modalities: list[str], cfg: NegativeConfig,
         rng: np.random.Generator, positive_of: list[int] | None = None) -> list[list[int]]:
    """Negative item indices per query from a (queries, items) score matrix.

    ``positives[q]`` holds every item that must not be a negative for query q (its positives,
    the query itself when it is also an item); ``positive_of[q]`` is the labelled positive whose
    modality the query asks for (default: the smallest index in ``positives[q]``).
    """
    if cfg.kind == "random":
        return random_negatives(len(modalities), positives, cfg.wrong_modality + cfg.same_modality, rng)
    mods = np.asarray(modalities)
    positive_of = positive_of if positive_of is not None else [min(p) for p in positives]
    order = np.argsort(-scores, axis=1, kind="stable")
    out = []
    for q, pos in enumerate(positives):
        ranked = order[q]
        ranked = ranked[~np.isin(ranked, list(pos))]
        same = mods[ranked] == mods[positive_of[q]]
        top = ranked[: cfg.top_k]
        wrong = top[~same[: cfg.top_k]][: cfg.wrong_modality]
        pool = ranked[same][cfg.skip: cfg.skip + cfg.band]
        take = min(cfg.same_modality, len(pool))
        sampled = rng.choice(pool, size=take, replace=False) if take else np.zeros(0, dtype=int)
        out.append([int(i) for i in np.concatenate([wrong, sampled])])
    return out


def random_negatives(n_items: int, positives: list[set[int]], count: int,
                     rng: np.random.Generator) -> list[list[int]]:
    """``count`` uniformly drawn non-positive items per query (the baseline)."""
    out = []
    for pos in positives:
        allowed = np.setdiff1d(np.arange(n_items), list(pos))
        out.append([int(i) for i in rng.choice(allowed, size=min(count, len(allowed)), replace=False)])
    return out

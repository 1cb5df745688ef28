"""Losses of the supervised recipes (FIRST) as plain torch functions.

``weighted_ranknet``: FIRST's learning-to-rank term over the first identifier's logits;
``causal_lm_loss``: next-token cross-entropy on the labelled (not -100) positions.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def weighted_ranknet(scores: Any, order: Sequence[int], labels: Mapping[int, int] | None = None) -> Any:
    """FIRST's weighted RankNet: sum over pairs ranked i < j in ``order`` (1-based ranks) of
    ``1/(i+j) * log(1 + exp(s_j - s_i))``, so mistakes near the top cost most.

    ``scores``: 1-D tensor of identifier logits (position = candidate); ``order``: candidate
    positions best first. With ``labels``, pairs of equal label are skipped (qrels say nothing
    about their order); without, every pair of ``order`` counts, as with a teacher ranking.
    """
    import torch
    import torch.nn.functional as F

    idx = torch.as_tensor(list(order), device=scores.device, dtype=torch.long)
    s = scores[idx]
    m = len(order)
    rank = torch.arange(1, m + 1, device=scores.device, dtype=scores.dtype)
    weight = 1.0 / (rank[:, None] + rank[None, :])
    keep = torch.triu(torch.ones(m, m, dtype=torch.bool, device=scores.device), diagonal=1)
    if labels is not None:
        lab = torch.tensor([labels.get(int(i), 0) for i in order], device=scores.device)
        keep &= lab[:, None] != lab[None, :]
    diff = s[None, :] - s[:, None]  # [i, j] = s_j - s_i
    return (F.softplus(diff) * weight)[keep].sum()


def causal_lm_loss(logits: Any, labels: Any, ignore_index: int = -100) -> Any:
    """Mean next-token cross-entropy: position t predicts ``labels[t + 1]``; ``ignore_index`` skipped."""
    import torch.nn.functional as F

    shift_logits = logits[..., :-1, :].reshape(-1, logits.shape[-1]).float()
    shift_labels = labels[..., 1:].reshape(-1)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=ignore_index)

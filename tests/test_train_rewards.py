"""Rewards and losses of the training recipes against independent computations on small tables."""

from __future__ import annotations

import math

import pytest

from mmrag.train import rewards as R


def _ir_measure(measure: str, order: list[int], relevance: dict[int, int]) -> float:
    import ir_measures

    qrels = {"q": {f"d{i}": v for i, v in relevance.items()}}
    run = {"q": {f"d{i}": float(len(order) - r) for r, i in enumerate(order)}}
    return ir_measures.calc_aggregate([ir_measures.parse_measure(measure)], qrels, run)[ir_measures.parse_measure(measure)]


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1, 0], [3, 0, 6, 5, 1, 2, 7, 4],
                                   [5, 3, 0, 1, 2, 4, 6, 7]])
def test_ndcg_and_recall_match_ir_measures(order):
    relevance = {0: 2, 3: 1, 5: 1, 7: 3}
    for k in (3, 10):
        assert R.ndcg_at_k(order, relevance, k) == pytest.approx(_ir_measure(f"nDCG@{k}", order, relevance))
        assert R.recall_at_k(order, relevance, k) == pytest.approx(_ir_measure(f"R@{k}", order, relevance))


def test_ndcg_of_a_known_permutation():
    # one relevant item at rank 3 of 5: DCG = 1/log2(4) = 0.5, ideal = 1
    assert R.ndcg_at_k([4, 1, 0, 2, 3], {0: 1}) == pytest.approx(0.5)
    assert R.ndcg_at_k([0, 1], {}) == 0.0


def test_rbo_by_hand():
    assert R.rbo([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)
    assert R.rbo([0, 1], [2, 3]) == pytest.approx(0.0)
    # X1=0, X2=2, X3=3: 3/3*p^3 + (1-p)/p*(0 + 2/2*p^2 + 3/3*p^3) = 0.729 + (0.81+0.729)/9 = 0.9
    assert R.rbo([0, 1, 2], [1, 0, 2], p=0.9) == pytest.approx(0.9)
    # swapping the last two hurts less than swapping the first two
    assert R.rbo([0, 1, 2], [0, 2, 1]) > R.rbo([0, 1, 2], [1, 0, 2])


def test_format_reward_and_its_penalty():
    assert R.format_reward("<think>the second mentions gold</think> <answer>[2]</answer>") == 1.0
    assert R.format_reward("  <think>x</think>\n<answer>[2]</answer>\n") == 1.0
    for bad in ["<answer>[2]</answer>", "<think>x</think>[2]", "[2]", "<think>x</think><answer>[2]",
                "<think>x</think><answer>[2]</answer> trailing words", "<think><think>x</think><answer>1</answer>"]:
        assert R.format_reward(bad) == 0.0, bad


def test_choice_reward_reads_the_first_pick():
    labels = {1: 1}
    assert R.choice_reward("<think>..</think><answer>[2]</answer>", 4, labels) == 1.0
    assert R.choice_reward("<think>..</think><answer>[1]</answer>", 4, labels) == 0.0
    assert R.choice_reward("[2] is best", 4, labels) == 1.0  # no tags: the reranker still reads [2]
    assert R.choice_reward("<answer>[9]</answer>", 4, labels) == 0.0  # out of range: no pick
    assert R.choice_reward("nothing", 4, labels) == 0.0


def test_reasonrank_reward_views_and_penalties():
    relevance = {2: 1, 0: 1}
    text = "<think>2 and 0 mention it</think><answer>[3] > [1] > [2] > [4]</answer>"
    order = [2, 0, 1, 3]
    expected = (R.ndcg_at_k(order, relevance) + 0.2 * R.recall_at_k(order, relevance)
                + 0.1 * R.rbo(order, [0, 2, 1, 3]))
    assert R.reasonrank_reward(text, 4, relevance) == pytest.approx(expected)
    assert R.ndcg_at_k(order, relevance) == pytest.approx(1.0)
    assert R.reasonrank_reward("[3] > [1] > [2] > [4]", 4, relevance) == -1.0  # malformed: the penalty
    assert R.reasonrank_reward("<think>x</think><answer>[3] > [1]</answer>", 4, relevance) == 0.0  # ids missing
    assert R.reasonrank_reward("<think>x</think><answer>[3] > [3] > [2] > [4]</answer>", 4, relevance) == 0.0
    worse = "<think>x</think><answer>[4] > [2] > [1] > [3]</answer>"
    assert R.reasonrank_reward(worse, 4, relevance) < R.reasonrank_reward(text, 4, relevance)


def test_mm_r5_template_and_rerank_rewards():
    good = "<think>image 2 shows the table</think><answer>[2, 1, 3]</answer>"
    assert R.template_reward(good, 3) == 1.0
    assert R.template_reward("<think>x</think><answer>[2, 1]</answer>", 3) == 0.0  # an id missing
    assert R.template_reward("<think>x</think><answer>2, 1, 3</answer>", 3) == 0.0  # no list
    assert R.template_reward("<answer>[2, 1, 3]</answer>", 3) == 0.0  # no reasoning
    assert R.rerank_reward(good, 3, {1: 1}) == 1.0
    assert R.rerank_reward(good, 3, {2: 1}) == pytest.approx(1 / 3)
    assert R.rerank_reward("no answer", 3, {1: 1}) == 0.0


def test_weighted_ranknet_by_hand():
    torch = pytest.importorskip("torch")
    from mmrag.train.losses import weighted_ranknet

    s = torch.tensor([2.0, 0.5, 1.0], requires_grad=True)
    order = [0, 2, 1]  # ranks: item0 -> 1, item2 -> 2, item1 -> 3

    def term(w, hi, lo):
        return w * math.log1p(math.exp(lo - hi))

    every = term(1 / 3, 2.0, 1.0) + term(1 / 4, 2.0, 0.5) + term(1 / 5, 1.0, 0.5)
    loss = weighted_ranknet(s, order)
    assert float(loss.detach()) == pytest.approx(every, rel=1e-6)
    # with labels, pairs of equal label (items 2 and 1, both 0) do not count
    assert float(weighted_ranknet(s, order, {0: 1}).detach()) == pytest.approx(term(1 / 3, 2.0, 1.0) + term(1 / 4, 2.0, 0.5),
                                                                      rel=1e-6)
    loss.backward()
    assert s.grad[0] < 0 < s.grad[1]  # the top item is pushed up, the last one down


def test_causal_lm_loss_by_hand():
    torch = pytest.importorskip("torch")
    from mmrag.train.losses import causal_lm_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 4, 5, generator=g)
    labels = torch.tensor([[-100, 3, -100, 1]])
    logp = torch.log_softmax(logits, -1)
    by_hand = -(logp[0, 0, 3] + logp[0, 2, 1]) / 2  # position t predicts labels[t + 1]
    assert float(causal_lm_loss(logits, labels)) == pytest.approx(float(by_hand), rel=1e-6)

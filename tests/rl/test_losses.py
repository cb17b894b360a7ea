import math

import pytest
import torch

from srft.rl.losses import (
    a2c_policy_loss,
    aggregate,
    clipped_value_loss,
    dpo_loss,
    grpo_policy_loss,
    ppo_policy_loss,
)


def test_ppo_loss_clips_a_large_ratio_for_a_positive_advantage():
    # ratio e^0.5 = 1.6487 > 1.2 with A = 1: min(1.6487, 1.2) * A -> loss -1.2
    new = torch.tensor([[0.5]])
    old = torch.tensor([[0.0]])
    out = ppo_policy_loss(new, old, torch.tensor([[1.0]]), torch.ones(1, 1), clip_range=0.2)
    assert out.loss.item() == pytest.approx(-1.2)
    assert out.clip_fraction == 1.0
    # k3 estimator: (r - 1) - log r = 0.6487 - 0.5
    assert out.approx_kl == pytest.approx(math.exp(0.5) - 1 - 0.5, rel=1e-5)


def test_ppo_loss_keeps_the_pessimistic_term_for_a_negative_advantage():
    # ratio e^0.5 with A = -1: max(-A r, -A clip(r)) = max(1.6487, 1.2) = 1.6487, unclipped
    out = ppo_policy_loss(
        torch.tensor([[0.5]]), torch.zeros(1, 1), torch.tensor([[-1.0]]), torch.ones(1, 1), 0.2
    )
    assert out.loss.item() == pytest.approx(math.exp(0.5), rel=1e-6)
    assert out.clip_fraction == 0.0


def test_ppo_loss_averages_over_generated_tokens_only():
    # token 1: ratio 1, A = 2 -> -2; token 2 is padding
    out = ppo_policy_loss(
        torch.zeros(1, 2),
        torch.zeros(1, 2),
        torch.tensor([[2.0, 50.0]]),
        torch.tensor([[1.0, 0.0]]),
        0.2,
    )
    assert out.loss.item() == pytest.approx(-2.0)


def test_a2c_loss_is_minus_advantage_times_logprob():
    # -(1 * -0.5 + 2 * -1.0) / 2 = 1.25
    loss = a2c_policy_loss(
        torch.tensor([[-0.5, -1.0]]), torch.tensor([[1.0, 2.0]]), torch.ones(1, 2)
    ).loss
    assert loss.item() == pytest.approx(1.25)


def test_value_loss_by_hand():
    # new 2.0, old 1.0, return 3.0, clip 0.5: unclipped (2-3)^2 = 1, clipped (1.5-3)^2 = 2.25
    # -> 0.5 * max = 1.125, clipped side chosen
    loss, fraction = clipped_value_loss(
        torch.tensor([[2.0]]), torch.tensor([[1.0]]), torch.tensor([[3.0]]), torch.ones(1, 1), 0.5
    )
    assert loss.item() == pytest.approx(1.125)
    assert fraction == 1.0
    unclipped, _ = clipped_value_loss(
        torch.tensor([[2.0]]), torch.tensor([[1.0]]), torch.tensor([[3.0]]), torch.ones(1, 1), None
    )
    assert unclipped.item() == pytest.approx(0.5)


PER_TOKEN = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize(
    "how, max_tokens, expected",
    [
        ("token", None, (1 + 2 + 3) / 3),
        ("sequence", None, ((1 + 2) / 2 + 3) / 2),
        ("constant", None, (1 + 2 + 3) / (2 * 3)),
        ("constant", 4, (1 + 2 + 3) / (2 * 4)),
    ],
)
def test_aggregations_by_hand(how, max_tokens, expected):
    assert aggregate(PER_TOKEN, MASK, how, max_tokens).item() == pytest.approx(expected)


def test_grpo_loss_reduces_per_response_or_per_token():
    # ratio 1: per token -A, so (-1, -1) for the first response and (2) for the second
    logprobs = torch.zeros(2, 2)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    advantages = torch.tensor([[1.0, 1.0], [-2.0, -2.0]])
    out = grpo_policy_loss(logprobs, logprobs, None, advantages, mask, 0.2, kl_coef=0.1)
    assert out.loss.item() == pytest.approx((-1 + 2) / 2)
    assert out.kl_to_reference == 0.0
    out = grpo_policy_loss(logprobs, logprobs, None, advantages, mask, 0.2, 0.1, "token")
    assert out.loss.item() == pytest.approx((-1 - 1 + 2) / 3)


def test_grpo_loss_adds_the_k3_kl_to_the_reference():
    # pi(a) 0.5, ref(a) 0.25 at every token: k3 = 0.5 - log 0.5 - 1 = 0.19315
    logprobs = torch.full((2, 2), math.log(0.5))
    ref = torch.full((2, 2), math.log(0.25))
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    advantages = torch.tensor([[1.0, 1.0], [-2.0, -2.0]])
    out = grpo_policy_loss(logprobs, logprobs, ref, advantages, mask, 0.2, kl_coef=0.1)
    k3 = 0.5 - math.log(0.5) - 1
    assert out.kl_to_reference == pytest.approx(k3)
    assert out.loss.item() == pytest.approx((-1 + 2) / 2 + 0.1 * k3)


def test_grpo_loss_clips_as_ppo_does():
    out = grpo_policy_loss(
        torch.tensor([[0.5]]),
        torch.zeros(1, 1),
        None,
        torch.tensor([[1.0]]),
        torch.ones(1, 1),
        0.2,
        0.0,
    )
    assert out.loss.item() == pytest.approx(-1.2)
    assert out.clip_fraction == 1.0


def test_dpo_loss_by_hand():
    # pair 1: implicit rewards 0.5 * (-1 + 2) = 0.5 and 0.5 * (-3 + 2) = -0.5, margin 1,
    # loss log(1 + e^-1); pair 2: margin 0, loss log 2, not counted as right
    out = dpo_loss(
        torch.tensor([-1.0, -2.0]),
        torch.tensor([-3.0, -2.0]),
        torch.tensor([-2.0, -2.0]),
        torch.tensor([-2.0, -2.0]),
        beta=0.5,
    )
    assert out.loss.item() == pytest.approx((math.log(1 + math.exp(-1)) + math.log(2)) / 2)
    assert out.accuracy == 0.5
    assert out.margin == pytest.approx(0.5)

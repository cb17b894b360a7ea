import math

import pytest
import torch

from srft.rl.losses import a2c_policy_loss, clipped_value_loss, ppo_policy_loss


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

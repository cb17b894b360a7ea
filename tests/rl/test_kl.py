import math

import pytest
import torch

from srft.rl.kl import (
    AdaptiveKLController,
    entropy,
    exact_kl,
    k3_kl,
    shaped_rewards,
    token_logprobs,
)


def test_exact_kl_of_two_coin_distributions():
    # p = (0.5, 0.5), q = (0.25, 0.75): KL = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75)
    p = torch.log(torch.tensor([[0.5, 0.5]]))
    q = torch.log(torch.tensor([[0.25, 0.75]]))
    expected = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    assert exact_kl(p, q).item() == pytest.approx(expected, rel=1e-6)
    assert exact_kl(p, p).item() == pytest.approx(0.0, abs=1e-7)


def test_entropy_of_a_uniform_distribution_is_log_vocab():
    assert entropy(torch.zeros(1, 4)).item() == pytest.approx(math.log(4))


def test_token_logprobs_pick_the_token():
    logits = torch.log(torch.tensor([[[0.2, 0.8]]]))
    assert token_logprobs(logits, torch.tensor([[1]])).item() == pytest.approx(math.log(0.8))


def test_shaped_rewards_put_the_score_on_the_last_generated_token():
    # log-ratios 0.1, 0.2, (pad); coef 0.5 -> -0.05, -0.1 + score 2.0, 0
    rewards = shaped_rewards(
        torch.tensor([2.0]),
        torch.tensor([[0.1, 0.2, 0.3]]),
        torch.tensor([[1.0, 1.0, 0.0]]),
        kl_coef=0.5,
    )
    assert rewards.tolist()[0] == pytest.approx([-0.05, 1.9, 0.0])


def test_adaptive_kl_controller_by_hand():
    # kl 0.15 against target 0.1: error clipped to 0.2; coef 0.1 * (1 + 0.2 * 64 / 640) = 0.102
    controller = AdaptiveKLController(0.1, aim_nats=0.1, horizon=640)
    controller.update(0.15, n_steps=64)
    assert controller.coef == pytest.approx(0.102)
    # kl 0.09: error -0.1; 0.102 * (1 - 0.1 * 0.1) = 0.10098
    controller.update(0.09, n_steps=64)
    assert controller.coef == pytest.approx(0.10098)
    # far under target: 0.10098 * (1 - 0.2 * 0.1) = 0.09896, held at the floor 0.1
    controller.update(0.0, n_steps=64)
    assert controller.coef == pytest.approx(0.1)
    free = AdaptiveKLController(0.1, aim_nats=0.1, horizon=640, floor=0.0)
    free.update(0.0, n_steps=64)
    assert free.coef == pytest.approx(0.098)


def test_k3_kl_by_hand():
    # pi(a) 0.5, ref(a) 0.25: exp(log 0.5) - log 0.5 - 1 = 0.5 + 0.69315 - 1; equal: 0
    found = k3_kl(torch.log(torch.tensor([0.5, 0.3])), torch.log(torch.tensor([0.25, 0.3])))
    assert found.tolist() == pytest.approx([0.5 + math.log(2) - 1, 0.0], abs=1e-6)

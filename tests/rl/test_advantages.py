import math

import pytest
import torch

from srft.rl.advantages import gae, masked_mean, masked_var, masked_whiten


def test_masked_mean_ignores_padding():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert masked_mean(x, mask).item() == pytest.approx(2.0)


def test_masked_var_is_bessel_corrected():
    # values 1, 3 -> mean 2, squared deviations 1 + 1 = 2, over n - 1 = 1
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert masked_var(x, mask).item() == pytest.approx(2.0)
    assert masked_var(x, mask, unbiased=False).item() == pytest.approx(1.0)


def test_masked_whiten_by_hand():
    # values 1, 3: mean 2, variance 2 -> (x - 2) / sqrt(2) = -0.7071, 0.7071; padding 0
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    out = masked_whiten(x, mask)
    assert out.tolist()[0] == pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2), 0.0], abs=1e-6)
    kept = masked_whiten(x, mask, shift_mean=False)
    assert kept.tolist()[0][:2] == pytest.approx([2 - 1 / math.sqrt(2), 2 + 1 / math.sqrt(2)])


def test_gae_by_hand():
    # rewards [0, 1], values [0.5, 0.8], gamma 0.9, lambda 0.5:
    # delta_1 = 1 - 0.8 = 0.2;                A_1 = 0.2
    # delta_0 = 0 + 0.9 * 0.8 - 0.5 = 0.22;   A_0 = 0.22 + 0.9 * 0.5 * 0.2 = 0.31
    # returns = A + V = [0.81, 1.0]
    rewards = torch.tensor([[0.0, 1.0]])
    values = torch.tensor([[0.5, 0.8]])
    mask = torch.ones(1, 2)
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    assert advantages.tolist()[0] == pytest.approx([0.31, 0.2])
    assert returns.tolist()[0] == pytest.approx([0.81, 1.0])


def test_gae_stops_at_the_end_of_a_response():
    # the second token is padding: its value (5.0) must not leak into the first token
    rewards = torch.tensor([[1.0, 0.0]])
    values = torch.tensor([[0.25, 5.0]])
    mask = torch.tensor([[1.0, 0.0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert advantages.tolist()[0] == pytest.approx([0.75, 0.0])
    assert returns.tolist()[0] == pytest.approx([1.0, 0.0])


def test_gae_with_lambda_one_is_return_minus_value():
    rewards = torch.tensor([[0.1, 0.2, 0.3]])
    values = torch.tensor([[0.4, 0.5, 0.6]])
    advantages, _ = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    # Monte Carlo returns 0.6, 0.5, 0.3 minus values
    assert advantages.tolist()[0] == pytest.approx([0.2, 0.0, -0.3])

"""Generalised advantage estimation and masked whitening, as pure functions of tensors.

Tensors are (batch, response_tokens); `mask` is 1 on generated tokens and 0 on padding after
the end of a response.
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over the positions where `mask` is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of `x` over the positions where `mask` is 1 (Bessel-corrected by default)."""
    mean = masked_mean(x, mask)
    squares = ((x - mean) ** 2 * mask).sum()
    count = mask.sum()
    if unbiased and count > 1:
        return squares / (count - 1)
    return squares / count.clamp(min=1)


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """`x` scaled to unit variance over the masked positions, and centred unless `shift_mean`
    is False; padding positions come back as 0."""
    return whiten(x, mask, masked_mean(x, mask), masked_var(x, mask), shift_mean, eps)


def whiten(
    x: torch.Tensor,
    mask: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    shift_mean: bool = True,
    eps: float = 1e-8,
) -> torch.Tensor:
    """`x` scaled by a given variance, and centred on a given mean unless `shift_mean` is False
    (moments measured over more than `x`: every process's share of a batch); padding positions
    come back as 0."""
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns by GAE (Schulman et al. 2016).

    delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1}, with V and A
    zero past the last generated token; returns R_t = A_t + V_t are the value targets.
    """
    values = values * mask
    steps = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(steps)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantages[:, t] = (delta + gamma * lam * next_advantage) * mask[:, t]
        next_value = values[:, t]
        next_advantage = advantages[:, t]
    return advantages, advantages + values

"""The policy-gradient objectives, value loss and their diagnostics.

Tensors are (batch, response_tokens) with `mask` 1 on generated tokens; every mean is over
generated tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srft.rl.advantages import masked_mean


@dataclass
class PolicyLoss:
    loss: torch.Tensor
    clip_fraction: float  # share of tokens whose ratio left [1 - eps, 1 + eps]
    approx_kl: float  # mean of (ratio - 1) - log ratio, the k3 estimator of KL(old || new)


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> PolicyLoss:
    """PPO's clipped surrogate (Schulman et al. 2017), to minimise:
    mean of max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).float(), mask).item()
        approx_kl = masked_mean((ratio - 1) - log_ratio, mask).item()
    return PolicyLoss(loss, clip_fraction, approx_kl)


def a2c_policy_loss(
    logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor
) -> PolicyLoss:
    """The advantage actor-critic objective, to minimise: mean of -A * log pi(a|s).
    One pass per batch, so no ratio to clip."""
    return PolicyLoss(masked_mean(-advantages * logprobs, mask), 0.0, 0.0)


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float | None,
) -> tuple[torch.Tensor, float]:
    """Half the squared error to the returns; with `clip_range`, the larger of the errors of
    the new values and of the new values clipped to old +- clip_range. Returns the loss and
    the share of tokens where the clipped error was the larger."""
    unclipped = (values - returns) ** 2
    if clip_range is None:
        return 0.5 * masked_mean(unclipped, mask), 0.0
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        fraction = masked_mean((clipped > unclipped).float(), mask).item()
    return loss, fraction

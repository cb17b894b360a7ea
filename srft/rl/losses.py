"""The policy-gradient objectives, value loss and their diagnostics.

Tensors are (batch, response_tokens) with `mask` 1 on generated tokens; every mean is over
generated tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srft.rl.advantages import masked_mean
from srft.rl.kl import k3_kl


@dataclass
class PolicyLoss:
    loss: torch.Tensor
    clip_fraction: float  # share of tokens whose ratio left [1 - eps, 1 + eps]
    approx_kl: float  # mean of (ratio - 1) - log ratio, the k3 estimator of KL(old || new)
    kl_to_reference: float = 0.0  # mean k3 estimate of KL(pi || ref), where the loss holds it


#: how a loss of tokens becomes one number: "token", the mean over every generated token of
#: the batch; "sequence", the mean over responses of each response's token mean (GRPO's
#: paper); "constant", the sum over tokens divided by responses x max_tokens (Dr. GRPO: no
#: response's tokens weigh more for being fewer)
AGGREGATIONS = ("token", "sequence", "constant")


def aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, how: str, max_tokens: int | None = None
) -> torch.Tensor:
    """`per_token` (batch, tokens) reduced to a scalar over the generated tokens, as `how`
    (one of AGGREGATIONS) says; "constant" divides by batch x `max_tokens` (default: the
    tensor's width)."""
    if how == "token":
        return masked_mean(per_token, mask)
    if how == "sequence":
        per_response = (per_token * mask).sum(1) / mask.sum(1).clamp(min=1)
        return per_response.mean()
    if how == "constant":
        width = max_tokens or per_token.shape[1]
        return (per_token * mask).sum() / (per_token.shape[0] * width)
    raise ValueError(f"unknown aggregation '{how}' (known: {', '.join(AGGREGATIONS)})")


def _clipped_surrogate(
    log_ratio: torch.Tensor, advantages: torch.Tensor, clip_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token: max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)), and where the clipped
    term was the larger."""
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    return torch.maximum(unclipped, clipped), clipped > unclipped


@torch.no_grad()
def _ratio_diagnostics(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, was_clipped: torch.Tensor, mask
) -> tuple[float, float]:
    """The share of tokens whose ratio was clipped, and the k3 estimate of KL(old || new)."""
    return (
        masked_mean(was_clipped.float(), mask).item(),
        masked_mean(k3_kl(old_logprobs, logprobs), mask).item(),
    )


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> PolicyLoss:
    """PPO's clipped surrogate (Schulman et al. 2017), to minimise:
    mean of max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))."""
    surrogate, was_clipped = _clipped_surrogate(logprobs - old_logprobs, advantages, clip_range)
    loss = masked_mean(surrogate, mask)
    return PolicyLoss(loss, *_ratio_diagnostics(logprobs, old_logprobs, was_clipped, mask))


def grpo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
    kl_coef: float,
    aggregation: str = "sequence",
    max_tokens: int | None = None,
) -> PolicyLoss:
    """GRPO's objective (Shao et al. 2024), to minimise: per token, the clipped surrogate of
    its advantage (every token of a response carries the response's) plus `kl_coef` times the
    k3 estimate of KL(pi || ref) at the token (`ref_logprobs` None: no KL in the loss, as when
    it is in the reward), reduced by `aggregation`. RLOO's update is this with its own
    advantages."""
    surrogate, was_clipped = _clipped_surrogate(logprobs - old_logprobs, advantages, clip_range)
    kl = torch.zeros_like(logprobs) if ref_logprobs is None else k3_kl(logprobs, ref_logprobs)
    loss = aggregate(surrogate + kl_coef * kl, mask, aggregation, max_tokens)
    clip_fraction, approx_kl = _ratio_diagnostics(logprobs, old_logprobs, was_clipped, mask)
    return PolicyLoss(loss, clip_fraction, approx_kl, masked_mean(kl.detach(), mask).item())


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


@dataclass
class PreferenceLoss:
    loss: torch.Tensor
    accuracy: float  # share of pairs whose implicit reward puts chosen above rejected
    margin: float  # mean implicit reward of chosen minus rejected
    chosen: float  # mean implicit reward of the chosen responses
    rejected: float  # and of the rejected ones


def dpo_loss(
    chosen_logprobs: torch.Tensor,
    rejected_logprobs: torch.Tensor,
    ref_chosen_logprobs: torch.Tensor,
    ref_rejected_logprobs: torch.Tensor,
    beta: float,
) -> PreferenceLoss:
    """DPO (Rafailov et al. 2023), to minimise: mean over pairs of
    -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), with each argument (pairs,) the
    summed log-probability of a response under the policy or the reference. The implicit
    reward of a response is beta * (pi - ref)."""
    chosen = beta * (chosen_logprobs - ref_chosen_logprobs)
    rejected = beta * (rejected_logprobs - ref_rejected_logprobs)
    margins = chosen - rejected
    loss = -torch.nn.functional.logsigmoid(margins).mean()
    with torch.no_grad():
        accuracy = (margins > 0).float().mean().item()
    return PreferenceLoss(
        loss,
        accuracy,
        margins.detach().mean().item(),
        chosen.detach().mean().item(),
        rejected.detach().mean().item(),
    )

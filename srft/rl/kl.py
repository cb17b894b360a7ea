"""Token log-probabilities, exact KL and entropy of next-token distributions, the KL-shaped
reward, and the KL penalty controllers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log pi(token) under `logits` (..., vocab) for each token id in `tokens` (...)."""
    return torch.gather(F.log_softmax(logits.float(), dim=-1), -1, tokens.unsqueeze(-1)).squeeze(-1)


def exact_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) = sum_v p(v) (log p(v) - log q(v)) of the next-token distributions at each
    position, in nats: shape (...,) for logits (..., vocab)."""
    logp = F.log_softmax(logits_p.float(), dim=-1)
    logq = F.log_softmax(logits_q.float(), dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(p) = -sum_v p(v) log p(v) of the next-token distribution at each position, nats."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def shaped_rewards(
    scores: torch.Tensor, log_ratio: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token rewards: -kl_coef * log(pi(a_t) / ref(a_t)) at every generated token, plus the
    sequence's score at its last generated token. `scores` is (batch,), `log_ratio` and `mask`
    (batch, tokens).

    The penalty is the sampled token's log-ratio, whose expectation over a_t is the exact KL at
    s_t: credited to the action that was taken, its policy gradient is the KL's gradient. (The
    exact KL of the state, a function of the state alone, would credit a_t with a cost it does
    not cause and leave the distribution at s_t unpenalised.)"""
    rewards = -kl_coef * log_ratio * mask
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(scores)), last] += scores
    return rewards


class FixedKLController:
    """A constant KL penalty coefficient."""

    def __init__(self, coef: float) -> None:
        self.coef = coef

    def update(self, kl_per_token_nats: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """The KL coefficient moves the per-token KL toward its aim, in nats (Ziegler et al. 2019's
    target; the aim is a share of the bound that the guard and the gates enforce):
    error = clip(kl / aim - 1, -0.2, 0.2); coef *= 1 + error * n_steps / horizon, never below
    `floor` (by default the starting coefficient: while the policy is still close to the
    reference the penalty would otherwise decay and then rise too late)."""

    def __init__(
        self, coef: float, aim_nats: float, horizon: int, floor: float | None = None
    ) -> None:
        self.coef = coef
        self.aim_nats = aim_nats
        self.horizon = horizon
        self.floor = coef if floor is None else floor

    def update(self, kl_per_token_nats: float, n_steps: int) -> None:
        if not math.isfinite(kl_per_token_nats):
            return
        error = min(0.2, max(-0.2, kl_per_token_nats / self.aim_nats - 1))
        self.coef = max(self.floor, self.coef * (1 + error * n_steps / self.horizon))


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimate of KL(pi || ref) from sampled tokens, per token:
    exp(ref - logp) - (ref - logp) - 1, never negative and unbiased for tokens drawn from pi;
    the penalty GRPO puts in its loss."""
    log_ratio = ref_logprobs - logprobs
    return torch.expm1(log_ratio) - log_ratio

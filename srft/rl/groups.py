"""Advantages of the critic-free algorithms: each prompt's `k` responses form a group, and a
response's advantage is its score against the others of its group.

`scores` is (groups * k,), the k responses of a prompt next to each other; the advantages
come back in the same order, one per response (every token of a response shares it).
"""

from __future__ import annotations

import torch


def _grouped(scores: torch.Tensor, k: int) -> torch.Tensor:
    if k < 2 or scores.numel() % k:
        raise ValueError(f"{scores.numel()} scores do not make groups of {k} (k >= 2)")
    return scores.float().reshape(-1, k)


def grpo_advantages(scores: torch.Tensor, k: int, scale: bool = True, eps: float = 1e-6):
    """GRPO (Shao et al. 2024): A_i = (r_i - mean(r)) / (std(r) + eps) over the group, the
    standard deviation without Bessel's correction. With `scale` False, A_i = r_i - mean(r),
    as Dr. GRPO (Liu et al. 2025) has it: dividing by the group's spread weights the prompts
    that every response answers alike (too easy or too hard) the most."""
    groups = _grouped(scores, k)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (groups.std(dim=1, unbiased=False, keepdim=True) + eps)
    return centred.reshape(-1)


def rloo_advantages(scores: torch.Tensor, k: int) -> torch.Tensor:
    """REINFORCE leave-one-out (Ahmadian et al. 2024): A_i = r_i - mean_{j != i} r_j, the
    baseline of each response the mean score of the other k - 1 of its group; equal to
    k / (k - 1) * (r_i - mean(r))."""
    groups = _grouped(scores, k)
    others = (groups.sum(dim=1, keepdim=True) - groups) / (k - 1)
    return (groups - others).reshape(-1)

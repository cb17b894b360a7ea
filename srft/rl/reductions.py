"""A rollout's numbers over all processes: each process rolls out its share of the batch, and
what a decision reads (advantage moments, KL, entropy, reward, losses, judge scores) is reduced
over every share first, so that the KL controller, the KL guard and the gates see the global
batch and every process decides alike. In a single process each function is the plain
per-batch computation."""

from __future__ import annotations

import statistics

import torch

from srft.distributed import all_sum, world_size
from srft.rl.advantages import masked_mean, masked_whiten, whiten


def whiten_over_processes(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`masked_whiten` with the mean and the (Bessel-corrected) variance of every process's
    masked positions together."""
    if world_size() == 1:
        return masked_whiten(x, mask)
    total, count = all_sum([float((x * mask).sum()), float(mask.sum())])
    mean = total / max(count, 1.0)
    (squares,) = all_sum([float(((x - mean) ** 2 * mask).sum())])
    var = squares / (count - 1) if count > 1 else squares / max(count, 1.0)
    return whiten(x, mask, torch.tensor(mean), torch.tensor(var))


def rollout_metrics(
    mask: torch.Tensor, kl: torch.Tensor, entropy: torch.Tensor, scores: torch.Tensor
) -> dict[str, float]:
    """What a rollout says about the policy, over every process's share: KL (nats per token and
    per sequence), entropy (nats per token), reward and response length (tokens)."""
    if world_size() == 1:
        return {
            "kl_per_token_nats": masked_mean(kl, mask).item(),
            "kl_per_sequence_nats": kl.sum(1).mean().item(),
            "entropy_nats": masked_mean(entropy, mask).item(),
            "reward": scores.mean().item(),
            "response_tokens": mask.sum(1).mean().item(),
        }
    kl_sum, entropy_sum, tokens, rewards, sequences = all_sum(
        [
            float((kl * mask).sum()),
            float((entropy * mask).sum()),
            float(mask.sum()),
            float(scores.sum()),
            float(mask.shape[0]),
        ]
    )
    return {
        "kl_per_token_nats": kl_sum / max(tokens, 1.0),
        "kl_per_sequence_nats": kl_sum / sequences,
        "entropy_nats": entropy_sum / max(tokens, 1.0),
        "reward": rewards / sequences,
        "response_tokens": tokens / sequences,
    }


def mean_over_processes(stats: dict[str, float]) -> dict[str, float]:
    """Each statistic averaged over the processes (each process's value a mean over equally
    many mini-batches)."""
    size = world_size()
    if size == 1:
        return stats
    names = sorted(stats)
    totals = all_sum([stats[name] for name in names])
    return {name: total / size for name, total in zip(names, totals, strict=True)}


def mean_score(scores: list[float]) -> float:
    """The mean of every process's scores together."""
    if world_size() == 1:
        return statistics.fmean(scores)
    total, count = all_sum([sum(scores), len(scores)])
    return total / count

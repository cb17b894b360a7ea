"""Measuring a policy without training it: KL to the reference and entropy (nats per token),
reward and judge score, over rollouts on given prompts."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import torch

from srft.rl.engine import RLEngine
from srft.rl.trainer import Judge


@dataclass
class PolicySample:
    """What `sample_policy` saw: means and the responses with their scores."""

    metrics: dict[str, float]
    prompts: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    judge_scores: list[float] = field(default_factory=list)


def measure_policy(
    engine: RLEngine, prompts: list[str], judge: Judge | None = None
) -> dict[str, float]:
    """Token-weighted means over all `prompts` (one sampled response each):
    kl_per_token_nats, kl_per_sequence_nats, entropy_nats, reward, response_tokens and, with a
    judge, judge_score."""
    return sample_policy(engine, prompts, judge).metrics


@torch.no_grad()
def sample_policy(engine: RLEngine, prompts: list[str], judge: Judge | None = None) -> PolicySample:
    """One sampled response per entry of `prompts`, scored, with `measure_policy`'s means."""
    kl_sum = entropy_sum = tokens = 0.0
    sequence_kl, rewards, lengths, judged = [], [], [], []
    responses: list[str] = []
    size = engine.settings.batch_size
    for start in range(0, len(prompts), size):
        batch = engine.rollout(prompts[start : start + size])
        kl_sum += float((batch.kl * batch.mask).sum())
        entropy_sum += float((batch.entropy * batch.mask).sum())
        tokens += float(batch.mask.sum())
        sequence_kl += batch.kl.sum(1).tolist()
        rewards += batch.scores.tolist()
        responses += batch.responses
        lengths += batch.mask.sum(1).tolist()
        if judge is not None:
            judged += judge(batch.prompts, batch.responses)
    result = {
        "kl_per_token_nats": kl_sum / max(tokens, 1.0),
        "kl_per_sequence_nats": statistics.fmean(sequence_kl),
        "entropy_nats": entropy_sum / max(tokens, 1.0),
        "reward": statistics.fmean(rewards),
        "response_tokens": statistics.fmean(lengths),
    }
    if judged:
        result["judge_score"] = statistics.fmean(judged)
    return PolicySample(result, list(prompts), responses, rewards, judged)

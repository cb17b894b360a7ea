"""Measuring a policy without training it: a sampler that builds no optimizer and no value
function, and the means over its samples: KL to the reference and entropy (nats per token),
reward and judge score."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Protocol

import torch
from transformers import PreTrainedTokenizerBase

from srft.distributed import gather_chunks
from srft.models.reward import RewardScorer
from srft.outputs import PolicyMeasures
from srft.rl.policy import CausalPolicy
from srft.rl.rollout import ReferenceLogits, ScoredSample, sample_and_score
from srft.scoring import Scorer


class Sampler(Protocol):
    """What measuring needs: scored samples, `batch_size` prompts at a time (in each
    process); in `lockstep`, every process samples as many batches (a sharded policy)."""

    batch_size: int
    lockstep: bool

    def sample(self, prompts: list[str]) -> ScoredSample: ...


@dataclass
class PolicySampler:
    """A frozen policy, its reference and a reward: one scored response per prompt."""

    policy: CausalPolicy
    reference_logits: ReferenceLogits
    tokenizer: PreTrainedTokenizerBase
    reward: RewardScorer
    max_prompt_length: int
    max_new_tokens: int
    generator: torch.Generator
    batch_size: int  # prompts per sampled batch
    lockstep: bool = False

    def sample(self, prompts: list[str]) -> ScoredSample:
        return sample_and_score(
            self.policy,
            self.reference_logits,
            self.tokenizer,
            self.reward,
            prompts,
            self.max_prompt_length,
            self.max_new_tokens,
            self.generator,
            lockstep=self.lockstep,
        )


@dataclass
class PolicySample:
    """What `sample_policy` saw: means and the responses with their scores."""

    metrics: PolicyMeasures
    prompts: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    judge_scores: list[float] = field(default_factory=list)


def measure_policy(
    sampler: Sampler, prompts: list[str], judge: Scorer | None = None
) -> PolicyMeasures:
    """Token-weighted means over all `prompts` (one sampled response each): KL to the
    reference per token and per response, entropy per token (nats), reward, response length
    (tokens) and, with a judge, the judge's score."""
    return sample_policy(sampler, prompts, judge).metrics


@dataclass
class _Scored:
    """One sampled batch, reduced to what measuring keeps."""

    kl_sum: float
    entropy_sum: float
    tokens: float
    sequence_kl: list[float]
    rewards: list[float]
    responses: list[str]
    lengths: list[float]
    judged: list[float]


@torch.no_grad()
def sample_policy(
    sampler: Sampler, prompts: list[str], judge: Scorer | None = None
) -> PolicySample:
    """One sampled response per entry of `prompts`, in the sampler's batches, scored, with
    `measure_policy`'s means. With several processes the batches are shared out among them and
    gathered back in order, so every process returns the same sample."""
    size = sampler.batch_size

    def score(c: int) -> _Scored:
        batch = sampler.sample(prompts[c * size : (c + 1) * size])
        return _Scored(
            kl_sum=float((batch.kl * batch.mask).sum()),
            entropy_sum=float((batch.entropy * batch.mask).sum()),
            tokens=float(batch.mask.sum()),
            sequence_kl=batch.kl.sum(1).tolist(),
            rewards=batch.scores.tolist(),
            responses=batch.responses,
            lengths=batch.mask.sum(1).tolist(),
            judged=judge(batch.prompts, batch.responses) if judge is not None else [],
        )

    kl_sum = entropy_sum = tokens = 0.0
    sequence_kl, rewards, lengths, judged = [], [], [], []
    responses: list[str] = []
    # a process without a batch of its own samples one with the others, for nothing
    idle = (lambda: sampler.sample(prompts[-size:])) if sampler.lockstep else None
    for part in gather_chunks(-(-len(prompts) // size), score, idle):
        kl_sum += part.kl_sum
        entropy_sum += part.entropy_sum
        tokens += part.tokens
        sequence_kl += part.sequence_kl
        rewards += part.rewards
        responses += part.responses
        lengths += part.lengths
        judged += part.judged
    measures = PolicyMeasures(
        kl_per_token_nats=kl_sum / max(tokens, 1.0),
        kl_per_sequence_nats=statistics.fmean(sequence_kl),
        entropy_nats=entropy_sum / max(tokens, 1.0),
        reward=statistics.fmean(rewards),
        response_tokens=statistics.fmean(lengths),
        judge_score=statistics.fmean(judged) if judged else None,
    )
    return PolicySample(measures, list(prompts), responses, rewards, judged)

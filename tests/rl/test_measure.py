"""Measuring a policy without training it: the sampler samples what the engine would, and its
means are token-weighted over every prompt."""

import copy

import pytest
import torch

from srft.rl.measure import PolicySampler, measure_policy, sample_policy
from srft.rl.policy import CausalPolicy
from srft.rl.rollout import reference_forward
from srft.world.model import build_base_model
from srft.world.tokenizer import build_tokenizer
from tests.rl.test_engine import PROMPTS, fruit_share, make_engine


def sampler_of(policy, reference, tokenizer, seed: int = 0, batch_size: int = 8):
    return PolicySampler(
        CausalPolicy(policy),
        reference_forward(reference),
        tokenizer,
        fruit_share,
        max_prompt_length=16,
        max_new_tokens=4,
        generator=torch.Generator().manual_seed(seed),
        batch_size=batch_size,
    )


def test_a_policy_measured_against_itself_has_no_kl():
    tokenizer = build_tokenizer()
    policy = build_base_model(tokenizer, hidden_size=32, num_layers=1, seed=0)
    found = measure_policy(sampler_of(policy, policy, tokenizer), PROMPTS * 4)
    assert found.kl_per_token_nats == pytest.approx(0.0, abs=1e-6)
    assert found.kl_per_sequence_nats == pytest.approx(0.0, abs=1e-5)
    assert found.entropy_nats > 0
    assert 1 <= found.response_tokens <= 4
    assert found.judge_score is None


def test_the_sampler_samples_what_the_engine_samples():
    engine = make_engine("PPO", learning_rate=1e-3, seed=3)
    policy = engine.unwrapped.policy
    sampler = sampler_of(policy, copy.deepcopy(engine.reference), engine.tokenizer, seed=3)
    from_engine = engine.sample(PROMPTS * 8)
    from_sampler = sampler.sample(PROMPTS * 8)
    assert from_sampler.responses == from_engine.responses
    assert torch.allclose(from_sampler.kl, from_engine.kl)
    assert torch.equal(from_sampler.scores, from_engine.scores)
    assert not hasattr(sampler, "optimizer")


def test_sample_policy_covers_every_prompt_in_batches():
    tokenizer = build_tokenizer()
    policy = build_base_model(tokenizer, hidden_size=32, num_layers=1, seed=1)
    reference = build_base_model(tokenizer, hidden_size=32, num_layers=1, seed=2)
    prompts = (PROMPTS * 2)[:7]
    found = sample_policy(sampler_of(policy, reference, tokenizer, batch_size=3), prompts)
    assert found.prompts == prompts
    assert len(found.responses) == len(found.rewards) == 7
    assert found.judge_scores == []
    assert found.metrics.kl_per_token_nats > 0
    judged = sample_policy(
        sampler_of(policy, reference, tokenizer, batch_size=3),
        prompts,
        judge=lambda ps, rs: [0.25] * len(rs),
    )
    assert judged.metrics.judge_score == 0.25

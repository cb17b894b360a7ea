"""Building from a config what RL needs: the engine (policy from the SFT model or a checkpoint,
frozen reference, value head or critic, the frozen reward model as the reward) and, for
measuring a policy, a sampler that builds no optimizer; rewards are the RM's score, with
`rl_training.reward_functions` added to it."""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs

from srft.config import ComputeConfig, SrftConfig
from srft.data.prompts import evaluation_prompts
from srft.data.sft import demonstration_splits
from srft.distributed import rank, world_size
from srft.models.loading import (
    load_critic,
    load_policy,
    load_reward_scorer,
    load_tokenizer,
    resolve_device,
)
from srft.models.lora import add_lora
from srft.models.reward import RewardScorer
from srft.outputs import PolicyMeasures
from srft.rl.engine import RLEngine, sampler_seed
from srft.rl.measure import PolicySampler, measure_policy
from srft.rl.policy import CausalPolicy, PolicyWithValue
from srft.rl.rewards import CombinedReward, reward_functions
from srft.rl.rollout import reference_forward
from srft.rl.trainer import GuardSettings
from srft.scoring import Scorer

#: Every held-out measurement of a policy (the KL guard's, the KL gates', stage 6's verdicts)
#: samples with the seed `seed + HELD_OUT_SEED_OFFSET`: one policy, one number.
HELD_OUT_SEED_OFFSET = 99


def guard_settings(config: SrftConfig, held_out: list[str] | None = None) -> GuardSettings:
    """The KL guard of the RL loop: the hard KL bound, the seed's early stop, as many
    rollbacks as the gates allow retries, and where it measures: the `held_out` prompts
    (default: the evaluation prompts)."""
    return GuardSettings(
        kl_bound_nats=config.constraints.kl_target,
        early_stop_on_kl=config.rl_training.early_stop_on_kl,
        max_rollbacks=config.gates.max_retries,
        held_out_prompts=tuple(evaluation_prompts(config) if held_out is None else held_out),
        measure_seed=config.seed + HELD_OUT_SEED_OFFSET,
    )


def measure_held_out(
    config: SrftConfig, policy_dir: str, reward_dir: str, reference_dir: str, judge: Scorer | None
) -> tuple[PolicyMeasures, PolicySampler]:
    """The policy at `policy_dir` measured as the KL guard measures it (KL to `reference_dir`,
    rewards from `reward_dir`), and the sampler that measured it."""
    sampler = build_sampler(
        config, policy_dir, reward_dir, reference_dir, seed_offset=HELD_OUT_SEED_OFFSET
    )
    return measure_policy(sampler, evaluation_prompts(config), judge), sampler


def reward_scorer(config: SrftConfig, reward_dir: str, policy_tokenizer) -> RewardScorer:
    """The frozen RM at `reward_dir`, scoring the policy's responses."""
    scorer = load_reward_scorer(
        reward_dir,
        config.data.max_prompt_length,
        config.data.max_response_length,
        policy_tokenizer=policy_tokenizer,
    )
    hold_frozen(scorer.model, config)
    return scorer


def training_reward(
    config: SrftConfig, reward_dir: str, policy_tokenizer
) -> RewardScorer | CombinedReward:
    """RL's reward: the frozen RM at `reward_dir`, with `rl_training.reward_functions` the RM's
    score and the functions' values by their weights."""
    rl = config.rl_training
    scorer = reward_scorer(config, reward_dir, policy_tokenizer)
    if not rl.reward_functions:
        return scorer
    return CombinedReward(scorer, reward_functions(rl), rl.reward_model_weight)


def hold_frozen(model: torch.nn.Module, config: SrftConfig) -> torch.nn.Module:
    """A frozen model in half precision when training is mixed fp16 or bf16 (it only scores:
    half the memory), else as loaded."""
    name = config.compute.frozen_dtype
    return model.to(getattr(torch, name)) if name else model


def rl_accelerator(compute: ComputeConfig) -> Accelerator:
    """The RL engine's accelerator: the config's device and precision; under ddp, gradients
    that are views of the buckets they are averaged in (no copy in and out at every step)."""
    ddp = DistributedDataParallelKwargs(gradient_as_bucket_view=True)
    return Accelerator(
        cpu=resolve_device(compute).type == "cpu",
        mixed_precision=compute.mixed_precision,
        kwargs_handlers=[ddp],
    )


def build_engine(
    config: SrftConfig,
    policy_dir: str,
    reward_dir: str,
    start: Path | None = None,
    reference_dir: str | None = None,
    seed_offset: int = 0,
    kl_fraction: float | None = None,
) -> RLEngine:
    """An engine whose policy starts from `start` (a checkpoint written by `RLEngine.save`) or
    from `policy_dir`; the frozen reference is `reference_dir` (default: `policy_dir`). The KL
    controller aims at `kl_fraction` (default `rl_training.adaptive_kl_fraction`) of the KL
    bound `constraints.kl_target`."""
    tokenizer = load_tokenizer(policy_dir)
    lora = config.model.lora
    if lora is not None:
        # The reference is the policy with its adapter off: no second copy in memory. (A
        # reference other than the starting policy needs a copy.)
        seed = config.seed + seed_offset
        policy = add_lora(load_policy(policy_dir), lora, "CAUSAL_LM", seed)
        reference = load_policy(reference_dir) if reference_dir not in (None, policy_dir) else None
    else:
        policy = load_policy(str(start / "model") if start else policy_dir)
        reference = load_policy(reference_dir or policy_dir)
    if reference is not None:
        hold_frozen(reference, config)
    critic = None
    if config.rl_training.value_model == "separate":
        critic_dir = str(start / "critic") if start else reward_dir
        critic = load_critic(critic_dir, tokenizer.pad_token_id)
    fraction = config.rl_training.adaptive_kl_fraction if kl_fraction is None else kl_fraction
    demonstrations: list = []
    if config.rl_training.ptx_coef:  # the config refuses it without data.sft_file
        demonstrations, _ = demonstration_splits(config, tokenizer)
    engine = RLEngine(
        PolicyWithValue(policy, critic, value=not config.rl_training.critic_free),
        tokenizer,
        training_reward(config, reward_dir, tokenizer),
        config.rl_training,
        config.data,
        config.compute,
        kl_aim_nats=config.constraints.kl_target * fraction,
        seed=config.seed + seed_offset,
        reference=reference,
        accelerator=rl_accelerator(config.compute),
        demonstrations=demonstrations,
    )
    if start is not None:
        if lora is not None:
            engine.load_weights(start)
        engine.load_state(start)
    return engine


def build_sampler(
    config: SrftConfig,
    policy_dir: str,
    reward_dir: str,
    reference_dir: str | None = None,
    seed_offset: int = 0,
) -> PolicySampler:
    """A sampler of the policy at `policy_dir`, KL measured to `reference_dir` (default: the
    policy itself), rewards from the RM at `reward_dir`; seeded `seed + seed_offset` (apart in
    each process), sampling each process's share of `rl_training.batch_size` at a time."""
    device = resolve_device(config.compute)
    tokenizer = load_tokenizer(policy_dir)
    policy = load_policy(policy_dir, device).requires_grad_(False)
    reference = policy
    if reference_dir not in (None, policy_dir):
        reference = load_policy(reference_dir, device).requires_grad_(False)
    return PolicySampler(
        CausalPolicy(policy),
        reference_forward(reference),
        tokenizer,
        training_reward(config, reward_dir, tokenizer),
        config.data.max_prompt_length,
        config.data.max_response_length,
        torch.Generator(device=device).manual_seed(sampler_seed(config.seed + seed_offset, rank())),
        config.rl_training.batch_size // world_size(),
    )

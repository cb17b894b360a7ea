"""Building the RL engine from a config: policy (from the SFT model or a checkpoint), frozen
reference, value head or critic, and the frozen reward model as the reward."""

from __future__ import annotations

from pathlib import Path

from accelerate import Accelerator

from srft.config import SrftConfig
from srft.models.loading import (
    load_critic,
    load_policy,
    load_reward_model,
    load_tokenizer,
    resolve_device,
)
from srft.models.lora import add_lora
from srft.models.reward import RewardModelFunction
from srft.rl.engine import EngineSettings, RewardFunction, RLEngine
from srft.rl.policy import PolicyWithValue
from srft.rl.trainer import GuardSettings


def engine_settings(config: SrftConfig, seed_offset: int = 0) -> EngineSettings:
    rl = config.rl_training
    return EngineSettings(
        algorithm=rl.algorithm,
        learning_rate=rl.learning_rate,
        kl_coef=rl.kl_penalty,
        adaptive_kl=rl.adaptive_kl,
        kl_target=config.constraints.kl_target * rl.adaptive_kl_fraction,
        kl_horizon=rl.kl_horizon,
        entropy_bonus=rl.entropy_bonus,
        reward_scale=rl.reward_scale,
        batch_size=rl.batch_size,
        mini_batch_size=rl.mini_batch_size,
        gradient_accumulation_steps=rl.gradient_accumulation_steps,
        ppo_epochs=rl.ppo_epochs,
        clip_range=rl.clip_range,
        value_clip_range=rl.value_clip_range,
        vf_coef=rl.vf_coef,
        gamma=rl.gamma,
        lam=rl.lam,
        max_grad_norm=rl.max_grad_norm,
        whiten_advantages=rl.whiten_advantages,
        gradient_checkpointing=config.compute.gradient_checkpointing,
        max_prompt_length=config.data.max_prompt_length,
        max_new_tokens=config.data.max_response_length,
        seed=config.seed + seed_offset,
    )


def guard_settings(config: SrftConfig) -> GuardSettings:
    """The KL guard of the RL loop: the hard KL bound, the seed's early stop, and as many
    rollbacks as the gates allow retries."""
    return GuardSettings(
        kl_target=config.constraints.kl_target,
        early_stop_on_kl=config.rl_training.early_stop_on_kl,
        max_rollbacks=config.gates.max_retries,
    )


def reward_function(config: SrftConfig, reward_dir: str, policy_tokenizer) -> RewardFunction:
    """The frozen RM at `reward_dir` as a reward function."""
    tokenizer = load_tokenizer(reward_dir)
    model = load_reward_model(reward_dir, tokenizer.pad_token_id)
    return RewardModelFunction(
        model,
        tokenizer,
        policy_tokenizer,
        config.data.max_prompt_length,
        config.data.max_response_length,
    )


def build_engine(
    config: SrftConfig,
    policy_dir: str,
    reward_dir: str,
    start: Path | None = None,
    reference_dir: str | None = None,
    seed_offset: int = 0,
) -> RLEngine:
    """An engine whose policy starts from `start` (a checkpoint written by `RLEngine.save`) or
    from `policy_dir`; the frozen reference is `reference_dir` (default: `policy_dir`)."""
    device = resolve_device(config.compute)
    tokenizer = load_tokenizer(policy_dir)
    lora = config.model.lora
    if lora is not None:
        # The reference is the policy with its adapter off: no second copy in memory. (A
        # reference other than the starting policy needs a copy.)
        policy = add_lora(load_policy(policy_dir), lora, "CAUSAL_LM")
        reference = load_policy(reference_dir) if reference_dir not in (None, policy_dir) else None
    else:
        policy = load_policy(str(start / "model") if start else policy_dir)
        reference = load_policy(reference_dir or policy_dir)
    critic = None
    if config.rl_training.value_model == "separate":
        critic_dir = str(start / "critic") if start else reward_dir
        critic = load_critic(critic_dir, tokenizer.pad_token_id)
    engine = RLEngine(
        PolicyWithValue(policy, critic),
        tokenizer,
        reward_function(config, reward_dir, tokenizer),
        engine_settings(config, seed_offset),
        reference=reference,
        accelerator=Accelerator(
            cpu=device.type == "cpu", mixed_precision=config.compute.mixed_precision
        ),
    )
    if start is not None:
        if lora is not None:
            engine.load_weights(start)
        engine.load_state(start)
    return engine

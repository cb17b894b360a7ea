"""The stages' `adjust` hooks: each reads a failed attempt's gates and the settings it ran
with, and asks `srft.decisions` what to change."""

from __future__ import annotations

from srft.config import SrftConfig
from srft.decisions import (
    Adjustment,
    adjust_evaluation,
    adjust_rl,
    blocking,
    more_candidates,
    retrain_reward_model,
)
from srft.gates import Gate


def after_preferences(config: SrftConfig, gates: list[Gate], attempt: int) -> Adjustment | None:
    return more_candidates(
        blocking(gates),
        imported_pairs=bool(config.data.train_file),
        samples_per_prompt=config.annotation.samples_per_prompt,
        temperature=config.annotation.temperature,
        drop_contaminated=config.data.drop_contaminated,
    )


def after_reward_model(config: SrftConfig, gates: list[Gate], attempt: int) -> Adjustment | None:
    """After stage 3 or 4: retrain the reward model."""
    values = {g.name: g.value for g in gates}
    rt = config.reward_training
    return retrain_reward_model(
        blocking(gates),
        accuracy_train=values.get("reward_accuracy_train"),
        accuracy_val=values.get("reward_accuracy_val"),
        train_val_gap=values.get("train_val_gap"),
        max_train_val_gap=config.constraints.max_train_val_gap,
        weight_decay=rt.weight_decay,
        max_epochs=rt.max_epochs,
        learning_rate=rt.learning_rate,
    )


def after_rl(config: SrftConfig, gates: list[Gate], attempt: int) -> Adjustment | None:
    rl, c = config.rl_training, config.constraints
    entropy = [g.value for g in gates if g.name == "entropy"]
    return adjust_rl(
        blocking(gates),
        entropy_nats=entropy[0] if entropy else None,
        entropy_band=(c.entropy_min, c.entropy_max),
        learning_rate=rl.learning_rate,
        kl_penalty=rl.kl_penalty,
        reward_scale=rl.reward_scale,
        entropy_bonus=rl.entropy_bonus,
    )


def after_evaluation(config: SrftConfig, gates: list[Gate], attempt: int) -> Adjustment | None:
    rl = config.rl_training
    return adjust_evaluation(
        blocking(gates),
        ptx_coef=rl.ptx_coef,
        has_demonstrations=bool(config.data.sft_file),
        learning_rate=rl.learning_rate,
    )

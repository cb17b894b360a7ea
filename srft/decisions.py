"""The decision points: what to change after a stage's gates fail (DESIGN: Decision points).

Each function takes the stage's effective config, all gates of the failed attempt and the
attempt number, and returns an Adjustment (new settings and the stage to rerun from) or None when no
change can help. The pipeline bounds the retries and logs each decision.
"""

from __future__ import annotations

from typing import Any

from srft.config import SrftConfig
from srft.gates import Gate
from srft.stages.base import Adjustment


def more_candidates(config: SrftConfig, gates: list[Gate], attempt: int) -> Adjustment | None:
    """After stage 2. Gap or count short: more samples per prompt and wider sampling, then
    re-annotate. Decontamination short: drop the contaminated examples."""
    names = {g.name for g in gates if g.blocking}
    changes: dict[str, Any] = {}
    reasons = []
    if names & {"preference_gap", "pair_count"} and not config.data.train_file:
        changes["annotation.samples_per_prompt"] = min(16, config.annotation.samples_per_prompt * 2)
        changes["annotation.temperature"] = round(config.annotation.temperature + 0.2, 3)
        reasons.append("gap or count short: more samples per prompt, wider sampling")
    if "decontamination" in names and not config.data.drop_contaminated:
        changes["data.drop_contaminated"] = True
        reasons.append("decontamination short: drop contaminated examples")
    if not changes:
        return None
    return Adjustment(changes, "; ".join(reasons), rerun_from=2)


def retrain_reward_model(config: SrftConfig, gates: list[Gate], attempt: int) -> Adjustment | None:
    """After stages 3 and 4. Overfitting (the train-val gap gate failed, or train accuracy ahead
    of validation by at least half the allowed gap): more weight decay, fewer epochs, a smaller
    learning rate. Otherwise the model underfits: train it for longer. The best epoch by
    validation accuracy is kept either way."""
    rt = config.reward_training
    values = {g.name: g.value for g in gates}
    failed = [g.name for g in gates if g.blocking]
    train, val = values.get("reward_accuracy_train"), values.get("reward_accuracy_val")
    gap = values.get("train_val_gap")
    if gap is None and train is not None and val is not None:
        gap = train - val
    overfitting = "train_val_gap" in failed or (
        gap is not None and gap >= config.constraints.max_train_val_gap / 2
    )
    names = ", ".join(failed)
    if overfitting:
        changes: dict[str, Any] = {
            "reward_training.weight_decay": round(max(0.05, rt.weight_decay * 5), 6),
            "reward_training.max_epochs": max(1, rt.max_epochs - 1),
            "reward_training.learning_rate": rt.learning_rate * 0.5,
        }
        reason = f"{names} failed (overfitting): retrain the reward model with more regularisation"
    else:
        changes = {"reward_training.max_epochs": rt.max_epochs + 3}
        reason = f"{names} failed (underfitting): retrain the reward model for longer"
    return Adjustment(changes, reason, rerun_from=3)


def adjust_rl(config: SrftConfig, gates: list[Gate], attempt: int) -> Adjustment | None:
    """After stage 5. KL over: halve the learning rate and double the KL penalty. Entropy under
    the band: lower the reward scale, raise the entropy bonus; over the band: the opposite."""
    rl = config.rl_training
    changes: dict[str, Any] = {}
    reasons = []
    for gate in (g for g in gates if g.blocking):
        if gate.name == "kl_divergence":
            changes["rl_training.learning_rate"] = rl.learning_rate / 2
            changes["rl_training.kl_penalty"] = rl.kl_penalty * 2
            reasons.append("KL over: half the learning rate, twice the KL penalty")
        elif gate.name == "entropy" and gate.value is not None:
            low, _ = gate.threshold  # type: ignore[misc]
            if gate.value < low:
                changes["rl_training.reward_scale"] = rl.reward_scale / 2
                changes["rl_training.entropy_bonus"] = max(0.01, rl.entropy_bonus * 2)
                reasons.append("entropy under the band: lower reward scale, higher entropy bonus")
            else:
                changes["rl_training.reward_scale"] = rl.reward_scale * 2
                changes["rl_training.entropy_bonus"] = rl.entropy_bonus / 2
                reasons.append("entropy over the band: higher reward scale, lower entropy bonus")
    if not changes:
        return None
    return Adjustment(changes, "; ".join(reasons), rerun_from=5)


def adjust_evaluation(config: SrftConfig, gates: list[Gate], attempt: int) -> Adjustment | None:
    """After stage 7. Capability retention short: roll back and rerun RL with half the learning
    rate. Other failures have no automatic remedy."""
    if not any(g.name == "capability_retention" and g.blocking for g in gates):
        return None
    changes = {"rl_training.learning_rate": config.rl_training.learning_rate / 2}
    return Adjustment(changes, "retention short: rerun RL with half the learning rate", 5)

"""Every decision of a run (DESIGN: Decision points), each a pure function of numbers.

- after a stage's gates fail: what to change and which stage to rerun (`more_candidates`,
  `retrain_reward_model`, `adjust_rl`, `adjust_evaluation`), and whether to retry or stop
  (`retry_or_stop`);
- inside RL: the KL guard (`kl_guard`) and its remedy (`kl_remedy`), the same remedy stage 5's
  retry applies;
- after each iteration: accept, converge or roll back (`judge_iteration`);
- at the end: deploy, roll back or stop (`deploy_decision`).

Stages turn their config and gates into these numbers; the pipeline and the RL loop act on the
answers and log them to decisions.jsonl.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from srft.gates import Gate


@dataclass(frozen=True)
class Adjustment:
    """A decision after failed gates: new settings, and the stage to rerun from."""

    changes: dict[str, Any]  # dotted config key -> new value
    reason: str
    rerun_from: int


def blocking(gates: Iterable[Gate]) -> set[str]:
    """The names of the gates that failed in `enforce` mode."""
    return {g.name for g in gates if g.blocking}


def retry_or_stop(
    adjustment: Adjustment | None, retries: int, max_retries: int
) -> tuple[Literal["retry", "stop"], str]:
    """Retry with the adjustment while retries remain; else stop, saying why."""
    if adjustment is None:
        return "stop", "no adjustment for these gates"
    if retries >= max_retries:
        return "stop", "retries exhausted"
    return "retry", adjustment.reason


def more_candidates(
    failed: set[str],
    *,
    imported_pairs: bool,
    samples_per_prompt: int,
    temperature: float,
    drop_contaminated: bool,
) -> Adjustment | None:
    """After stage 2. Gap or count short: more samples per prompt (at most 16) and sampling
    0.2 warmer, then re-annotate (not possible for imported pairs). Decontamination short: drop
    the contaminated examples."""
    changes: dict[str, Any] = {}
    reasons = []
    if failed & {"preference_gap", "pair_count"} and not imported_pairs:
        changes["annotation.samples_per_prompt"] = min(16, samples_per_prompt * 2)
        changes["annotation.temperature"] = round(temperature + 0.2, 3)
        reasons.append("gap or count short: more samples per prompt, wider sampling")
    if "decontamination" in failed and not drop_contaminated:
        changes["data.drop_contaminated"] = True
        reasons.append("decontamination short: drop contaminated examples")
    if not changes:
        return None
    return Adjustment(changes, "; ".join(reasons), rerun_from=2)


def retrain_reward_model(
    failed: set[str],
    *,
    accuracy_train: float | None,
    accuracy_val: float | None,
    train_val_gap: float | None,
    max_train_val_gap: float,
    weight_decay: float,
    max_epochs: int,
    learning_rate: float,
) -> Adjustment | None:
    """After stages 3 and 4 (None when no gate failed). Overfitting (the train-val gap gate failed, or train accuracy ahead
    of validation by at least half the allowed gap): weight decay x5 (at least 0.05), one epoch
    fewer, half the learning rate. Otherwise the model underfits: three epochs more. The best
    epoch by validation accuracy is kept either way."""
    if not failed:
        return None
    gap = train_val_gap
    if gap is None and accuracy_train is not None and accuracy_val is not None:
        gap = accuracy_train - accuracy_val
    overfitting = "train_val_gap" in failed or (gap is not None and gap >= max_train_val_gap / 2)
    names = ", ".join(sorted(failed))
    if overfitting:
        changes: dict[str, Any] = {
            "reward_training.weight_decay": round(max(0.05, weight_decay * 5), 6),
            "reward_training.max_epochs": max(1, max_epochs - 1),
            "reward_training.learning_rate": learning_rate * 0.5,
        }
        reason = f"{names} failed (overfitting): retrain the reward model with more regularisation"
    else:
        changes = {"reward_training.max_epochs": max_epochs + 3}
        reason = f"{names} failed (underfitting): retrain the reward model for longer"
    return Adjustment(changes, reason, rerun_from=3)


#: What `kl_remedy` does, in the words decisions.jsonl logs.
KL_REMEDY = "half the learning rate, twice the KL penalty"


def kl_remedy(learning_rate: float, kl_coef: float) -> tuple[float, float]:
    """KL over its bound: half the learning rate and twice the KL penalty."""
    return learning_rate / 2, kl_coef * 2


def kl_guard(
    kl_per_token_nats: float,
    kl_bound_nats: float,
    rollbacks: int,
    max_rollbacks: int,
    early_stop: bool = True,
) -> Literal["continue", "rollback", "stop"]:
    """The RL loop's guard on the policy's per-token KL, measured on the held-out prompts as the
    KL gates measure it: within the bound (or with the early stop off), continue; over it,
    roll back to the last good checkpoint with `kl_remedy`, or stop there once the rollbacks
    run out."""
    if not early_stop or kl_per_token_nats <= kl_bound_nats:
        return "continue"
    return "rollback" if rollbacks < max_rollbacks else "stop"


def adjust_rl(
    failed: set[str],
    *,
    entropy_nats: float | None,
    entropy_band: tuple[float, float],
    learning_rate: float,
    kl_penalty: float,
    reward_scale: float,
    entropy_bonus: float,
) -> Adjustment | None:
    """After stage 5. KL over: `kl_remedy`. Entropy under the band: half the reward scale,
    twice the entropy bonus (at least 0.01); over the band: the opposite."""
    changes: dict[str, Any] = {}
    reasons = []
    if "kl_divergence" in failed:
        lr, coef = kl_remedy(learning_rate, kl_penalty)
        changes["rl_training.learning_rate"] = lr
        changes["rl_training.kl_penalty"] = coef
        reasons.append(f"KL over: {KL_REMEDY}")
    if "entropy" in failed and entropy_nats is not None:
        if entropy_nats < entropy_band[0]:
            changes["rl_training.reward_scale"] = reward_scale / 2
            changes["rl_training.entropy_bonus"] = max(0.01, entropy_bonus * 2)
            reasons.append("entropy under the band: lower reward scale, higher entropy bonus")
        else:
            changes["rl_training.reward_scale"] = reward_scale * 2
            changes["rl_training.entropy_bonus"] = entropy_bonus / 2
            reasons.append("entropy over the band: higher reward scale, lower entropy bonus")
    if not changes:
        return None
    return Adjustment(changes, "; ".join(reasons), rerun_from=5)


#: the SFT loss's weight that retention's first remedy turns on (rl_training.ptx_coef)
PTX_COEF = 1.0


def adjust_evaluation(
    failed: set[str], *, ptx_coef: float, has_demonstrations: bool, learning_rate: float
) -> Adjustment | None:
    """After stage 7. Capability retention short: roll back and rerun RL with the SFT loss on
    the demonstrations mixed into each update (`PTX_COEF`, or twice the weight already set),
    which holds the policy to what SFT taught where the reward does not look; without
    demonstrations, with half the learning rate. Other failures have no automatic remedy."""
    if "capability_retention" not in failed:
        return None
    if not has_demonstrations:
        changes = {"rl_training.learning_rate": learning_rate / 2}
        return Adjustment(changes, "retention short: rerun RL with half the learning rate", 5)
    coef = ptx_coef * 2 if ptx_coef else PTX_COEF
    changes = {"rl_training.ptx_coef": coef}
    return Adjustment(changes, f"retention short: rerun RL with the SFT loss, weight {coef:g}", 5)


def judge_iteration(
    *,
    previous_score: float,
    score: float,
    kl_per_token_nats: float,
    entropy_nats: float,
    reward_accuracy_val: float,
    kl_bound_nats: float,
    entropy_band: tuple[float, float],
    accuracy_target: float,
    min_improvement: float,
) -> tuple[Literal["accepted", "converged", "rolled_back"], str]:
    """After an iteration: rolled_back when KL or entropy left their bounds, the retrained RM
    fell under the accuracy target or the score fell; converged (kept) when the gain is under
    `min_improvement`; else accepted."""
    low, high = entropy_band
    gain = score - previous_score
    if kl_per_token_nats > kl_bound_nats:
        return "rolled_back", f"KL {kl_per_token_nats:.4f} nats/token over {kl_bound_nats}"
    if not low <= entropy_nats <= high:
        return "rolled_back", f"entropy {entropy_nats:.4f} nats outside [{low}, {high}]"
    if reward_accuracy_val < accuracy_target:
        return "rolled_back", (
            f"retrained RM accuracy {reward_accuracy_val:.4f} under {accuracy_target}"
        )
    if gain < 0:
        return "rolled_back", f"score fell by {-gain:.4f}"
    if gain < min_improvement:
        return "converged", f"score gain {gain:.4f} below {min_improvement}"
    return "accepted", f"score up by {gain:.4f}"


def deploy_decision(
    failed: set[str], reward_hacking: bool | None
) -> Literal["deploy", "rollback", "stop"]:
    """deploy: every gate of the run holds and no reward hacking; rollback: capability
    retention short; stop: anything else."""
    if "capability_retention" in failed:
        return "rollback"
    if failed or reward_hacking:
        return "stop"
    return "deploy"

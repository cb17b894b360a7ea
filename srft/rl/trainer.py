"""The RL training loop around the engine: prompt batches, metrics every `log_interval`,
checkpoints every `save_interval`, and the KL guard.

The KL guard (`srft.decisions.kl_guard`) measures the policy where the KL gates measure it: on
the held-out prompts, with the sampler seed every held-out measurement uses
(`srft.rl.build.HELD_OUT_SEED_OFFSET`), at the start, every `save_interval` steps and at the
last step. Within the bound, that state is saved as the last good checkpoint, its measures
beside it; over it, training rolls back to the last good checkpoint with
`srft.decisions.kl_remedy`, or, when the rollbacks run out, stops there (the seed's early stop).
The policy training ends with is always a good checkpoint, and its measures are the ones the
stage's gates read: a checkpoint the guard keeps passes the KL gate it faces. A rollout whose
rewards are not all finite is discarded before its update, and counts as a rollback.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from srft.artifacts import checkpoint_folders
from srft.decisions import KL_REMEDY, kl_guard, kl_remedy
from srft.distributed import barrier, is_main
from srft.outputs import PolicyMeasures
from srft.progress import Reporter
from srft.rl.engine import RLEngine
from srft.rl.measure import measure_policy
from srft.rl.reductions import mean_score
from srft.rl.rewards import NonFiniteReward
from srft.scoring import Scorer
from srft.tracking import Tracker

log = logging.getLogger("srft")

#: (decision, reason, numbers) -> None: logs a decision of the loop
DecisionLog = Callable[[str, str, dict[str, Any]], None]

#: A checkpoint's held-out measures, written beside its weights.
MEASURES_FILE = "measures.json"

#: What the progress bar shows of a step, where the step has it: (label, metric)
PROGRESS = (
    ("reward", "reward"),
    ("kl", "kl_per_token_nats"),
    ("ent", "entropy_nats"),
    ("loss", "policy_loss"),
    ("acc", "rewards_accuracy"),
)

T = TypeVar("T")


@dataclass(frozen=True)
class GuardSettings:
    kl_bound_nats: float  # per token: constraints.kl_target
    early_stop_on_kl: bool
    max_rollbacks: int
    held_out_prompts: tuple[str, ...]  # the evaluation prompts, one sample each
    measure_seed: int  # the sampler seed of every held-out measurement


@dataclass
class TrainingOutcome:
    steps: int
    rollbacks: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    #: the held-out measures of the policy training ended with (its last good checkpoint)
    measures: PolicyMeasures | None = None
    #: the held-out measures of the state training started from
    start_measures: PolicyMeasures | None = None


def prompt_batches(prompts: Sequence[T], batch_size: int, seed: int, step: int) -> list[T]:
    """The prompts (DPO: pairs) of step `step`: passes over a seeded shuffle of `prompts`,
    cycling."""
    per_pass = max(1, len(prompts) // batch_size)
    epoch, index = divmod(step, per_pass)
    order = list(prompts)
    random.Random(seed * 7919 + epoch).shuffle(order)
    chunk = order[index * batch_size : (index + 1) * batch_size]
    while len(chunk) < batch_size:  # fewer prompts than a batch: repeat them
        chunk += order[: batch_size - len(chunk)]
    return chunk


def train_policy(
    engine: RLEngine,
    prompts: Sequence,
    max_steps: int,
    checkpoints: Path,
    guard: GuardSettings,
    tracker: Tracker,
    *,
    save_interval: int,
    log_interval: int,
    judge: Scorer | None = None,
    decide: DecisionLog | None = None,
    description: str = "rl",
    step_offset: int = 0,
) -> TrainingOutcome:
    """Train until `max_steps` rollout batches are done (resuming from `engine.steps_done`) on
    `prompts` (DPO: preference pairs)."""
    state_file = checkpoints / "guard.json"
    guard_state = json.loads(state_file.read_text()) if state_file.exists() else {}
    outcome = TrainingOutcome(steps=engine.steps_done, rollbacks=guard_state.get("rollbacks", 0))
    if guard_state.get("start"):
        outcome.start_measures = PolicyMeasures.model_validate(guard_state["start"])

    def held_out() -> PolicyMeasures:
        sampler = engine.measuring_sampler(guard.measure_seed)
        measures = measure_policy(sampler, list(guard.held_out_prompts), judge)
        held_out_metrics = {f"held_out_{k}": v for k, v in measures.model_dump().items()}
        tracker.log(held_out_metrics, step=step_offset + engine.steps_done)
        return measures

    last_good = latest_checkpoint(checkpoints)
    if last_good is not None and (last_good / MEASURES_FILE).exists():
        good = PolicyMeasures.model_validate_json((last_good / MEASURES_FILE).read_text())
    else:  # a fresh start, or resumed from a checkpoint of the state the engine holds
        good = held_out()
        outcome.start_measures = outcome.start_measures or good
        last_good = _save(engine, checkpoints, outcome, good)
    reporter = Reporter(description, max_steps)
    reporter.advance(engine.steps_done)
    try:
        while engine.steps_done < max_steps:
            batch_prompts = prompt_batches(
                prompts, engine.rl.prompts_per_batch, engine.seed, engine.steps_done
            )
            try:
                batch, stats = engine.step(batch_prompts)
            except NonFiniteReward as err:  # nothing applied: the policy is as it was
                numbers = {"run": description, "step": engine.steps_done + 1}
                if outcome.rollbacks < guard.max_rollbacks:
                    outcome.rollbacks += 1
                    reason = f"{err}: the step is discarded, the policy unchanged"
                    _decide(decide, "rollback", reason, numbers)
                    continue
                _restore(engine, last_good)
                reporter.done = engine.steps_done
                outcome.stopped_early = True
                reason = f"{err}, with no rollback left: keep checkpoint {last_good.name}"
                _decide(decide, "stop", reason, numbers)
                break
            if judge is not None and batch is not None:
                stats["judge_score"] = mean_score(judge(batch.prompts, batch.responses))
            stats["learning_rate"] = engine.learning_rate
            outcome.history.append({"step": engine.steps_done, **stats})
            step = engine.steps_done
            if step % log_interval == 0 or step == max_steps:
                tracker.log({**stats, "rollbacks": outcome.rollbacks}, step=step_offset + step)
            reporter.advance(1, **{label: stats[key] for label, key in PROGRESS if key in stats})
            if step % save_interval != 0 and step != max_steps:
                continue
            measures = held_out()
            kl_now = measures.kl_per_token_nats
            verdict = kl_guard(
                kl_now,
                guard.kl_bound_nats,
                outcome.rollbacks,
                guard.max_rollbacks,
                guard.early_stop_on_kl,
            )
            if verdict == "continue":
                last_good, good = _save(engine, checkpoints, outcome, measures), measures
                continue
            numbers = {
                "run": description,
                "kl_per_token_nats": round(kl_now, 5),
                "step": step,
                "metrics_step": step_offset + step,  # where metrics.jsonl logs this step
            }
            learning_rate, kl_coef = engine.learning_rate, engine.kl_controller.coef
            _restore(engine, last_good)
            reporter.done = engine.steps_done
            if verdict == "stop":
                outcome.stopped_early = True
                _decide(
                    decide,
                    "stop",
                    f"held-out KL over {guard.kl_bound_nats} with no rollback left: "
                    f"keep checkpoint {last_good.name}",
                    numbers,
                )
                break
            outcome.rollbacks += 1
            engine.learning_rate, engine.kl_controller.coef = kl_remedy(learning_rate, kl_coef)
            numbers.update(learning_rate=engine.learning_rate, kl_coef=engine.kl_controller.coef)
            _decide(
                decide,
                "rollback",
                f"held-out KL over {guard.kl_bound_nats}: back to {last_good.name}, {KL_REMEDY}",
                numbers,
            )
    finally:
        reporter.close()
    outcome.steps = engine.steps_done
    outcome.measures = good
    return outcome


def _decide(decide: DecisionLog | None, decision: str, reason: str, numbers: dict) -> None:
    log.info("decision: %s: %s", decision, reason)
    if decide is not None:
        decide(decision, reason, numbers)


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest checkpoint in `checkpoints`, or None."""
    found = checkpoint_folders(checkpoints)
    return found[-1] if found else None


def _save(
    engine: RLEngine, checkpoints: Path, outcome: TrainingOutcome, measures: PolicyMeasures
) -> Path:
    """A checkpoint of the current (good) state with its held-out measures; only the newest
    two are kept. Every process calls it; the main one writes."""
    target = checkpoints / f"checkpoint-{engine.steps_done}"
    partial = checkpoints / f".partial-{engine.steps_done}"
    if is_main():
        shutil.rmtree(partial, ignore_errors=True)
    engine.save(partial)
    if is_main():
        (partial / MEASURES_FILE).write_text(measures.model_dump_json())
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        start = outcome.start_measures
        guard_state = {"rollbacks": outcome.rollbacks, "start": start and start.model_dump()}
        (checkpoints / "guard.json").write_text(json.dumps(guard_state))
        for old in checkpoint_folders(checkpoints)[:-2]:
            shutil.rmtree(old)
    barrier()  # a rollback on any process reads it
    return target


def _restore(engine: RLEngine, checkpoint: Path) -> None:
    engine.load_weights(checkpoint)
    engine.load_state(checkpoint)

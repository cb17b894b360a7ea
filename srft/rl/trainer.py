"""The RL training loop around the engine: prompt batches, metrics every `log_interval`,
checkpoints every `save_interval`, and the KL guard.

The KL guard (`srft.decisions.kl_guard`): when the per-token KL (mean of the last few steps)
exceeds its bound, roll back to the last good checkpoint (one whose KL was within the bound)
with `srft.decisions.kl_remedy`; when the rollbacks run out, stop there (the seed's early stop).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srft.artifacts import checkpoint_folders
from srft.decisions import KL_REMEDY, kl_guard, kl_remedy
from srft.distributed import barrier, is_main
from srft.progress import Reporter
from srft.rl.engine import RLEngine
from srft.rl.reductions import mean_score
from srft.scoring import Scorer
from srft.tracking import Tracker

log = logging.getLogger("srft")

#: (decision, reason, numbers) -> None: logs a decision of the loop
DecisionLog = Callable[[str, str, dict[str, Any]], None]

KL_WINDOW = 3


@dataclass(frozen=True)
class GuardSettings:
    kl_bound_nats: float  # per token: constraints.kl_target
    early_stop_on_kl: bool
    max_rollbacks: int


@dataclass
class TrainingOutcome:
    steps: int
    rollbacks: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)


def prompt_batches(prompts: list[str], batch_size: int, seed: int, step: int) -> list[str]:
    """The prompts of rollout `step`: passes over a seeded shuffle of `prompts`, cycling."""
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
    prompts: list[str],
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
    """Train until `max_steps` rollout batches are done (resuming from `engine.steps_done`)."""
    state_file = checkpoints / "guard.json"
    guard_state = json.loads(state_file.read_text()) if state_file.exists() else {}
    outcome = TrainingOutcome(steps=engine.steps_done, rollbacks=guard_state.get("rollbacks", 0))
    last_good = latest_checkpoint(checkpoints)
    if last_good is None:
        last_good = _save(engine, checkpoints, outcome)
    recent: deque[float] = deque(maxlen=KL_WINDOW)
    reporter = Reporter(description, max_steps)
    reporter.advance(engine.steps_done)
    try:
        while engine.steps_done < max_steps:
            batch_prompts = prompt_batches(
                prompts, engine.rl.batch_size, engine.seed, engine.steps_done
            )
            batch, stats = engine.step(batch_prompts)
            if judge is not None:
                stats["judge_score"] = mean_score(judge(batch.prompts, batch.responses))
            stats["learning_rate"] = engine.learning_rate
            outcome.history.append({"step": engine.steps_done, **stats})
            recent.append(stats["kl_per_token_nats"])
            step = engine.steps_done
            if step % log_interval == 0 or step == max_steps:
                tracker.log(stats, step=step_offset + step)
            reporter.advance(
                1, reward=stats["reward"], kl=stats["kl_per_token_nats"], ent=stats["entropy_nats"]
            )
            kl_now = statistics.fmean(recent)
            verdict = kl_guard(
                kl_now,
                guard.kl_bound_nats,
                outcome.rollbacks,
                guard.max_rollbacks,
                guard.early_stop_on_kl,
            )
            if verdict != "continue":
                numbers = {"kl_per_token_nats": round(kl_now, 5), "step": step}
                learning_rate, kl_coef = engine.learning_rate, engine.kl_controller.coef
                _restore(engine, last_good)
                recent.clear()
                reporter.done = engine.steps_done
                if verdict == "stop":
                    outcome.stopped_early = True
                    _decide(
                        decide,
                        "stop",
                        f"KL over {guard.kl_bound_nats} with no rollback left: "
                        f"keep checkpoint {last_good.name}",
                        numbers,
                    )
                    break
                outcome.rollbacks += 1
                engine.learning_rate, engine.kl_controller.coef = kl_remedy(learning_rate, kl_coef)
                numbers.update(
                    learning_rate=engine.learning_rate, kl_coef=engine.kl_controller.coef
                )
                _decide(
                    decide,
                    "rollback",
                    f"KL over {guard.kl_bound_nats}: back to {last_good.name}, {KL_REMEDY}",
                    numbers,
                )
                continue
            if step % save_interval == 0 and len(recent) == KL_WINDOW:
                last_good = _save(engine, checkpoints, outcome)
    finally:
        reporter.close()
    outcome.steps = engine.steps_done
    return outcome


def _decide(decide: DecisionLog | None, decision: str, reason: str, numbers: dict) -> None:
    log.info("decision: %s: %s", decision, reason)
    if decide is not None:
        decide(decision, reason, numbers)


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest checkpoint in `checkpoints`, or None."""
    found = checkpoint_folders(checkpoints)
    return found[-1] if found else None


def _save(engine: RLEngine, checkpoints: Path, outcome: TrainingOutcome) -> Path:
    """A checkpoint of the current (good) state; only the newest two are kept. Every process
    calls it; the main one writes."""
    target = checkpoints / f"checkpoint-{engine.steps_done}"
    partial = checkpoints / f".partial-{engine.steps_done}"
    if is_main():
        shutil.rmtree(partial, ignore_errors=True)
    engine.save(partial)
    if is_main():
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        (checkpoints / "guard.json").write_text(json.dumps({"rollbacks": outcome.rollbacks}))
        for old in checkpoint_folders(checkpoints)[:-2]:
            shutil.rmtree(old)
    barrier()  # a rollback on any process reads it
    return target


def _restore(engine: RLEngine, checkpoint: Path) -> None:
    engine.load_weights(checkpoint)
    engine.load_state(checkpoint)

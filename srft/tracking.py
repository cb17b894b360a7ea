"""metrics.jsonl: every logged scalar with its stage, step and time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from srft.artifacts import append_jsonl


class Tracker:
    """Appends scalars to the run's metrics.jsonl."""

    def __init__(self, path: Path, stage: int) -> None:
        self.path = path
        self.stage = stage

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        now = time.time()
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            row = {
                "stage": self.stage,
                "name": name,
                "value": float(value),
                "step": step,
                "time": now,
            }
            append_jsonl(self.path, row)


class TrainerMetrics(TrainerCallback):
    """Forwards a transformers Trainer's logs (loss, eval accuracy, ...) to a Tracker."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.tracker.log(logs, step=state.global_step)

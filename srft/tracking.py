"""Where a run's numbers go: metrics.jsonl (every logged scalar with its stage, attempt, step and
time) and the experiment trackers `logging.report_to` names.

The trackers (TensorBoard, MLflow, W&B: accelerate's tracker classes) are started once per run
on the main process. They receive every scalar metrics.jsonl gets, under `<stage folder>/<name>`
(`stage5_rl/kl_per_token_nats`), the numbers of each stage attempt's outputs record under
`<stage folder>/outputs/<name>` at the attempt as step, every gate evaluation (`gates/stage5_rl/kl_divergence`, its
value, and `..._passed`, 1 or 0, at the attempt as step), every decision as text, the config as
hyperparameters, and at the end the run's report, summary and decisions as files.

- TensorBoard writes into `<run dir>/tensorboard/<run name>`.
- MLflow logs to `MLFLOW_TRACKING_URI` when set, else to the database `<run dir>/mlflow.db`
  (files in `<run dir>/mlartifacts`), in the experiment `logging.wandb_project` (default
  "srft").
- W&B logs to the project `logging.wandb_project` (default "srft") under the name
  `logging.wandb_run_name`, its files in the run directory; `WANDB_MODE=offline` keeps it
  local. Each stage's steps are its own: W&B plots them against `<stage folder>/step`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from srft.artifacts import append_jsonl
from srft.distributed import is_main
from srft.run_dir import STAGE_FOLDERS

if TYPE_CHECKING:
    from srft.config import SrftConfig

log = logging.getLogger("srft")

DEFAULT_PROJECT = "srft"
#: the MLflow tracking URIs srft set in this process ("": none set)
_OWN_MLFLOW_URIS = {""}


class RunTrackers:
    """The experiment trackers of one run (`logging.report_to`), on the main process only."""

    def __init__(self, config: SrftConfig, run_root: Path) -> None:
        self.names = list(config.logging.report_to) if is_main() else []
        self.trackers: dict[str, Any] = {}
        self._step_metrics: set[str] = set()
        self._decisions = 0
        if not self.names:
            return
        from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

        root = run_root.resolve()
        run_name = config.logging.wandb_run_name or root.name
        project = config.logging.wandb_project or DEFAULT_PROJECT
        for name in self.names:
            if name == "tensorboard":
                tracker = TensorBoardTracker(run_name, root / "tensorboard")
            elif name == "mlflow":
                import mlflow

                artifacts = None
                # mlflow.set_tracking_uri sets the variable: an earlier run's is not the user's
                if os.environ.get("MLFLOW_TRACKING_URI", "") in _OWN_MLFLOW_URIS:
                    uri = f"sqlite:///{root / 'mlflow.db'}"
                    _OWN_MLFLOW_URIS.add(uri)
                    mlflow.set_tracking_uri(uri)
                    artifacts = (root / "mlartifacts").as_uri()
                tracker = MLflowTracker(project, artifacts, run_name=run_name)
            else:
                tracker = WandBTracker(project, name=run_name, dir=str(root))
            tracker.start()
            self.trackers[name] = tracker
        self.hyperparameters(config)

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def hyperparameters(self, config: SrftConfig) -> None:
        values = _flat(config.to_dict())
        for tracker in self.trackers.values():
            tracker.store_init_configuration(values)

    def log(self, prefix: str, values: dict[str, float], step: int | None) -> None:
        """`values` under `prefix/`, at `step` (the stage's own steps)."""
        named = {f"{prefix}/{k}": v for k, v in values.items()}
        for name, tracker in self.trackers.items():
            if name == "wandb":
                self._wandb_log(tracker, prefix, named, step)
            else:
                tracker.log(named, step=step)

    def _wandb_log(self, tracker, prefix: str, named: dict[str, float], step: int | None) -> None:
        # W&B's own step only rises: each stage's steps go on an axis of the stage's own
        axis = f"{prefix}/step"
        if prefix not in self._step_metrics:
            tracker.tracker.define_metric(axis)
            tracker.tracker.define_metric(f"{prefix}/*", step_metric=axis)
            self._step_metrics.add(prefix)
        tracker.log({**named, **({axis: step} if step is not None else {})})

    def outputs(self, folder: str, attempt: int, scalars: dict[str, Any]) -> None:
        """The numbers of a stage attempt's outputs record, under `<folder>/outputs/`."""
        numbers = {
            k: float(v) for k, v in scalars.items() if isinstance(v, int | float)
        }  # bools as 1 or 0
        if numbers:
            self.log(f"{folder}/outputs", numbers, attempt)

    def gates(self, folder: str, attempt: int, gates: list) -> None:
        """A stage attempt's gate evaluations (`srft.gates.Gate`): each value, and whether it
        passed."""
        values: dict[str, float] = {}
        for gate in gates:
            if gate.value is not None:
                values[gate.name] = float(gate.value)
            values[f"{gate.name}_passed"] = float(gate.passed)
        if values:
            self.log(f"gates/{folder}", values, attempt)

    def decision(self, text: str) -> None:
        """One line of decisions.jsonl, as text."""
        self._decisions += 1
        for name, tracker in self.trackers.items():
            if name == "tensorboard":
                tracker.tracker.add_text("decisions", text, global_step=self._decisions)
                tracker.tracker.flush()
            elif name == "wandb":
                tracker.tracker.log({"decisions": text})
            # MLflow takes no text series: it gets decisions.jsonl as a file at the end

    def finish(self, files: list[Path]) -> None:
        """The run's files (report, summary, decisions) to each tracker, then close them."""
        present = [f for f in files if f.exists()]
        for name, tracker in self.trackers.items():
            try:
                if name == "mlflow":
                    for path in present:
                        tracker.log_artifact(str(path))
                elif name == "wandb":
                    for path in present:
                        tracker.tracker.save(str(path), base_path=str(path.parent), policy="now")
                else:
                    for path in present:
                        if path.suffix == ".md":
                            tracker.tracker.add_text(path.name, path.read_text())
            finally:
                tracker.finish()
        self.trackers = {}


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as `section.key` -> bool, int, float or str (what every tracker takes)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat


class Tracker:
    """Appends a stage attempt's scalars to the run's metrics.jsonl, and hands them to the run's
    experiment trackers under the stage's folder name."""

    def __init__(
        self,
        path: Path,
        stage: int,
        attempt: int = 0,
        trackers: RunTrackers | None = None,
    ) -> None:
        self.path = path
        self.stage = stage
        self.attempt = attempt
        self.trackers = trackers
        self.folder = STAGE_FOLDERS.get(stage, f"stage{stage}")

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        now = time.time()
        scalars = {
            name: float(value)
            for name, value in metrics.items()
            if not isinstance(value, bool) and isinstance(value, int | float)
        }
        for name, value in scalars.items():
            row = {
                "stage": self.stage,
                "attempt": self.attempt,
                "name": name,
                "value": value,
                "step": step,
                "time": now,
            }
            append_jsonl(self.path, row)
        if self.trackers and scalars:
            self.trackers.log(self.folder, scalars, step)

    def decision(self, text: str) -> None:
        if self.trackers:
            self.trackers.decision(text)


class TrainerMetrics(TrainerCallback):
    """Forwards a transformers Trainer's logs (loss, eval accuracy, ...) to a Tracker."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.tracker.log(logs, step=state.global_step)

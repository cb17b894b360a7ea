"""What the pipeline hands a stage and what a stage hands back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srft.artifacts import append_jsonl
from srft.config import SrftConfig
from srft.gates import Gate
from srft.run_dir import RunDir
from srft.tracking import Tracker


@dataclass
class StageContext:
    """A stage's view of the run: its effective config, where to write, where to read."""

    config: SrftConfig
    run: RunDir
    number: int
    workdir: Path  # the stage writes here; the pipeline publishes it when the stage succeeds
    tracker: Tracker
    attempt: int = 0
    resume: bool = False  # an interrupted attempt left checkpoints in workdir

    def decide(self, decision: str, reason: str, numbers: dict[str, Any]) -> None:
        """Log a decision taken inside the stage (a rollback, an early stop) to decisions.jsonl."""
        row = {
            "time": time.time(),
            "stage": self.number,
            "attempt": self.attempt,
            "decision": decision,
            "reason": reason,
            "numbers": numbers,
        }
        append_jsonl(self.run.decisions, row)

    def upstream(self, number: int) -> Path:
        """The published folder of an earlier stage."""
        return self.run.stage(number)

    def upstream_model(self, number: int) -> Path:
        return self.run.model(number)

    def gate(
        self, name: str, value: float | None, threshold: Any, comparison: str, **kw: Any
    ) -> Gate:
        """A gate of this stage, in the mode the config gives it."""
        return Gate(
            name,
            value,
            threshold,
            comparison,
            self.number,  # type: ignore[arg-type]
            mode=self.config.gates.mode_of(name),
            **kw,
        )  # type: ignore[arg-type]


@dataclass
class StageResult:
    metrics: dict[str, Any] = field(default_factory=dict)
    gates: list[Gate] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> path relative to workdir
    checks: dict[str, Any] = field(default_factory=dict)  # report-only findings (probes, notes)


@dataclass(frozen=True)
class Adjustment:
    """A decision after failed gates: new settings, and the stage to rerun from."""

    changes: dict[str, Any]  # dotted config key -> new value
    reason: str
    rerun_from: int


@dataclass(frozen=True)
class StageSpec:
    number: int
    name: str
    run: Callable[[StageContext], StageResult]
    sections: tuple[str, ...]  # config sections that are inputs of the stage
    upstream: tuple[int, ...] = ()
    # When set, the stages this one needs under a given config (a subset of `upstream`).
    needs: Callable[[SrftConfig], tuple[int, ...]] | None = None
    # (effective config, every gate of the attempt, attempt) -> what to change, or None
    adjust: Callable[[SrftConfig, list[Gate], int], Adjustment | None] | None = None

    def upstream_for(self, config: SrftConfig) -> tuple[int, ...]:
        """The published stages this stage reads under `config`."""
        return self.needs(config) if self.needs else self.upstream

"""What the pipeline hands a stage and what a stage hands back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srft.artifacts import append_jsonl
from srft.config import SrftConfig
from srft.decisions import Adjustment
from srft.gates import Gate
from srft.manifests import published_gates
from srft.outputs import Outputs, StageOutputs, read_outputs
from srft.run_dir import RunDir
from srft.tracking import Tracker


@dataclass
class StageContext:
    """A stage's view of the run: its effective config, where to write, what earlier stages
    handed on."""

    config: SrftConfig
    run: RunDir
    number: int
    workdir: Path  # the stage writes here; the pipeline publishes it when the stage succeeds
    tracker: Tracker
    outputs: type[StageOutputs]  # the record this stage returns
    attempt: int = 0
    resume: bool = False  # an interrupted attempt left checkpoints in workdir
    reads: tuple[int, ...] = ()  # the stages whose records it may read: its spec's upstream

    @property
    def checkpoints(self) -> Path:
        """Where the stage keeps the checkpoints an interrupted attempt resumes from."""
        return self.workdir / "checkpoints"

    def path(self, name: str) -> Path:
        """Where this stage writes the file of its record's field `name`."""
        return self.workdir / self.outputs.default_path(name)

    def upstream(self, record: type[Outputs]) -> Outputs:
        """The outputs record an earlier stage published, its files as paths in its folder. Only
        the stages the spec declares upstream may be read: their fingerprints are in this
        stage's."""
        if record.STAGE not in self.reads:
            raise ValueError(
                f"stage {self.number} reads stage {record.STAGE}, which its spec does not "
                f"declare upstream ({self.reads})"
            )
        return read_outputs(self.run, record)

    def earlier_gates(self) -> list[Gate]:
        """The gates of the published stages before this one."""
        return published_gates(self.run, self.number)

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
        self.tracker.decision(f"stage {self.number} attempt {self.attempt}: {decision}: {reason}")

    def gate(
        self, name: str, value: float | None, threshold: Any, comparison: str, **kw: Any
    ) -> Gate:
        """A gate of this stage, in the mode the config gives it."""
        return Gate(
            name,
            value,
            threshold,
            comparison,  # type: ignore[arg-type]
            self.number,
            mode=self.config.gates.mode_of(name),  # type: ignore[arg-type]
            **kw,
        )


@dataclass
class StageResult:
    outputs: StageOutputs
    gates: list[Gate] = field(default_factory=list)


#: (effective config, every gate of the failed attempt, attempt) -> what to change, or None
Adjust = Callable[[SrftConfig, list[Gate], int], Adjustment | None]


@dataclass(frozen=True)
class StageSpec:
    """A stage: what it reads (config sections, upstream stages) and what it promises
    (`outputs`, the record later stages and the report read)."""

    number: int
    name: str
    run: Callable[[StageContext], StageResult]
    outputs: type[StageOutputs]
    sections: tuple[str, ...]  # config sections that are inputs of the stage
    upstream: tuple[int, ...] = ()
    # When set, the stages this one needs under a given config (a subset of `upstream`).
    needs: Callable[[SrftConfig], tuple[int, ...]] | None = None
    adjust: Adjust | None = None

    def __post_init__(self) -> None:
        if self.number != self.outputs.STAGE:
            raise ValueError(
                f"stage {self.number} declares {self.outputs.__name__}, "
                f"the record of stage {self.outputs.STAGE}"
            )

    def upstream_for(self, config: SrftConfig) -> tuple[int, ...]:
        """The published stages this stage reads under `config`."""
        return self.needs(config) if self.needs else self.upstream

"""The layout of a run directory; stages ask it for paths and never build them by hand."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAGE_FOLDERS: dict[int, str] = {
    1: "stage1_sft",
    2: "stage2_preferences",
    3: "stage3_reward",
    4: "stage4_reward_validation",
    5: "stage5_rl",
    6: "stage6_iterations",
    7: "stage7_evaluation",
}


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def name(self) -> str:
        return self.root.resolve().name

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def decisions(self) -> Path:
        return self.root / "decisions.jsonl"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def world(self) -> Path:
        return self.root / "world"

    def stage(self, number: int) -> Path:
        """The folder of a finished stage."""
        return self.root / STAGE_FOLDERS[number]

    def staging(self, number: int) -> Path:
        """Where a stage writes while it runs; moved to `stage(number)` when it succeeds."""
        return self.root / ".staging" / STAGE_FOLDERS[number]

    def manifest(self, number: int) -> Path:
        """The manifest of a published stage."""
        return self.stage(number) / "manifest.json"

    def failed_manifest(self, number: int) -> Path:
        """The manifest of a stage's last failed attempt (its gates blocked publishing)."""
        return self.root / ".staging" / f"failed_stage{number}.json"

"""report.md renders each stage's checklist from its outputs record, and says so when a record
cannot be read or has no checklist."""

from pathlib import Path
from typing import ClassVar

from srft.artifacts import atomic_write_json
from srft.manifests import stage_manifest
from srft.outputs import PreferenceOutputs, SFTOutputs, StageOutputs
from srft.report import write_report
from srft.run_dir import RunDir
from tests.runs import SFT_RECORD


class Custom(StageOutputs):
    STAGE: ClassVar[int] = 3
    value: float = 1.0


def publish(run: RunDir, number: int, manifest: dict) -> None:
    atomic_write_json(run.manifest(number), manifest)


def test_the_checklists_come_from_the_records(tmp_path):
    run = RunDir(tmp_path)
    publish(run, 1, stage_manifest(1, "sft", "done", "f", 0, seconds=2.0, outputs=SFT_RECORD))
    old = stage_manifest(2, "preferences", "done", "f", 0, seconds=1.0)
    old["metrics"] = {"pairs": 10}  # as an older srft wrote it: no outputs record
    publish(run, 2, old)
    custom = Custom()
    publish(run, 3, stage_manifest(3, "custom", "done", "f", 0, seconds=1.0, outputs=custom))
    text = Path(write_report(run, [SFTOutputs, PreferenceOutputs, Custom])).read_text()

    assert "- [x] Validation perplexity: 4.4817" in text
    assert "- [x]   next: 0.5000" in text
    assert "- [x] Train/validation split created: 90/10" in text
    assert "- [ ] outputs record unreadable: " in text
    assert "no outputs record; run stage 2 again" in text
    assert "- [ ] no checklist for Custom" in text
    assert "### Stage 4: Reward Model Validation\n\n- [ ] not run in this run directory" in text
    assert run.report_html.exists()

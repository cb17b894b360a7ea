"""What the pipeline hands a stage (srft/stages/base.py): a spec's record belongs to its stage,
`ctx.path` spells a file once, `ctx.upstream` reads a published record, `ctx.gate` takes its mode
from the config."""

import pytest

from srft.artifacts import atomic_write_json
from srft.config import load_config
from srft.errors import SrftError
from srft.manifests import stage_manifest
from srft.outputs import PreferenceOutputs, RewardOutputs, SFTOutputs
from srft.run_dir import RunDir
from srft.stages.base import StageContext, StageResult, StageSpec
from srft.tracking import Tracker
from tests.runs import SFT_RECORD


def context(tmp_path, *overrides: str) -> StageContext:
    """Stage 2's context in a run under tmp_path."""
    run = RunDir(tmp_path / "run")
    config = load_config(None, ["model.base_model=unused", *overrides])
    return StageContext(
        config, run, 2, run.staging(2), Tracker(run.metrics, 2), PreferenceOutputs, reads=(1,)
    )


def publish_stage_1(run: RunDir) -> dict:
    """Stage 1 published with SFT_RECORD, as the pipeline leaves it; return its manifest."""
    (run.stage(1) / SFT_RECORD.model).mkdir(parents=True)
    manifest = stage_manifest(1, "sft", "done", "f" * 64, 0, seconds=1.0, outputs=SFT_RECORD)
    atomic_write_json(run.manifest(1), manifest)
    return manifest


def no_run(ctx: StageContext) -> StageResult:
    raise AssertionError("not run")


def test_a_spec_refuses_the_record_of_another_stage():
    with pytest.raises(ValueError, match="stage 2 declares SFTOutputs, the record of stage 1"):
        StageSpec(2, "preferences", no_run, SFTOutputs, sections=("data",))
    assert StageSpec(1, "sft", no_run, SFTOutputs, sections=("sft",)).outputs is SFTOutputs


def test_path_is_the_file_fields_default_under_the_workdir(tmp_path):
    ctx = context(tmp_path)
    staging = tmp_path / "run" / ".staging" / "stage2_preferences"
    assert ctx.path("train_pairs_file") == staging / "pairs_train.jsonl"
    assert ctx.path("val_pairs_file") == staging / "pairs_val.jsonl"
    assert ctx.path("data_report") == staging / "data_report.md"


@pytest.mark.parametrize("name", ["pairs", "preference_gap", "no_such_field"])
def test_path_of_a_field_that_is_not_a_file_raises(tmp_path, name):
    with pytest.raises(KeyError, match=f"PreferenceOutputs has no file field '{name}'"):
        context(tmp_path).path(name)


def test_upstream_reads_the_published_record_with_its_files_located(tmp_path):
    ctx = context(tmp_path)
    publish_stage_1(ctx.run)
    found = ctx.upstream(SFTOutputs)
    assert found.model == tmp_path / "run" / "stage1_sft" / "model"
    assert (found.val_loss, found.train_examples, found.baseline) == (1.5, 90, {"next": 0.5})
    assert found == SFT_RECORD.located(ctx.run.stage(1))


def test_upstream_of_a_stage_not_published_raises(tmp_path):
    ctx = context(tmp_path)
    with pytest.raises(SrftError, match="stage 1 has not been published"):
        ctx.upstream(SFTOutputs)


def test_upstream_with_a_field_missing_names_the_manifest_and_the_field(tmp_path):
    ctx = context(tmp_path)
    manifest = publish_stage_1(ctx.run)
    del manifest["outputs"]["val_loss"]
    atomic_write_json(ctx.run.manifest(1), manifest)
    with pytest.raises(SrftError) as caught:
        ctx.upstream(SFTOutputs)
    assert str(caught.value).startswith(f"{ctx.run.manifest(1)}: outputs.val_loss: ")
    assert "SFTOutputs" in str(caught.value)


def test_gate_takes_its_mode_from_the_gates_mode(tmp_path):
    ctx = context(tmp_path, "gates.mode={pair_count: warn}")
    warned = ctx.gate("pair_count", 10.0, 1000.0, ">=")
    enforced = ctx.gate("decontamination", 0.5, 0.9, ">=")
    assert (warned.mode, enforced.mode) == ("warn", "enforce")
    assert (warned.stage, enforced.stage) == (2, 2)
    assert (warned.passed, warned.blocking) == (False, False)
    assert (enforced.passed, enforced.blocking) == (False, True)


def test_gate_passes_its_unit_and_note_on(tmp_path):
    gate = context(tmp_path).gate("kl_divergence", 0.05, 0.1, "<=", unit="nats/token", note="x")
    assert (gate.unit, gate.note, gate.passed) == ("nats/token", "x", True)


def test_upstream_reads_only_the_stages_the_spec_declares(tmp_path):
    ctx = context(tmp_path)
    publish_stage_1(ctx.run)
    with pytest.raises(ValueError, match="stage 2 reads stage 3, which its spec does not"):
        ctx.upstream(RewardOutputs)

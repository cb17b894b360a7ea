"""Stage 3, the reward model (srft/stages/reward.py): which checkpoint it resumes from (loading
and training stubbed out), and on the shared run: retraining when its settings change, resuming
an interrupted training, and its gates."""

import dataclasses
import shutil
from types import SimpleNamespace

import pytest

import srft.stages.reward
from srft.artifacts import read_json
from srft.config import SrftConfig, load_config
from srft.models.reward_trainer import RewardFit
from srft.outputs import RewardOutputs
from srft.pipeline import Pipeline, stage_specs
from srft.run_dir import RunDir
from srft.stages.base import StageContext, StageResult
from tests.runs import (
    SMALL_WORLD,
    STAGES,
    Interrupted,
    finished_times,
    gate_settings,
    restore,
)


def resume_checkpoint_of_stage_3(tmp_path, monkeypatch, folders: list[str]) -> str | None:
    """Run stage 3 with loading and training stubbed out; return the checkpoint it resumes."""
    for name in folders:
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
        (tmp_path / "checkpoints" / name / "optimizer.pt").write_bytes(b"")  # as ddp writes it
    captured: dict[str, str | None] = {}

    def fit(*args, resume_from_checkpoint=None, **kwargs):
        captured["checkpoint"] = resume_from_checkpoint
        return RewardFit(0.9, 0.8, 0.3, 0.4, "checkpoint-16", truncated_pairs=0)

    monkeypatch.setattr(srft.stages.reward, "read_pairs", lambda path: SimpleNamespace(pairs=[]))
    monkeypatch.setattr(srft.stages.reward, "load_reward_model", lambda name, pad, **kw: None)
    tokenizer = SimpleNamespace(pad_token_id=0)
    monkeypatch.setattr(srft.stages.reward, "load_tokenizer", lambda name: tokenizer)
    monkeypatch.setattr(srft.stages.reward, "fit_reward_model", fit)
    pairs = SimpleNamespace(train_pairs_file="train", val_pairs_file="val", model="sft")
    monkeypatch.setattr(StageContext, "upstream", lambda self, record: pairs)
    ctx = StageContext(
        SrftConfig(), RunDir(tmp_path / "run"), 3, tmp_path, None, RewardOutputs, resume=True
    )
    srft.stages.reward.run(ctx)
    return captured["checkpoint"]


def test_reward_stage_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    chosen = resume_checkpoint_of_stage_3(tmp_path, monkeypatch, ["checkpoint-16"])
    assert chosen == str(tmp_path / "checkpoints" / "checkpoint-16")


def test_reward_stage_resumes_from_the_newest_checkpoint(tmp_path, monkeypatch):
    chosen = resume_checkpoint_of_stage_3(tmp_path, monkeypatch, ["checkpoint-8", "checkpoint-16"])
    assert chosen == str(tmp_path / "checkpoints" / "checkpoint-16")


@pytest.mark.slow
def test_changed_reward_training_reruns_stages_3_and_4(good_run):
    before = restore(good_run)
    config = load_config(None, [*SMALL_WORLD, "reward_training.max_epochs=2"])
    outcome = Pipeline(config, good_run.run.root).execute(STAGES)
    assert outcome.status == "passed"
    after = finished_times(good_run.run)
    assert (after[1], after[2]) == (before[1], before[2])
    assert after[3] > before[3]
    assert after[4] > before[4]
    manifest = read_json(good_run.run.manifest(3))
    assert manifest["settings"]["reward_training"]["max_epochs"] == 2


@pytest.mark.slow
def test_interrupted_reward_training_resumes(good_run, monkeypatch, tmp_path):
    restore(good_run)
    run = good_run.run
    # Keep the first two of the good run's three epoch checkpoints, as a stage 3 interrupted in
    # its third epoch would leave them.
    folders = (run.stage(3) / "checkpoints").glob("checkpoint-*")
    steps = sorted(int(p.name.removeprefix("checkpoint-")) for p in folders)
    assert len(steps) == 3
    kept = [f"checkpoint-{step}" for step in steps[:2]]
    for name in kept:
        shutil.copytree(run.stage(3) / "checkpoints" / name, tmp_path / name)
    shutil.rmtree(run.stage(3))
    shutil.rmtree(run.stage(4))

    real = stage_specs()
    seen: list[tuple[bool, list[str]]] = []

    def crash(ctx: StageContext) -> StageResult:
        raise Interrupted

    def recorded(ctx: StageContext) -> StageResult:
        found = sorted(p.name for p in (ctx.workdir / "checkpoints").glob("checkpoint-*"))
        seen.append((ctx.resume, found))
        return real[3].run(ctx)

    def with_stage_3(run_function):
        return {**real, 3: dataclasses.replace(real[3], run=run_function)}

    monkeypatch.setattr("srft.pipeline.stage_specs", lambda: with_stage_3(crash))
    with pytest.raises(Interrupted):
        Pipeline(good_run.config, run.root).execute([3, 4])
    for name in kept:
        shutil.copytree(tmp_path / name, run.staging(3) / "checkpoints" / name)

    monkeypatch.setattr("srft.pipeline.stage_specs", lambda: with_stage_3(recorded))
    outcome = Pipeline(good_run.config, run.root).execute([3, 4])
    assert outcome.status == "passed"
    assert seen == [(True, sorted(kept))]
    assert read_json(run.manifest(3))["status"] == "done"
    assert read_json(run.manifest(4))["status"] == "done"


@pytest.mark.slow
def test_stage_3_gates_take_their_thresholds_from_constraints(good_run):
    target = good_run.config.constraints.reward_accuracy_target
    # Both in warn mode, as SMALL_WORLD's gates.mode says.
    assert gate_settings(good_run.manifests[3]) == [
        ("reward_accuracy_train", ">=", target, "", "warn"),
        ("reward_accuracy_val", ">=", target, "", "warn"),
    ]

"""Stage 5, RL (srft/stages/rl.py), on the shared run: resuming from the last checkpoint, the
KL guard tripped by a learning rate far too large, and its gates."""

import dataclasses
import shutil

import pytest

from srft.artifacts import read_json, read_jsonl
from srft.config import load_config
from srft.pipeline import Pipeline, stage_specs
from srft.run_dir import RunDir
from srft.stages.base import StageContext, StageResult
from tests.runs import (
    SMALL_WORLD,
    Interrupted,
    gate_settings,
    restore,
    run_restoring_threads,
)


@pytest.mark.slow
def test_interrupted_rl_resumes_from_its_last_checkpoint(good_run, monkeypatch, tmp_path):
    restore(good_run)
    run = good_run.run
    if not run.manifest(5).exists():
        assert Pipeline(good_run.config, run.root).execute([5]).status == "passed"
    saved = run.stage(5) / "checkpoints" / "checkpoint-3"
    assert saved.is_dir()
    shutil.copytree(saved, tmp_path / "checkpoint-3")
    shutil.rmtree(run.stage(5))

    real = stage_specs()
    seen: list[bool] = []

    def crash(ctx: StageContext) -> StageResult:
        raise Interrupted

    def recorded(ctx: StageContext) -> StageResult:
        seen.append(ctx.resume)
        return real[5].run(ctx)

    monkeypatch.setattr(
        "srft.pipeline.stage_specs", lambda: {**real, 5: dataclasses.replace(real[5], run=crash)}
    )
    with pytest.raises(Interrupted):
        Pipeline(good_run.config, run.root).execute([5])
    shutil.copytree(tmp_path / "checkpoint-3", run.staging(5) / "checkpoints" / "checkpoint-3")

    monkeypatch.setattr(
        "srft.pipeline.stage_specs",
        lambda: {**real, 5: dataclasses.replace(real[5], run=recorded)},
    )
    assert Pipeline(good_run.config, run.root).execute([5]).status == "passed"
    metrics = read_json(run.manifest(5))["outputs"]
    assert seen == [True]
    assert (metrics["resumed_from_step"], metrics["steps"]) == (3, 6)


@pytest.mark.slow
def test_a_learning_rate_far_too_large_trips_the_kl_guard_and_recovers(good_run, tmp_path):
    restore(good_run)
    run = RunDir(tmp_path / "run")
    shutil.copytree(good_run.run.root, run.root)
    config = load_config(
        None,
        [
            *SMALL_WORLD,
            "rl_training.learning_rate=0.05",
            # The KL gate is enforced here; the tiny world's SFT policy is above the entropy band.
            "gates.mode={reward_accuracy_train: warn, reward_accuracy_val: warn, "
            "train_val_gap: warn, entropy: warn}",
        ],
    )
    outcome = run_restoring_threads(config, run.root, [5])
    rows = [r for r in read_jsonl(run.decisions) if r["stage"] == 5]
    kinds = [r["decision"] for r in rows]
    assert "rollback" in kinds
    rollback = rows[kinds.index("rollback")]
    assert rollback["numbers"]["kl_per_token_nats"] > 0.1
    assert rollback["numbers"]["learning_rate"] == pytest.approx(0.025)
    assert outcome.status == "passed"
    gate = next(g for g in outcome.gates if g.name == "kl_divergence" and g.stage == 5)
    assert gate.passed


@pytest.mark.slow
def test_stage_5_gates_take_their_thresholds_from_constraints(good_run, stages_5_to_7):
    c = good_run.config.constraints
    # Both in warn mode, as SMALL_WORLD's gates.mode says.
    assert gate_settings(stages_5_to_7.manifests[5]) == [
        ("kl_divergence", "<=", c.kl_target, "nats/token", "warn"),
        ("entropy", "in", [c.entropy_min, c.entropy_max], "nats", "warn"),
    ]

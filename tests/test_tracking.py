"""srft.tracking: metrics.jsonl and the experiment trackers (TensorBoard, MLflow, W&B offline),
read back from the files each one writes."""

import pytest

from srft.artifacts import read_jsonl
from srft.config import load_config
from srft.gates import Gate
from srft.tracking import RunTrackers, Tracker
from tests.trackers import (
    mlflow_artifacts,
    mlflow_metrics,
    tensorboard_scalars,
    tensorboard_texts,
    wandb_history,
)


@pytest.fixture
def logged(tmp_path):
    """Two stages' steps (both from 0), a gate evaluation and a decision, to all three."""
    config = load_config(
        None,
        [
            "logging.report_to=[tensorboard, mlflow, wandb]",
            "logging.wandb_project=proj",
            "logging.wandb_run_name=trial",
        ],
    )
    root = tmp_path / "run"
    root.mkdir()
    trackers = RunTrackers(config, root)
    sft = Tracker(root / "metrics.jsonl", 1, 0, trackers)
    rl = Tracker(root / "metrics.jsonl", 5, 1, trackers)
    for step in (10, 20):
        sft.log({"loss": 3.0 - step / 10, "epoch": step / 20, "note": "text"}, step=step)
    for step in (1, 2, 3):
        rl.log({"kl_per_token_nats": 0.01 * step, "rollbacks": 0}, step=step)
    trackers.gates(
        "stage5_rl",
        1,
        [
            Gate("kl_divergence", 0.03, 0.1, "<=", 5),
            Gate("entropy", 2.5, (0.5, 2.0), "in", 5, mode="warn"),
        ],
    )
    rl.decision("stage 5 attempt 1: rollback: held-out KL over 0.1")
    (root / "report.md").write_text("# report\n")
    trackers.finish([root / "report.md", root / "summary.json"])  # no summary: left out
    return root


def test_every_scalar_reaches_metrics_jsonl_with_its_stage_and_attempt(logged):
    rows = read_jsonl(logged / "metrics.jsonl")
    assert {(r["stage"], r["attempt"], r["name"]) for r in rows} == {
        (1, 0, "loss"),
        (1, 0, "epoch"),
        (5, 1, "kl_per_token_nats"),
        (5, 1, "rollbacks"),
    }


def test_tensorboard_gets_each_stage_on_its_own_steps_the_gates_and_the_decisions(logged):
    scalars = tensorboard_scalars(logged / "tensorboard" / "trial")
    assert scalars["stage1_sft/loss"] == [(10, 2.0), (20, 1.0)]
    assert [s for s, _ in scalars["stage5_rl/kl_per_token_nats"]] == [1, 2, 3]
    assert scalars["gates/stage5_rl/kl_divergence"] == [(1, pytest.approx(0.03))]
    assert scalars["gates/stage5_rl/kl_divergence_passed"] == [(1, 1.0)]
    assert scalars["gates/stage5_rl/entropy_passed"] == [(1, 0.0)]  # a warned failure too
    texts = tensorboard_texts(logged / "tensorboard" / "trial", "decisions")
    assert texts == ["stage 5 attempt 1: rollback: held-out KL over 0.1"]
    assert tensorboard_texts(logged / "tensorboard" / "trial", "report.md") == ["# report\n"]


def test_mlflow_gets_the_metrics_gates_and_the_run_files(logged):
    metrics = mlflow_metrics(logged, "proj")
    assert metrics["stage1_sft/loss"] == [(10, 2.0), (20, 1.0)]
    assert metrics["stage5_rl/rollbacks"] == [(1, 0.0), (2, 0.0), (3, 0.0)]
    assert metrics["gates/stage5_rl/entropy"] == [(1, 2.5)]
    assert mlflow_artifacts(logged, "proj") == ["report.md"]


def test_wandb_offline_gets_each_stage_against_its_own_step_axis(logged):
    rows = wandb_history(logged)
    sft = [r for r in rows if "stage1_sft/loss" in r]
    assert [(r["stage1_sft/step"], r["stage1_sft/loss"]) for r in sft] == [(10, 2.0), (20, 1.0)]
    rl = [r["stage5_rl/step"] for r in rows if "stage5_rl/kl_per_token_nats" in r]
    assert rl == [1, 2, 3]
    assert any(r.get("gates/stage5_rl/kl_divergence_passed") == 1.0 for r in rows)
    assert [r["decisions"] for r in rows if "decisions" in r] == [
        "stage 5 attempt 1: rollback: held-out KL over 0.1"
    ]
    assert (next((logged / "wandb").glob("offline-run-*")) / "files" / "report.md").exists()


def test_no_trackers_no_files(tmp_path):
    trackers = RunTrackers(load_config(None, []), tmp_path)
    Tracker(tmp_path / "metrics.jsonl", 3, 0, trackers).log({"loss": 1.0}, step=1)
    trackers.finish([])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]

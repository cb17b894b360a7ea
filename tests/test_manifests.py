"""The manifest rules: which manifest of a stage counts, the run's gates and its summary."""

from srft.artifacts import atomic_write_json, read_json
from srft.gates import Gate
from srft.manifests import (
    collect_gates,
    latest_manifest,
    manifest_scalars,
    stage_manifest,
    stage_state,
    write_summary,
)
from srft.run_dir import RunDir


def gate(name: str, value: float, stage: int) -> Gate:
    return Gate(name, value, 0.5, ">=", stage)


def write(run: RunDir, number: int, status: str, finished: float, gates: list[Gate]) -> None:
    manifest = stage_manifest(number, f"s{number}", status, "f", 0, seconds=1.0, gates=gates)
    manifest["finished"] = finished
    path = run.manifest(number) if status == "done" else run.failed_manifest(number)
    atomic_write_json(path, manifest)


def test_the_newest_of_the_published_and_the_failed_manifest_counts(tmp_path):
    run = RunDir(tmp_path)
    assert latest_manifest(run, 2) is None
    write(run, 2, "done", finished=10.0, gates=[gate("pair_count", 0.9, 2)])
    assert latest_manifest(run, 2)["status"] == "done"
    write(run, 2, "failed", finished=20.0, gates=[gate("pair_count", 0.1, 2)])
    assert latest_manifest(run, 2)["status"] == "failed"
    write(run, 2, "done", finished=30.0, gates=[gate("pair_count", 0.8, 2)])
    assert latest_manifest(run, 2)["status"] == "done"


def test_collect_gates_in_stage_order_from_the_latest_manifests(tmp_path):
    run = RunDir(tmp_path)
    write(run, 3, "done", 5.0, [gate("reward_accuracy_train", 0.8, 3)])
    write(run, 2, "done", 1.0, [gate("pair_count", 0.9, 2)])
    write(run, 2, "failed", 2.0, [gate("pair_count", 0.1, 2)])
    found = collect_gates(run)
    assert [(g.name, g.value) for g in found] == [
        ("pair_count", 0.1),
        ("reward_accuracy_train", 0.8),
    ]


def test_a_stage_in_progress_shows_its_marker(tmp_path):
    run = RunDir(tmp_path)
    write(run, 1, "done", 1.0, [])
    atomic_write_json(run.staging(1) / "manifest.json", stage_manifest(1, "s1", "running", "f", 1))
    assert stage_state(run, 1)["status"] == "running"
    assert stage_state(run, 2) is None


def test_summary_metrics_are_the_records_scalars_but_files(tmp_path):
    run = RunDir(tmp_path)
    manifest = {
        "name": "sft",
        "status": "done",
        "seconds": 2.5,
        "files": ["model"],
        "outputs": {"model": "model", "val_loss": 1.5, "baseline": {"x": 1.0}, "trained": True},
        "processes": 2,
        "strategy": "ddp",
    }
    assert manifest_scalars(manifest) == {"val_loss": 1.5, "trained": True}
    atomic_write_json(run.manifest(1), manifest)
    write_summary(run, "passed", 3.0, None)
    summary = read_json(run.summary)
    assert summary["stages"] == {
        "1": {"name": "sft", "status": "done", "seconds": 2.5, "processes": 2, "strategy": "ddp"}
    }
    assert summary["metrics"] == {"stage1_sft.val_loss": 1.5, "stage1_sft.trained": True}


def test_the_summary_keeps_every_evaluation_of_a_gate_with_its_stage(tmp_path):
    # kl_divergence is evaluated after stages 5, 6 and 7; stage 5's failed in warn mode
    run = RunDir(tmp_path)
    warned = Gate("kl_divergence", 0.12, 0.1, "<=", 5, mode="warn")
    write(run, 5, "done", 1.0, [warned, gate("entropy", 1.0, 5)])
    write(run, 6, "done", 2.0, [Gate("kl_divergence", 0.08, 0.1, "<=", 6)])
    write(run, 7, "done", 3.0, [Gate("kl_divergence", 0.09, 0.1, "<=", 7)])
    write_summary(run, "passed", 3.0, "deploy")
    summary = read_json(run.summary)
    assert summary["gates"]["kl_divergence"] == {
        "value": 0.09,
        "threshold": 0.1,
        "passed": True,
        "stage": 7,
    }
    found = [(g["name"], g["stage"], g["value"], g["passed"]) for g in summary["gate_evaluations"]]
    assert found == [
        ("kl_divergence", 5, 0.12, False),
        ("entropy", 5, 1.0, True),
        ("kl_divergence", 6, 0.08, True),
        ("kl_divergence", 7, 0.09, True),
    ]
    assert summary["gate_evaluations"][0]["mode"] == "warn"

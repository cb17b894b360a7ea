"""Stage 1, SFT (srft/stages/sft.py), on the shared run of the small world: the run of stages
1-4 it starts, a second run that skips them all, and its gates (none)."""

import pytest

from srft.artifacts import read_json, read_jsonl
from srft.config import GATE_NAMES
from srft.outputs import RewardOutputs, SFTOutputs, read_outputs
from srft.pipeline import Pipeline
from tests.runs import STAGES, finished_times, gate_settings, restore

# The gates of stages 2 to 4, the stages of the shared run.
GATES = GATE_NAMES[:6]


@pytest.mark.slow
def test_end_to_end_run(good_run):
    run = good_run.run
    assert (good_run.status, good_run.decision) == ("passed", None)
    restore(good_run)  # the files below as the good config leaves them, whatever ran before
    for number in STAGES:
        manifest = read_json(run.manifest(number))
        assert manifest["status"] == "done"
        assert len(manifest["fingerprint"]) == 64
        assert manifest["stage"] == number
    model = read_outputs(run, SFTOutputs).model
    assert (model / "config.json").is_file()
    assert (model / "model.safetensors").is_file()
    for name in ("pairs_train.jsonl", "pairs_val.jsonl", "data_report.md"):
        assert (run.stage(2) / name).is_file()
    assert (read_outputs(run, RewardOutputs).model / "model.safetensors").is_file()
    assert (run.stage(4) / "validation_report.md").is_file()
    assert not list((run.root / ".staging").glob("stage*"))  # every stage was published

    summary = good_run.summary
    assert list(summary) == [
        "status",
        "run",
        "wall_seconds",
        "stages",
        "gates",
        "gate_evaluations",
        "metrics",
        "decision",
    ]
    assert summary["status"] == "passed"
    assert summary["decision"] is None
    assert summary["run"] == "run"
    assert set(summary["stages"]) == {"1", "2", "3", "4"}
    assert set(GATES) <= set(summary["gates"])
    for name in ("preference_gap", "pair_count", "decontamination"):
        assert summary["gates"][name]["passed"] is True, name
    assert summary["gates"]["pair_count"]["value"] >= 100
    assert summary["metrics"]["stage2_preferences.pairs"] == summary["gates"]["pair_count"]["value"]

    decisions = good_run.decisions
    assert [(r["stage"], r["decision"]) for r in decisions] == [
        (1, "pass"),
        (2, "pass"),
        (3, "pass"),
        (4, "pass"),
    ]
    assert {row["stage"] for row in good_run.metrics} == {1, 2, 3, 4}
    now = read_json(run.summary)["gates"]  # stage 2 never reruns under the good config
    for name in ("preference_gap", "pair_count", "decontamination"):
        assert now[name] == summary["gates"][name]

    splits = {
        name: read_jsonl(run.stage(2) / f"pairs_{name}.jsonl") for name in ("train", "val", "test")
    }
    assert sum(map(len, splits.values())) == summary["gates"]["pair_count"]["value"]
    # held out by prompt: 20% and 10% of the prompts, no prompt in two splits
    prompts = {name: {row["prompt"] for row in rows} for name, rows in splits.items()}
    total = sum(map(len, prompts.values()))
    assert len(set().union(*prompts.values())) == total
    assert (len(prompts["val"]), len(prompts["test"])) == (round(0.2 * total), round(0.1 * total))


@pytest.mark.slow
def test_second_run_skips_every_stage(good_run):
    before = restore(good_run)
    decisions = len(read_jsonl(good_run.run.decisions))
    outcome = Pipeline(good_run.config, good_run.run.root).execute(STAGES)
    assert outcome.status == "passed"
    assert finished_times(good_run.run) == before
    assert len(read_jsonl(good_run.run.decisions)) == decisions  # nothing ran, nothing decided
    assert read_json(good_run.run.summary)["status"] == "passed"


@pytest.mark.slow
def test_stage_1_evaluates_no_gate(good_run):
    assert gate_settings(good_run.manifests[1]) == []

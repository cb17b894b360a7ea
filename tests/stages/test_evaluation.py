"""Stage 7, evaluation (srft/stages/evaluation.py): the run of stages 5-7 on the shared run and
its report, a reward model that rewards filler flagged as hacked, and the stage's gates."""

import pytest

from srft.artifacts import read_json, read_jsonl
from srft.config import GATE_NAMES, load_config
from srft.outputs import RLOutputs, read_outputs
from srft.run_dir import RunDir
from tests.runs import SMALL_WORLD, gate_settings, restore, run_restoring_threads


@pytest.mark.slow
def test_stages_5_to_7_finish_the_run_with_a_report(good_run, stages_5_to_7):
    restore(good_run)
    run = good_run.run
    outcome = stages_5_to_7.outcome
    assert outcome.status == "passed"
    for number in (5, 6, 7):
        assert read_json(run.manifest(number))["status"] == "done"
    assert (read_outputs(run, RLOutputs).model / "model.safetensors").is_file()
    rl = read_json(run.manifest(5))["outputs"]
    assert rl["steps"] == 6
    assert rl["episodes"] == 96
    assert rl["final_kl_per_token_nats"] >= 0
    names = {row["name"] for row in read_jsonl(run.metrics) if row["stage"] == 5}
    assert {"kl_per_token_nats", "entropy_nats", "reward", "judge_score", "policy_loss"} <= names
    table = read_json(run.stage(6) / "iterations.json")["iterations"]
    assert [row["iteration"] for row in table] == [0, 1]
    assert table[1]["status"] in ("accepted", "converged", "rolled_back")
    assert (run.stage(6) / "model" / "model.safetensors").is_file()
    evaluation = read_json(run.stage(7) / "evaluation_report.json")
    assert set(evaluation["metrics"]["benchmarks"]) == {"next", "last"}
    assert 0 <= evaluation["metrics"]["win_rate"] <= 1
    assert "reward_criterion_correlation" in evaluation["interpretability"]

    summary = read_json(run.summary)
    assert set(GATE_NAMES) == set(summary["gates"])
    assert summary["decision"] in ("deploy", "stop", "rollback")
    report = run.report_md.read_text()
    assert "### Stage 7: Evaluation & Monitoring" in report
    assert "| capability_retention | 7 |" in report


def filler_lover(prompts: list[str], responses: list[str]) -> list[float]:
    """A biased annotator: the more filler words, the better (the gold judge penalises them)."""
    from srft.world.lexicon import FILLERS

    return [min(1.0, sum(w in FILLERS for w in r.split()) / 2) for r in responses]


@pytest.mark.slow
def test_a_reward_model_that_rewards_filler_is_flagged_as_hacked(tmp_path):
    config = load_config(
        None,
        [
            *SMALL_WORLD,
            "annotation.callable=tests.stages.test_evaluation:filler_lover",
            "rl_training.learning_rate=1e-4",
            "rl_training.max_steps=15",
            "rl_training.early_stop_on_kl=false",
            "iteration.max_iterations=0",
        ],
    )
    run = RunDir(tmp_path / "run")
    outcome = run_restoring_threads(config, run.root, [1, 2, 3, 4, 5, 6, 7])
    assert outcome.status == "passed"
    metrics = read_json(run.stage(7) / "evaluation_report.json")["metrics"]
    assert metrics["reward_gain"] > 0
    assert metrics["judge_gain"] <= 0.01
    assert metrics["reward_hacking"] is True
    assert outcome.decision == "stop"
    assert "Reward hacking check: FLAGGED" in run.report_md.read_text()


@pytest.mark.slow
def test_stage_7_gates_take_their_thresholds_from_constraints(good_run, stages_5_to_7):
    c = good_run.config.constraints
    # All in warn mode, as SMALL_WORLD's gates.mode says.
    assert gate_settings(stages_5_to_7.manifests[7]) == [
        ("capability_retention", ">=", c.min_capability_retention, "", "warn"),
        ("win_rate", ">", c.min_win_rate, "", "warn"),
        ("kl_divergence", "<=", c.kl_target, "nats/token", "warn"),
        ("reward_accuracy_val", ">=", c.reward_accuracy_target, "", "warn"),
    ]

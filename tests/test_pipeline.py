"""The stage graph (srft/pipeline.py): --stages, the registered stages, and with stand-in
stages (no training) publishing, skipping, reruns, resuming, retries, warn mode and stopping. The
real stages' end-to-end runs are in tests/stages."""

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest

import srft.pipeline
from srft.artifacts import atomic_write_json, read_json, read_jsonl
from srft.config import SrftConfig, load_config
from srft.decisions import Adjustment
from srft.errors import SrftError
from srft.outputs import StageOutputs
from srft.pipeline import Pipeline, parse_stages, stage_specs
from srft.run_dir import RunDir
from srft.stages.base import StageContext, StageResult, StageSpec
from tests.runs import Interrupted

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


# --- the stage graph, with stand-in stages (no training) -------------------------------------


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
    """Stage 2 whose pair count is 12.5 per sample per prompt: 8 -> 100, 16 -> 200."""
    count = 12.5 * ctx.config.annotation.samples_per_prompt
    return StageResult(outputs_of(ctx), [ctx.gate("pair_count", count, 200.0, ">=")])


def test_retry_with_adjusted_settings_then_pass(tmp_path, monkeypatch):
    calls = install(monkeypatch, {2: count_grows_with_samples}, adjust=more_samples)
    run = RunDir(tmp_path / "run")
    outcome = Pipeline(stand_in_config(), run.root).execute([1, 2])
    assert outcome.status == "passed"
    assert [ctx.attempt for ctx in calls[2]] == [0, 1]
    assert [c.config.annotation.samples_per_prompt for c in calls[2]] == [8, 16]
    rows = read_jsonl(run.decisions)
    assert [(r["stage"], r["decision"]) for r in rows] == [(1, "pass"), (2, "retry"), (2, "pass")]
    assert rows[1]["changes"] == {"annotation.samples_per_prompt": 16}
    assert rows[1]["rerun_from"] == 2
    manifest = read_json(run.manifest(2))
    assert manifest["adjustments"] == {"annotation.samples_per_prompt": 16}
    assert manifest["attempt"] == 1
    assert manifest["settings"]["annotation"]["samples_per_prompt"] == 16


def test_retries_run_out(tmp_path, monkeypatch):
    calls = install(monkeypatch, {2: failing_gate}, adjust=more_samples)
    run = RunDir(tmp_path / "run")
    outcome = Pipeline(stand_in_config("gates.max_retries=2"), run.root).execute([1, 2])
    assert (outcome.status, outcome.decision) == ("failed", "stop")
    assert len(calls[2]) == 3  # the first attempt and two retries
    decisions = [r["decision"] for r in read_jsonl(run.decisions) if r["stage"] == 2]
    assert decisions == ["retry", "retry", "stop"]
    assert read_jsonl(run.decisions)[-1]["reason"] == "retries exhausted"


def more_sft_epochs(config: SrftConfig, failed, attempt: int) -> Adjustment:
    return Adjustment({"sft.epochs": config.sft.epochs * 2}, "more SFT", rerun_from=1)


def test_a_remedy_for_an_earlier_stage_builds_on_the_settings_it_last_ran_with(
    tmp_path, monkeypatch
):
    # stage 2 fails every time and sends stage 1 back with twice the epochs it ran with
    calls = install(monkeypatch, {2: failing_gate}, adjust=more_sft_epochs)
    run = RunDir(tmp_path / "run")
    config = stand_in_config("gates.max_retries=2", "sft.epochs=1")
    assert Pipeline(config, run.root).execute([1, 2]).status == "failed"
    assert [ctx.config.sft.epochs for ctx in calls[1]] == [1, 2, 4]
    changes = [r.get("changes") for r in read_jsonl(run.decisions) if r["decision"] == "retry"]
    assert changes == [{"sft.epochs": 2}, {"sft.epochs": 4}]


def test_a_failed_attempt_is_forgotten_once_the_stage_is_current_again(tmp_path, monkeypatch):
    # pair_count is 5: it holds against min_pairs 1 and fails against 1000
    install(monkeypatch, {2: failing_gate})
    run = RunDir(tmp_path / "run")
    good, bad = stand_in_config("constraints.min_pairs=1"), stand_in_config()
    assert Pipeline(good, run.root).execute([1, 2]).status == "passed"
    assert Pipeline(bad, run.root).execute([1, 2]).status == "failed"
    assert run.failed_manifest(2).exists()
    outcome = Pipeline(good, run.root).execute([1, 2])  # stage 2 skipped: published, current
    assert outcome.status == "passed"
    assert not run.failed_manifest(2).exists()
    assert read_json(run.summary)["gates"]["pair_count"]["passed"] is True

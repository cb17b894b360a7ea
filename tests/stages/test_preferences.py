"""Stage 2, preference data (srft/stages/preferences.py): its gates on imported pairs (no model
is loaded), and on the shared run: a pair count short of its minimum stops the run and keeps the
published stage, and the gates' thresholds come from constraints."""

import itertools
import shutil

import pytest

import srft.stages.preferences
from srft.artifacts import atomic_write_jsonl, read_json, read_jsonl
from srft.config import load_config
from srft.errors import DataError
from srft.outputs import PreferenceOutputs
from srft.pipeline import Pipeline
from srft.run_dir import RunDir
from srft.stages.base import StageContext, StageResult
from srft.tracking import Tracker
from tests.runs import SMALL_WORLD, STAGES, gate_settings, restore

# --- imported pairs ----------------------------------------------------------------------------

# The benchmark's one item is "name the river ... stands today amber": 16 tokens.
BENCHMARK_ITEM = {
    "prompt": "name the river that runs through the old town where the blue bridge stands today",
    "answer": "amber",
}
# 13 tokens of the benchmark item, in order: the default n-gram of decontamination.
SHARED_SPAN = "name the river that runs through the old town where the blue bridge"


def pair(i: int, score_chosen: float | None = 0.9, score_rejected: float | None = 0.4) -> dict:
    """A pair whose prompt shares no 8 tokens with the benchmark item."""
    row = {
        "prompt": f"question {i}: count the apples in basket number {i}",
        "chosen": f"there are {i} apples",
        "rejected": "no idea",
    }
    if score_chosen is not None:
        row |= {"score_chosen": score_chosen, "score_rejected": score_rejected}
    return row


def contaminated(i: int) -> dict:
    """A pair whose prompt holds SHARED_SPAN (16 tokens, so 13-token n-grams are compared)."""
    return {**pair(i), "prompt": f"question {i}: please {SHARED_SPAN}"}


def stage_2_on(tmp_path, rows: list[dict], *overrides: str) -> StageResult:
    """Stage 2 run by hand on `rows` imported from a file (data.train_file), decontaminated
    against BENCHMARK_ITEM."""
    pairs = atomic_write_jsonl(tmp_path / "pairs.jsonl", rows)
    benchmark = atomic_write_jsonl(tmp_path / "benchmark.jsonl", [BENCHMARK_ITEM])
    config = load_config(
        None,
        [
            "model.base_model=unused",  # imported pairs need no policy: nothing is loaded
            f"data.train_file={pairs}",
            f"evaluation.benchmarks={{river: {benchmark}}}",
            "evaluation.judge=null",
            *overrides,
        ],
    )
    run = RunDir(tmp_path / "run")
    ctx = StageContext(config, run, 2, run.staging(2), Tracker(run.metrics, 2), PreferenceOutputs)
    return srft.stages.preferences.run(ctx)


def by_name(result: StageResult) -> dict:
    return {g.name: g for g in result.gates}


def test_imported_pairs_that_meet_the_constraints_pass_every_gate(tmp_path):
    result = stage_2_on(tmp_path, [pair(i) for i in range(10)], "constraints.min_pairs=10")
    gates = by_name(result)
    assert list(gates) == ["preference_gap", "pair_count", "decontamination"]
    assert gates["preference_gap"].value == pytest.approx(0.5)  # 0.9 - 0.4 on every pair
    assert (gates["pair_count"].value, gates["pair_count"].threshold) == (10.0, 10.0)
    assert gates["decontamination"].value == 1.0
    assert all(g.passed and g.stage == 2 and g.mode == "enforce" for g in result.gates)
    outputs = result.outputs
    assert (outputs.source, outputs.pairs, outputs.contaminated) == ("file", 10, 0)
    # of 10 prompts, 10% held out for the test and 20% for validation
    assert (outputs.pairs_train, outputs.pairs_val, outputs.pairs_test) == (7, 2, 1)
    assert outputs.test_source == "split"
    staging = tmp_path / "run" / ".staging" / "stage2_preferences"
    split = {
        name: {row["prompt"] for row in read_jsonl(staging / f"pairs_{name}.jsonl")}
        for name in ("train", "val", "test")
    }
    assert [len(prompts) for prompts in split.values()] == [7, 2, 1]
    assert set.union(*split.values()) == {pair(i)["prompt"] for i in range(10)}
    logged = {row["name"]: row["value"] for row in read_jsonl(tmp_path / "run" / "metrics.jsonl")}
    assert logged["pairs"] == 10.0


def test_a_prompt_s_pairs_stay_in_one_split_and_a_test_file_is_the_test_set(tmp_path):
    # three pairs for each of 20 prompts: no prompt may reach two splits
    rows = [{**pair(i), "chosen": f"{i} apples, answer {k}"} for i in range(20) for k in range(3)]
    test_rows = [pair(i) for i in range(100, 104)]
    test_file = atomic_write_jsonl(tmp_path / "test.jsonl", test_rows)
    for given in ((), (f"data.test_file={test_file}",)):
        outputs = stage_2_on(tmp_path, rows, "constraints.min_pairs=10", *given).outputs
        staging = tmp_path / "run" / ".staging" / "stage2_preferences"
        prompts = [
            {row["prompt"] for row in read_jsonl(staging / f"pairs_{name}.jsonl")}
            for name in ("train", "val", "test")
        ]
        assert all(not a & b for a, b in itertools.combinations(prompts, 2))
        if given:  # the user's test pairs; 20% of the prompts for validation, the rest to train
            assert (outputs.test_source, outputs.pairs_test) == ("file", 4)
            assert prompts[2] == {row["prompt"] for row in test_rows}
            assert (outputs.pairs, outputs.pairs_train, outputs.pairs_val) == (60, 48, 12)
        else:  # 2 prompts (10%) for the test, 4 (20%) for validation
            assert (outputs.test_source, outputs.pairs_test) == ("split", 6)
            assert (outputs.pairs, outputs.pairs_train, outputs.pairs_val) == (60, 42, 12)


def test_too_few_prompts_to_split_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="2 distinct prompts are too few"):
        stage_2_on(tmp_path, [pair(0), pair(1)], "constraints.min_pairs=1")


def test_ten_imported_pairs_fail_the_pair_count_of_1000(tmp_path):
    gates = by_name(stage_2_on(tmp_path, [pair(i) for i in range(10)]))
    count = gates["pair_count"]
    assert (count.value, count.threshold, count.comparison) == (10.0, 1000.0, ">=")
    assert not count.passed
    assert count.blocking
    assert gates["preference_gap"].passed and gates["decontamination"].passed


@pytest.mark.parametrize(
    ("score_chosen", "score_rejected", "gap", "passed"),
    [
        (0.9, 0.4, 0.5, True),
        (0.7, 0.5, 0.2, True),  # over the minimum of 0.15
        (0.6, 0.5, 0.1, False),  # under it
        (0.5, 0.5, 0.0, False),  # ties only
    ],
)
def test_preference_gap_of_imported_pairs(tmp_path, score_chosen, score_rejected, gap, passed):
    rows = [pair(i, score_chosen, score_rejected) for i in range(10)]
    found = by_name(stage_2_on(tmp_path, rows, "constraints.min_pairs=10"))["preference_gap"]
    assert found.value == pytest.approx(gap)
    assert found.threshold == 0.15
    assert found.passed is passed


def test_preference_gap_on_another_score_scale(tmp_path):
    rows = [pair(i, 8, 5) for i in range(10)]
    result = stage_2_on(tmp_path, rows, "constraints.min_pairs=10", "data.score_scale=[1, 10]")
    gap = by_name(result)["preference_gap"]
    assert gap.value == pytest.approx(1 / 3)  # (8 - 5) / (10 - 1)
    assert gap.passed


def test_pairs_without_scores_have_no_measurable_gap(tmp_path):
    rows = [pair(i, None, None) for i in range(10)]
    gap = by_name(stage_2_on(tmp_path, rows, "constraints.min_pairs=10"))["preference_gap"]
    assert gap.value is None
    assert not gap.passed
    assert gap.note == "no annotator scores"


def test_preference_gap_failing_in_warn_mode_does_not_block(tmp_path):
    rows = [pair(i, 0.6, 0.5) for i in range(10)]
    overrides = ("constraints.min_pairs=10", "gates.mode={preference_gap: warn}")
    gap = by_name(stage_2_on(tmp_path, rows, *overrides))["preference_gap"]
    assert (gap.passed, gap.mode, gap.blocking) == (False, "warn", False)


@pytest.mark.parametrize(
    ("n_contaminated", "score", "passed"),
    [
        (0, 1.0, True),
        (1, 0.9, True),  # 9 of 10 clean: exactly the minimum
        (2, 0.8, False),
        (6, 0.4, False),  # most pairs share the span
    ],
)
def test_decontamination_of_imported_pairs(tmp_path, n_contaminated, score, passed):
    rows = [contaminated(i) for i in range(n_contaminated)]
    rows += [pair(i) for i in range(n_contaminated, 10)]
    result = stage_2_on(tmp_path, rows, "constraints.min_pairs=10")
    gate = by_name(result)["decontamination"]
    assert gate.value == pytest.approx(score)
    assert gate.threshold == 0.9
    assert gate.passed is passed
    assert result.outputs.contaminated == n_contaminated


def test_a_span_one_token_short_of_13_is_no_contamination(tmp_path):
    twelve = " ".join(SHARED_SPAN.split()[:12])
    rows = [{**pair(i), "prompt": f"question {i}: please {twelve} canal"} for i in range(10)]
    gate = by_name(stage_2_on(tmp_path, rows, "constraints.min_pairs=10"))["decontamination"]
    assert (gate.value, gate.passed) == (1.0, True)


def test_a_short_prompt_equal_to_an_evaluation_prompt_is_contamination(tmp_path):
    prompts = atomic_write_jsonl(tmp_path / "held_out.jsonl", [{"prompt": "What is 7 + 5?"}])
    rows = [{**pair(i), "prompt": "what is 7 + 5 ?"} for i in range(2)]
    rows += [{**pair(i), "prompt": f"what is 7 - {i} ?"} for i in range(2, 10)]
    overrides = ("constraints.min_pairs=10", f"data.eval_prompts_file={prompts}")
    result = stage_2_on(tmp_path, rows, *overrides)
    gate = by_name(result)["decontamination"]
    assert (gate.value, gate.passed) == (pytest.approx(0.8), False)
    assert result.outputs.contaminated == 2


def test_dropping_the_contaminated_pairs_lets_decontamination_pass(tmp_path):
    # 10 of 20 pairs share a 13-gram with the benchmark: 0.50, short of 0.9. The decision
    # after stage 2 drops them, and the rerun publishes the 10 clean pairs: 1.0.
    rows = [contaminated(i) for i in range(10)] + [pair(i) for i in range(10, 20)]
    pairs = atomic_write_jsonl(tmp_path / "pairs.jsonl", rows)
    benchmark = atomic_write_jsonl(tmp_path / "benchmark.jsonl", [BENCHMARK_ITEM])
    config = load_config(
        None,
        [
            "model.base_model=unused",
            f"data.train_file={pairs}",
            f"evaluation.benchmarks={{river: {benchmark}}}",
            "evaluation.judge=null",
            "constraints.min_pairs=10",
        ],
    )
    outcome = Pipeline(config, tmp_path / "run").execute([2])
    assert outcome.status == "passed"
    decisions = read_jsonl(tmp_path / "run" / "decisions.jsonl")
    first, second = (row for row in decisions if row["stage"] == 2)
    assert first["decision"] == "retry"
    assert first["changes"] == {"data.drop_contaminated": True}
    found = {g["name"]: g["value"] for g in first["gates"]}
    assert found["decontamination"] == pytest.approx(0.5)
    assert {g["name"]: g["value"] for g in second["gates"]}["decontamination"] == 1.0
    outputs = read_json(tmp_path / "run" / "stage2_preferences" / "manifest.json")["outputs"]
    assert (outputs["contaminated"], outputs["contaminated_dropped"]) == (10, 10)
    assert (outputs["decontamination_found"], outputs["decontamination"]) == (0.5, 1.0)
    assert (outputs["pairs"], outputs["pairs_train"], outputs["pairs_val"]) == (10, 7, 2)
    kept = read_jsonl(tmp_path / "run" / "stage2_preferences" / "pairs_train.jsonl")
    assert not any(SHARED_SPAN in row["prompt"] for row in kept)


# --- on the shared run of the small world ------------------------------------------------------


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
    assert new_rows[0]["changes"]["annotation.samples_per_prompt"] == 16
    failed = [g for g in new_rows[-1]["gates"] if not g["passed"]]
    assert [g["name"] for g in failed] == ["pair_count"]
    # The earlier good run's stage 2 is untouched; the failed attempt stays in .staging.
    assert (run.stage(2) / "pairs_train.jsonl").read_bytes() == pairs_before
    assert read_json(run.manifest(2)) == manifest_before
    assert read_json(run.staging(2) / "manifest.json")["status"] == "failed"


@pytest.mark.slow
def test_stage_2_gates_take_their_thresholds_from_constraints(good_run):
    c = good_run.config.constraints
    # Enforced: SMALL_WORLD's gates.mode leaves stage 2's gates out.
    assert gate_settings(good_run.manifests[2]) == [
        ("preference_gap", ">=", c.min_preference_gap, "", "enforce"),
        ("pair_count", ">=", c.min_pairs, "", "enforce"),
        ("decontamination", ">=", c.min_decontamination, "", "enforce"),
    ]


@pytest.mark.slow
def test_hybrid_annotation_takes_the_human_labels_and_measures_agreement(good_run, tmp_path):
    # Humans label 40 of the responses stage 2 samples, scoring them the reverse of the
    # annotator; the annotator labels the rest. The same SFT model and seed sample the same
    # responses, so the labels join by id.
    restore(good_run)
    run = tmp_path / "run"
    for part in ("world", "stage1_sft"):
        shutil.copytree(good_run.run.root / part, run / part)
    candidates = read_jsonl(good_run.run.stage(2) / "candidates.jsonl")
    assert {row["labelled_by"] for row in candidates} == {"annotator"}
    labelled = candidates[:40]
    labels = atomic_write_jsonl(
        tmp_path / "labels.jsonl",
        [{"id": row["id"], "score": 1.0 - row["score"]} for row in labelled],
    )
    config = load_config(
        None,
        [
            *SMALL_WORLD,
            "annotation.type=labels_file",
            f"annotation.labels_file={labels}",
            "annotation.hybrid=true",
        ],
    )
    assert Pipeline(config, run).execute([2]).status == "passed"
    outputs = read_json(run / "stage2_preferences" / "manifest.json")["outputs"]
    assert (outputs["human_labels"], outputs["ai_labels"]) == (40, len(candidates) - 40)
    # the reverse of the annotator's order: it agrees only where it ties
    assert outputs["human_ai_ordered_pairs"] > 0
    assert outputs["human_ai_agreement"] < 0.5
    rows = read_jsonl(run / "stage2_preferences" / "candidates.jsonl")
    human = [row for row in rows if row["labelled_by"] == "human"]
    assert sorted(row["id"] for row in human) == sorted(row["id"] for row in labelled)
    assert all(
        row["score"] == 1.0 - by_id["score"]
        for row, by_id in zip(
            sorted(human, key=lambda r: r["id"]),
            sorted(labelled, key=lambda r: r["id"]),
            strict=True,
        )
    )

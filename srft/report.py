"""report.md and report.html: the seed's stage-by-stage checklist filled in from the run's
manifests, with the gate table, the iteration table and the decisions (and, in the HTML, the
run's figures). A box is ticked only where the measured value holds; a box that cannot be
measured says why."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from srft.artifacts import atomic_write_text, read_json, read_jsonl
from srft.errors import SrftError
from srft.gates import Gate
from srft.manifests import collect_gates, latest_manifest
from srft.outputs import (
    EvaluationOutputs,
    IterationOutputs,
    PreferenceOutputs,
    RewardOutputs,
    RewardValidationOutputs,
    RLOutputs,
    SFTOutputs,
    StageOutputs,
    outputs_from_manifest,
)
from srft.plots import figures
from srft.run_dir import STAGE_FOLDERS, RunDir
from srft.tables import iteration_table

DEFINITIONS = """\
- **preference gap**: mean over pairs of `s(chosen) - s(rejected)`, with `s` the annotator's
  score normalised to [0, 1].
- **decontamination**: fraction of training examples (prompt and responses) sharing no n-gram
  of `n` tokens (default 13, shorter texts use their length, minimum 8) with any evaluation item;
  a text under 8 tokens is compared whole: equal to an evaluation item, or, from 4 tokens on,
  held by one.
- **reward accuracy**: fraction of pairs with `r(chosen) > r(rejected)`, ties counted half.
- **KL**: mean over generated response tokens of the exact KL(policy || reference) of the
  next-token distributions at the visited states, nats per token.
- **entropy**: mean over generated response tokens of the policy's next-token entropy, nats.
- **capability retention**: mean over benchmarks of `final / baseline` (a benchmark whose
  baseline is 0 is reported, not averaged).
- **win rate**: fraction of held-out prompts on which the judge prefers the final policy's
  response to the SFT policy's response, ties counted half.
"""


def write_report(run: RunDir, records_of: Sequence[type[StageOutputs]]) -> Path:
    """Write report.md for the run as it stands, reading each stage's outputs record (of the
    classes `records_of`); returns its path."""
    manifests = {}
    records: dict[int, StageOutputs] = {}
    unreadable: dict[int, str] = {}  # e.g. a manifest an older srft wrote
    for record in records_of:  # a failed attempt newer than the published stage shows
        manifest = latest_manifest(run, record.STAGE)
        if manifest is None:
            continue
        manifests[record.STAGE] = manifest
        try:
            records[record.STAGE] = outputs_from_manifest(
                record, manifest, run.stage(record.STAGE), check_files=False
            )
        except SrftError as err:
            unreadable[record.STAGE] = str(err)
    gates = collect_gates(run)
    summary = read_json(run.summary) if run.summary.exists() else {}
    lines = [
        f"# SRF report: {run.name}",
        "",
        f"Status: **{summary.get('status', 'unknown')}**; deploy decision: "
        f"**{summary.get('decision') or 'none'}**; wall time {summary.get('wall_seconds', 0):.1f} s.",
        "",
        "## Quality gates",
        "",
        "| gate | stage | value | target | mode | status |",
        "|---|---|---|---|---|---|",
    ]
    for g in gates:
        status = "passed" if g.passed else "FAILED"
        lines.append(
            f"| {g.name} | {g.stage} | {g.describe_value()} | {g.describe_threshold()} | "
            f"{g.mode} | {status} |"
        )
    lines += ["", "## Stages", "", "| stage | status | seconds |", "|---|---|---|"]
    for number, m in manifests.items():
        lines.append(f"| {number} {m['name']} | {m['status']} | {m['seconds']:.1f} |")
    lines += ["", "## Stage-by-stage checklists", ""]
    by_stage = {n: {g.name: g for g in gates if g.stage == n} for n in STAGE_FOLDERS}
    rows = read_jsonl(run.metrics) if run.metrics.exists() else []
    for number, title in TITLES.items():
        lines += [f"### Stage {number}: {title}", ""]
        record = records.get(number)
        render = CHECKLISTS.get(type(record))
        if number in unreadable:
            lines.append(f"- [ ] outputs record unreadable: {unreadable[number]}")
        elif record is None:
            lines.append("- [ ] not run in this run directory")
        elif render is None:
            lines.append(f"- [ ] no checklist for {type(record).__name__}")
        else:
            manifest = manifests[number]
            done = manifest["status"] == "done"
            evidence = Evidence(
                gates=by_stage[number],
                folder=run.stage(number) if done else run.staging(number),
                done=done,
                logged=frozenset(r["name"] for r in rows if r.get("stage") == number),
            )
            lines += render(record, evidence) + _truncation(record)
        lines.append("")
    iterations = records.get(IterationOutputs.STAGE)
    if isinstance(iterations, IterationOutputs) and iterations.iterations:
        lines += ["## Iterations", "", iteration_table(iterations.iterations), ""]
    decisions = read_jsonl(run.decisions) if run.decisions.exists() else []
    notable = [d for d in decisions if d["decision"] != "pass"]
    lines += ["## Decisions", ""]
    lines += [f"- stage {d['stage']}: **{d['decision']}**: {d['reason']}" for d in notable] or [
        "- every gate passed at the first attempt"
    ]
    lines += ["", "## Definitions", "", DEFINITIONS]
    markdown = "\n".join(lines)
    atomic_write_text(run.report_md, markdown)
    table = (
        [row.model_dump() for row in iterations.iterations]
        if isinstance(iterations, IterationOutputs)
        else None
    )
    atomic_write_text(
        run.report_html, render_html(run.name, markdown, figures(rows, table, gates, decisions))
    )
    return run.report_md


def render_html(title: str, markdown: str, images: dict[str, str]) -> str:
    """report.md as a standalone HTML page, with the run's figures after the checklists."""
    body = MarkdownIt("commonmark").enable("table").render(markdown)
    body = body.replace("<li>[x] ", "<li>&#9745; ").replace("<li>[ ] ", "<li>&#9744; ")
    plots = "".join(
        f"<h3>{html.escape(name)}</h3><img alt='{html.escape(name)}' src='{uri}'>"
        for name, uri in images.items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>SRF report: {html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}"
        f"{'<h2>Figures</h2>' + plots if plots else ''}</body></html>\n"
    )


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}"
    "ul{list-style:none;padding-left:1rem}img{max-width:100%}"
)


@dataclass(frozen=True)
class Evidence:
    """What a stage's checklist is derived from besides its outputs record: its gates by name,
    its folder (published, or the failed attempt's), whether it is done, and the names of the
    metrics it logged."""

    gates: dict[str, Gate]
    folder: Path
    done: bool
    logged: frozenset[str]

    def holds(self, relative: str) -> bool:
        """Whether the stage's folder holds `relative` (a file or a folder with files)."""
        path = self.folder / relative
        return path.is_file() or (path.is_dir() and any(path.iterdir()))


TRUNCATION_FIELDS = ("truncated_examples", "truncated_prompts", "truncated_pairs")


def _truncation(record: StageOutputs) -> list[str]:
    """The stage's count of inputs cut to the length limits, where it keeps one (not a box:
    a number to read before signing off)."""
    lines = []
    for name in TRUNCATION_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            lines.append(f"- Truncated: {value} {type(record).model_fields[name].description}")
    return lines


def _box(ok: bool | None, text: str, why: str = "") -> str:
    if ok is None:
        return f"- [ ] {text} (not measured: {why})" if why else f"- [ ] {text}"
    return f"- [{'x' if ok else ' '}] {text}"


def _gate_box(gates: dict[str, Gate], name: str, label: str) -> str:
    gate = gates.get(name)
    if gate is None:
        return _box(None, f"{label}: _____", "no such gate in this stage")
    return _box(
        gate.passed, f"{label}: {gate.describe_value()} (target {gate.describe_threshold()})"
    )


def _number(value: Any, digits: int = 4) -> str:
    return (
        "n/a"
        if value is None
        else f"{value:.{digits}f}"
        if isinstance(value, float)
        else str(value)
    )


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _stage1(o: SFTOutputs, e: Evidence) -> list[str]:
    rows = [
        _box(_finite(o.val_loss), "Base model loaded and verified (a finite validation loss)"),
        _box(o.train_examples > 0, f"SFT data validated: {o.train_examples} train examples"),
        _box(
            o.train_examples > 0 and o.val_examples > 0,
            f"Train/validation split created: {o.train_examples}/{o.val_examples}",
        ),
        _box(o.trained and e.done, "SFT training completed successfully"),
        _box(_finite(o.val_perplexity), f"Validation perplexity: {_number(o.val_perplexity)}"),
        _box(bool(o.baseline), "Capability benchmarks run and recorded"),
    ]
    for name in ("mmlu", "humaneval", "gsm8k"):
        if name not in o.baseline:
            rows.append(
                _box(None, f"  {name} score: _____", "not configured in evaluation.benchmarks")
            )
    for name, score in sorted(o.baseline.items()):
        rows.append(_box(_finite(score), f"  {name}: {_number(score)}"))
    rows.append(
        _box(
            e.holds("model/config.json"),
            "Model checkpoint saved: stage1_sft/model (save_pretrained)",
        )
    )
    return rows


def _stage2(o: PreferenceOutputs, e: Evidence) -> list[str]:
    imported = o.source == "file"
    return [
        _box(
            o.unique_prompts >= 1000,
            f"Prompt dataset: {o.unique_prompts} unique prompts (target >= 1000)",
        ),
        _box(None, "Responses per prompt: from the file", "imported pairs")
        if imported
        else _box(
            (o.samples_per_prompt or 0) >= 2,
            f"Responses per prompt: {o.samples_per_prompt} (target >= 2)",
        ),
        _box(o.pairs > 0, f"Preference pairs collected ({o.source}): {o.pairs}"),
        _box(
            o.pairs > 0,
            "Data format validated (JSONL prompt/chosen/rejected)"
            + (f": {o.invalid_rows_dropped} invalid rows dropped" if imported else ""),
        ),
        _gate_box(e.gates, "preference_gap", "Preference gap"),
        _gate_box(e.gates, "pair_count", "Pair count"),
        _gate_box(e.gates, "decontamination", "Decontamination score"),
        _box(
            o.pairs_train > 0 and o.pairs_val > 0 and o.pairs_test > 0,
            f"Data splits created: {o.pairs_train} train / {o.pairs_val} validation / "
            f"{o.pairs_test} test",
        ),
        _box(
            o.pairs_test > 0,
            f"Held-out test set prepared: {o.pairs_test} pairs, "
            + ("prompts disjoint from training" if o.test_source == "split" else "data.test_file"),
        ),
        _box(
            o.label_judge_disagreement is not None,
            f"Labels disagreeing with the judge: {_number(o.label_judge_disagreement)}",
        ),
    ]


def _stage3(o: RewardOutputs, e: Evidence) -> list[str]:
    return [
        _box(e.done and o.train_pairs > 0, f"Reward model initialised from {o.base} and trained"),
        _box(
            o.train_pairs > 0 and o.val_pairs > 0,
            f"Training data loaded: {o.train_pairs} pairs, {o.val_pairs} validation",
        ),
        _box(
            _finite(o.loss_train) and _finite(o.loss_val),
            "Loss function: binary cross-entropy on r(chosen) - r(rejected): "
            f"{_number(o.loss_train)} train, {_number(o.loss_val)} validation",
        ),
        _gate_box(e.gates, "reward_accuracy_train", "Training accuracy"),
        _gate_box(e.gates, "reward_accuracy_val", "Validation accuracy"),
        _box(any("loss" in name for name in e.logged), "Loss curves in metrics.jsonl"),
        _box(
            bool(o.best_checkpoint) and e.holds("model/config.json"),
            f"Best checkpoint saved ({o.best_checkpoint or 'none'})",
        ),
    ]


def _stage4(o: RewardValidationOutputs, e: Evidence) -> list[str]:
    margin = o.accuracy_over_length_baseline
    return [
        _box(
            o.held_out_pairs > 0,
            f"Test set: {o.held_out_pairs} pairs, never trained or selected on",
        ),
        _gate_box(e.gates, "reward_accuracy_val", "Reward model scores on test set"),
        _gate_box(e.gates, "train_val_gap", "Train/val gap"),
        _box(
            None if margin is None else margin > 0,
            f"Ahead of 'the longer reply wins' ({_number(o.longer_reply_accuracy_val)}) by "
            f"{_number(margin)}",
            "no baseline measured",
        ),
        _box(
            o.reward_accuracy_judge is not None,
            f"Accuracy against the judge: {_number(o.reward_accuracy_judge)}",
        ),
        _box(
            bool(o.edge_cases),
            "Edge case testing completed (empty, truncated, repeated, prompt echoed)",
        ),
        _box(
            o.consistency.consistent,
            f"Reward consistency: max margin difference {_number(o.consistency.max_abs_diff, 6)}",
        ),
        _box(
            e.holds("validation_report.md"),
            f"Failure modes documented (validation_report.md): {len(o.failure_modes)} shown",
        ),
        _box(
            o.length_bias.correlation is not None,
            f"Length bias: reward/length correlation {_number(o.length_bias.correlation)}",
        ),
    ]


def _stage5(o: RLOutputs, e: Evidence) -> list[str]:
    offline = o.algorithm == "DPO"
    loss = f"{_number(o.policy_loss_first_steps)} -> {_number(o.policy_loss_last_steps)}"
    if offline:  # DPO's loss is its objective: it falls as the policy learns the pairs
        falling = None
        if o.policy_loss_first_steps is not None and o.policy_loss_last_steps is not None:
            falling = o.policy_loss_last_steps < o.policy_loss_first_steps
        loss_box = _box(falling, f"DPO loss falling: {loss}")
    else:
        loss_box = _box(None, f"Policy loss: {loss}", "a PPO surrogate has no trend to expect")
    return [
        _box(o.steps > 0, f"RL algorithm: {o.algorithm} (value model: {o.value_model})"),
        _box(
            e.done and o.steps > 0,
            "Policy initialised from the SFT model and trained; reward model frozen",
        ),
        _box(
            o.steps > 0,
            f"Training: {o.steps} steps, {o.episodes} {'pairs' if offline else 'episodes'}, "
            f"{o.rollbacks} KL rollbacks",
        ),
        _gate_box(e.gates, "kl_divergence", "KL divergence"),
        _gate_box(e.gates, "entropy", "Entropy"),
        _box(
            o.reward_improving,
            f"Average reward trending up{' (held-out samples)' if offline else ''}: "
            f"{_number(o.reward_first_steps)} -> "
            f"{_number(o.reward_last_steps)}",
        ),
        loss_box,
        _box(
            e.holds("model/config.json") and "held_out_kl_per_token_nats" in e.logged,
            "Policy and logs saved (stage5_rl/model, metrics.jsonl)",
        ),
    ]


def _stage6(o: IterationOutputs, e: Evidence) -> list[str]:
    ran = bool(o.iterations)
    rows = [_box(ran, f"Score source: {o.score_source}")]
    for row in o.iterations:
        rows.append(
            _box(
                row.status != "rolled_back",
                f"Iteration {row.iteration} score: {row.score:.4f} ({row.status})",
            )
        )
    rows += [
        _box(ran, f"Best iteration: {o.best_iteration}"),
        _box(bool(o.stop_reason), f"Decision: {o.stop_reason}"),
        _gate_box(e.gates, "kl_divergence", "KL divergence"),
        _gate_box(e.gates, "entropy", "Entropy"),
    ]
    return rows


def _stage7(o: EvaluationOutputs, e: Evidence) -> list[str]:
    final_model = Path(o.final_model)
    rows = [_box(final_model.exists(), f"Final model: {final_model.parent.name}")]
    retention = e.gates.get("capability_retention")
    floor = retention.threshold if retention and isinstance(retention.threshold, float) else 1.0
    for name, score in sorted(o.benchmarks.items()):
        baseline = o.baseline.get(name)
        held = baseline is not None and score >= floor * baseline
        rows.append(
            _box(
                held,
                f"  {name}: {score:.4f} (baseline: {_number(baseline)}; held: at least "
                f"{floor:g} x baseline)",
            )
        )
    hacking = o.reward_hacking
    found = "FLAGGED" if hacking else "not flagged" if hacking is False else "no judge"
    rows += [
        _gate_box(e.gates, "capability_retention", "Retention rate"),
        _gate_box(e.gates, "win_rate", "Win rate vs SFT"),
        _box(
            None
            if o.final.reward is None or o.sft.reward is None
            else o.final.reward > o.sft.reward,
            f"Reward model score on held-out prompts: {_number(o.final.reward)} "
            f"(SFT: {_number(o.sft.reward)})",
            "no reward measured",
        ),
        _box(None, "Human eval score: _____ /10", "no human evaluation in an automated run"),
        _gate_box(e.gates, "kl_divergence", "Final KL divergence"),
        _gate_box(e.gates, "reward_accuracy_val", "Reward accuracy maintained"),
        _box(
            bool(
                o.interpretability.reward_criterion_correlation
                or o.interpretability.reward_length_correlation is not None
            ),
            _interpretability(o),
        ),
        _box(
            hacking is False,
            f"Reward hacking check: {found} (reward {_number(o.reward_gain)}, "
            f"judge {_number(o.judge_gain)})",
        ),
        _box(o.deploy_decision == "deploy", f"Deployment decision: {o.deploy_decision}"),
    ]
    return rows


def _interpretability(o: EvaluationOutputs) -> str:
    found = o.interpretability
    parts = [f"reward/length correlation {_number(found.reward_length_correlation)}"]
    for name, value in (found.reward_criterion_correlation or {}).items():
        parts.append(f"{name} {_number(value)}")
    return "Reward interpretability: " + ", ".join(parts)


TITLES = {
    1: "SFT Preparation",
    2: "Preference Data Generation",
    3: "Reward Model Training",
    4: "Reward Model Validation",
    5: "RL Fine-tuning",
    6: "Iterative Training",
    7: "Evaluation & Monitoring",
}
CHECKLISTS: dict[type, Callable[[Any, Evidence], list[str]]] = {
    SFTOutputs: _stage1,
    PreferenceOutputs: _stage2,
    RewardOutputs: _stage3,
    RewardValidationOutputs: _stage4,
    RLOutputs: _stage5,
    IterationOutputs: _stage6,
    EvaluationOutputs: _stage7,
}

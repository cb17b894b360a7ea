"""report.md and report.html: the seed's stage-by-stage checklist filled in from the run's
manifests, with the gate table, the iteration table and the decisions (and, in the HTML, the
run's figures). A box is ticked only where the measured value holds; a box that cannot be
measured says why."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from srft.artifacts import atomic_write_text, read_json, read_jsonl
from srft.gates import Gate
from srft.pipeline import collect_gates
from srft.plots import figures
from srft.run_dir import STAGE_FOLDERS, RunDir

DEFINITIONS = """\
- **preference gap**: mean over pairs of `s(chosen) - s(rejected)`, with `s` the annotator's
  score normalised to [0, 1].
- **decontamination**: fraction of training examples (prompt and responses) sharing no n-gram
  of `n` tokens (default 13, shorter texts use their length, minimum 8) with any evaluation item.
- **reward accuracy**: fraction of pairs with `r(chosen) > r(rejected)`, ties counted half.
- **KL**: mean over generated response tokens of the exact KL(policy || reference) of the
  next-token distributions at the visited states, nats per token.
- **entropy**: mean over generated response tokens of the policy's next-token entropy, nats.
- **capability retention**: mean over benchmarks of `final / baseline` (a benchmark whose
  baseline is 0 is reported, not averaged).
- **win rate**: fraction of held-out prompts on which the judge prefers the final policy's
  response to the SFT policy's response, ties counted half.
"""


def write_report(run: RunDir) -> Path:
    """Write report.md for the run as it stands; returns its path."""
    manifests = {}
    for number in STAGE_FOLDERS:  # a failed attempt newer than the published stage shows
        found = [
            read_json(path)
            for path in (run.manifest(number), run.root / ".staging" / f"failed_stage{number}.json")
            if path.exists()
        ]
        if found:
            manifests[number] = max(found, key=lambda m: m.get("finished", 0))
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
    for number, render in CHECKLISTS.items():
        manifest = manifests.get(number)
        lines.append(f"### Stage {number}: {TITLES[number]}")
        lines.append("")
        if manifest is None:
            lines += ["- [ ] not run in this run directory", ""]
            continue
        metrics = manifest.get("metrics", {})
        checks = manifest.get("checks", {})
        for item in render(metrics, checks, by_stage[number]):
            lines.append(item)
        lines.append("")
    iterations = manifests.get(6, {}).get("metrics", {}).get("iterations")
    if iterations:
        lines += ["## Iterations", "", iteration_table(iterations), ""]
    decisions = read_jsonl(run.decisions) if run.decisions.exists() else []
    notable = [d for d in decisions if d["decision"] != "pass"]
    lines += ["## Decisions", ""]
    lines += [f"- stage {d['stage']}: **{d['decision']}**: {d['reason']}" for d in notable] or [
        "- every gate passed at the first attempt"
    ]
    lines += ["", "## Definitions", "", DEFINITIONS]
    markdown = "\n".join(lines)
    atomic_write_text(run.report_md, markdown)
    rows = read_jsonl(run.metrics) if run.metrics.exists() else []
    atomic_write_text(run.report_html, render_html(run.name, markdown, figures(rows, iterations)))
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


def _stage1(m: dict, c: dict, g: dict) -> list[str]:
    baseline = m.get("baseline", {})
    rows = [
        _box(True, "Base model loaded and verified"),
        _box(True, f"SFT data validated: {m.get('train_examples')} train examples"),
        _box(
            True,
            f"Train/validation split created: {m.get('train_examples')}/{m.get('val_examples')}",
        ),
        _box(m.get("trained"), "SFT training completed successfully"),
        _box(
            m.get("val_perplexity") is not None,
            f"Validation perplexity: {_number(m.get('val_perplexity'))}",
        ),
        _box(bool(baseline), "Capability benchmarks run and recorded"),
    ]
    for name in ("mmlu", "humaneval", "gsm8k"):
        if name not in baseline:
            rows.append(
                _box(None, f"  {name} score: _____", "not configured in evaluation.benchmarks")
            )
    for name, score in sorted(baseline.items()):
        rows.append(_box(True, f"  {name}: {score:.4f}"))
    rows.append(_box(True, "Model checkpoint saved: stage1_sft/model (save_pretrained)"))
    return rows


def _stage2(m: dict, c: dict, g: dict) -> list[str]:
    return [
        _box(
            m.get("unique_prompts", 0) >= 1000,
            f"Prompt dataset: {m.get('unique_prompts')} unique prompts (target >= 1000)",
        ),
        _box(
            m.get("samples_per_prompt", 2) >= 2,
            f"Responses per prompt: {m.get('samples_per_prompt', 'from file')}",
        ),
        _box(True, f"Preference pairs collected ({m.get('source')})"),
        _box(True, "Data format validated (JSONL prompt/chosen/rejected)"),
        _gate_box(g, "preference_gap", "Preference gap"),
        _gate_box(g, "pair_count", "Pair count"),
        _gate_box(g, "decontamination", "Decontamination score"),
        _box(
            True,
            f"Data splits created: {m.get('pairs_train')} train / {m.get('pairs_val')} validation",
        ),
        _box(
            m.get("label_judge_disagreement") is not None,
            f"Labels disagreeing with the judge: {_number(m.get('label_judge_disagreement'))}",
        ),
    ]


def _stage3(m: dict, c: dict, g: dict) -> list[str]:
    return [
        _box(True, f"Reward model initialised from {m.get('base')}"),
        _box(
            True,
            f"Training data loaded: {m.get('train_pairs')} pairs, {m.get('val_pairs')} validation",
        ),
        _box(True, "Loss function: binary cross-entropy on r(chosen) - r(rejected)"),
        _gate_box(g, "reward_accuracy_train", "Training accuracy"),
        _gate_box(g, "reward_accuracy_val", "Validation accuracy"),
        _box(True, "Loss curves in metrics.jsonl"),
        _box(True, f"Best checkpoint saved ({m.get('best_checkpoint')})"),
    ]


def _stage4(m: dict, c: dict, g: dict) -> list[str]:
    consistency = c.get("consistency", {})
    length = c.get("length_bias", {})
    judge = m.get("reward_accuracy_judge")
    return [
        _box(True, f"Held-out set: {m.get('held_out_pairs')} pairs"),
        _gate_box(g, "reward_accuracy_val", "Validation accuracy"),
        _gate_box(g, "train_val_gap", "Train/val gap"),
        _box(judge is not None, f"Accuracy against the judge: {_number(judge)}"),
        _box(
            bool(c.get("edge_cases")),
            "Edge case testing completed (empty, truncated, repeated, prompt echoed)",
        ),
        _box(
            consistency.get("consistent"),
            f"Reward consistency: max difference {_number(consistency.get('max_abs_diff'), 6)}",
        ),
        _box(bool(c.get("failure_modes")), "Failure modes documented (validation_report.md)"),
        _box(
            length.get("correlation") is not None,
            f"Length bias: reward/length correlation {_number(length.get('correlation'))}",
        ),
    ]


def _stage5(m: dict, c: dict, g: dict) -> list[str]:
    return [
        _box(True, f"RL algorithm: {m.get('algorithm')} (value model: {m.get('value_model')})"),
        _box(True, "Policy initialised from the SFT model; reward model frozen"),
        _box(
            True,
            f"Training: {m.get('steps')} steps, {m.get('episodes')} episodes, {m.get('rollbacks')} KL rollbacks",
        ),
        _gate_box(g, "kl_divergence", "KL divergence"),
        _gate_box(g, "entropy", "Entropy"),
        _box(
            c.get("reward_improving"),
            f"Average reward trending up: {_number(m.get('reward_first_steps'))} -> {_number(m.get('reward_last_steps'))}",
        ),
        _box(
            None,
            f"Policy loss: {_number(m.get('policy_loss_first_steps'))} -> {_number(m.get('policy_loss_last_steps'))}",
            "a PPO surrogate has no trend to expect",
        ),
        _box(True, "Checkpoints and logs saved (stage5_rl/checkpoints, metrics.jsonl)"),
    ]


def _stage6(m: dict, c: dict, g: dict) -> list[str]:
    rows = [_box(True, f"Score source: {m.get('score_source')}")]
    for row in m.get("iterations", []):
        rows.append(
            _box(
                row["status"] != "rolled_back",
                f"Iteration {row['iteration']} score: {row['score']:.4f} ({row['status']})",
            )
        )
    rows += [
        _box(True, f"Best iteration: {m.get('best_iteration')}"),
        _box(True, f"Decision: {m.get('stop_reason')}"),
        _gate_box(g, "kl_divergence", "KL divergence"),
        _gate_box(g, "entropy", "Entropy"),
    ]
    return rows


def _stage7(m: dict, c: dict, g: dict) -> list[str]:
    rows = [_box(True, f"Final model: {Path(str(m.get('final_model'))).parent.name}")]
    baseline = m.get("baseline", {})
    for name, score in sorted(m.get("benchmarks", {}).items()):
        rows.append(_box(True, f"  {name}: {score:.4f} (baseline: {baseline.get(name, 0):.4f})"))
    final, sft = m.get("final", {}), m.get("sft", {})
    rows += [
        _gate_box(g, "capability_retention", "Retention rate"),
        _gate_box(g, "win_rate", "Win rate vs SFT"),
        _box(
            True,
            f"Reward model score on held-out prompts: {_number(final.get('reward'))} (SFT: {_number(sft.get('reward'))})",
        ),
        _box(None, "Human eval score: _____ /10", "no human evaluation in an automated run"),
        _gate_box(g, "kl_divergence", "Final KL divergence"),
        _gate_box(g, "reward_accuracy_val", "Reward accuracy maintained"),
        _box(
            bool(
                c.get("reward_criterion_correlation")
                or c.get("reward_length_correlation") is not None
            ),
            _interpretability(c),
        ),
        _box(
            m.get("reward_hacking") is False,
            f"Reward hacking check: {'FLAGGED' if m.get('reward_hacking') else 'not flagged' if m.get('reward_hacking') is False else 'no judge'} (reward {_number(m.get('reward_gain'))}, judge {_number(m.get('judge_gain'))})",
        ),
        _box(True, f"Deployment decision: {m.get('deploy_decision')}"),
    ]
    return rows


def _interpretability(c: dict) -> str:
    parts = [f"reward/length correlation {_number(c.get('reward_length_correlation'))}"]
    for name, value in (c.get("reward_criterion_correlation") or {}).items():
        parts.append(f"{name} {_number(value)}")
    return "Reward interpretability: " + ", ".join(parts)


def iteration_table(table: list[dict]) -> str:
    """The per-iteration table of stage 6 as Markdown."""
    lines = [
        "| iteration | score | RM accuracy (val) | KL (nats/token) | entropy (nats) | status |",
        "|---|---|---|---|---|---|",
    ]
    for row in table:
        lines.append(
            f"| {row['iteration']} | {row['score']:.4f} | {row['reward_accuracy_val']:.4f} | "
            f"{row['kl_per_token_nats']:.4f} | {row['entropy_nats']:.4f} | {row['status']} |"
        )
    return "\n".join(lines)


TITLES = {
    1: "SFT Preparation",
    2: "Preference Data Generation",
    3: "Reward Model Training",
    4: "Reward Model Validation",
    5: "RL Fine-tuning",
    6: "Iterative Training",
    7: "Evaluation & Monitoring",
}
CHECKLISTS = {1: _stage1, 2: _stage2, 3: _stage3, 4: _stage4, 5: _stage5, 6: _stage6, 7: _stage7}

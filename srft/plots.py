"""Figures of a run for report.html, drawn from metrics.jsonl and decisions.jsonl: the reward
model's training curves, the RL trajectories (KL, entropy, proxy reward beside the gold judge)
and the iteration scores.

Each stage attempt is a series of its own. Within an attempt, a KL rollback sends training back
to a checkpoint: the steps it undid are drawn faint, and a dotted red line marks where it rolled
back. The gates' targets are drawn where a panel has one: the KL bound, the entropy band and the
validation accuracy target."""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from srft.gates import Gate  # noqa: E402

#: stage 6 logs step = iteration * ROUND_STRIDE + step (srft.stages.iterations)
ROUND_STRIDE = 100_000
RL_STAGES = ((5, "RL fine-tuning (stage 5)"), (6, "Iterations' RL (stage 6)"))
ROLLBACK_STYLE = {"color": "tab:red", "linestyle": ":", "linewidth": 1}
TARGET_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 1}

Points = list[tuple[float, float]]


@dataclass(frozen=True)
class Targets:
    """The gates' thresholds a figure draws (None: the run did not evaluate that gate)."""

    kl_bound: float | None = None
    entropy_band: tuple[float, float] | None = None
    accuracy: float | None = None

    @classmethod
    def of(cls, gates: Iterable[Gate]) -> Targets:
        found = {gate.name: gate.threshold for gate in gates}
        band = found.get("entropy")
        return cls(
            kl_bound=found.get("kl_divergence"),  # type: ignore[arg-type]
            entropy_band=tuple(band) if isinstance(band, tuple | list) else None,  # type: ignore[arg-type]
            accuracy=found.get("reward_accuracy_val"),  # type: ignore[arg-type]
        )


def series(rows: list[dict[str, Any]], stage: int, name: str) -> dict[int, Points]:
    """attempt -> (step, value) of one logged scalar of one stage, in the order logged."""
    found: dict[int, Points] = defaultdict(list)
    for row in rows:
        if row["stage"] == stage and row["name"] == name and row["step"] is not None:
            found[row.get("attempt", 0)].append((row["step"], row["value"]))
    return dict(found)


def rollback_steps(decisions: list[dict[str, Any]], stage: int) -> dict[int, list[float]]:
    """attempt -> the logged steps at which the KL guard of `stage` rolled back."""
    found: dict[int, list[float]] = defaultdict(list)
    for row in decisions:
        numbers = row.get("numbers", {})
        if row["stage"] == stage and row["decision"] == "rollback" and "metrics_step" in numbers:
            found[row["attempt"]].append(numbers["metrics_step"])
    return dict(found)


def figures(
    rows: list[dict[str, Any]],
    iterations: list[dict[str, Any]] | None,
    gates: Iterable[Gate] = (),
    decisions: list[dict[str, Any]] | None = None,
) -> dict[str, str]:
    """Title -> PNG image as a data URI, for each figure the run has data for."""
    targets = Targets.of(gates)
    found: dict[str, str] = {}
    loss, accuracy = series(rows, 3, "loss"), series(rows, 3, "eval_accuracy")
    if loss or accuracy:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3))
        _attempts(axes[0], loss, "training loss")
        _attempts(axes[1], accuracy, "validation accuracy")
        if targets.accuracy is not None:
            axes[1].axhline(targets.accuracy, **TARGET_STYLE, label="target")
        _legend(axes[1])
        found["Reward model training (stage 3)"] = _encode(fig)
    for stage, title in RL_STAGES:
        fig = rl_figure(rows, stage, targets, rollback_steps(decisions or [], stage))
        if fig is not None:
            found[title] = _encode(fig)
    if iterations:
        fig, axis = plt.subplots(figsize=(5, 3))
        _line(axis, [(row["iteration"], row["score"]) for row in iterations], marker="o")
        _titled(axis, "score")
        axis.set_xlabel("iteration")
        found["Score per iteration (stage 6)"] = _encode(fig)
    return found


def rl_figure(rows, stage: int, targets: Targets, rollbacks: dict[int, list[float]]):
    """KL (training batches, and the guard's held-out measurements), entropy, and the proxy
    reward with the gold judge on a second axis; None when the stage logged none of them."""
    data = {
        name: series(rows, stage, name)
        for name in ("kl_per_token_nats", "held_out_kl_per_token_nats", "entropy_nats")
        + ("reward", "judge_score")
    }
    if not any(data.values()):
        return None
    attempts = sorted({a for by_attempt in data.values() for a in by_attempt})
    layouts = {a: _layout([p for d in data.values() for p in d.get(a, [])]) for a in attempts}
    fig, (kl, ent, reward) = plt.subplots(1, 3, figsize=(14, 3.2))
    judge = reward.twinx() if data["judge_score"] else None
    for a in attempts:
        place, colour = layouts[a], f"C{a % 10}"
        label = f"attempt {a}" if len(attempts) > 1 else None
        _attempt(kl, data["kl_per_token_nats"].get(a, []), place, colour, label)
        held_out = [(place(s), v) for s, v in data["held_out_kl_per_token_nats"].get(a, [])]
        if held_out:
            kl.scatter(*zip(*held_out, strict=True), s=12, color=colour, marker="o", zorder=3)
        _attempt(ent, data["entropy_nats"].get(a, []), place, colour, label)
        _attempt(reward, data["reward"].get(a, []), place, colour, label)
        if judge is not None:
            _attempt(judge, data["judge_score"].get(a, []), place, colour, None, linestyle="--")
        for step in rollbacks.get(a, []):
            for axis in (kl, ent, reward):
                axis.axvline(place(step), **ROLLBACK_STYLE)
    if targets.kl_bound is not None:
        kl.axhline(targets.kl_bound, **TARGET_STYLE, label="KL bound")
    if targets.entropy_band is not None:
        ent.axhspan(*targets.entropy_band, color="tab:green", alpha=0.08, label="entropy band")
    if any(rollbacks.values()):
        kl.plot([], [], **ROLLBACK_STYLE, label="KL rollback")
    if data["held_out_kl_per_token_nats"]:
        kl.scatter([], [], s=12, color="0.3", label="held-out (guard)")
    _titled(kl, "KL (nats/token)")
    _titled(ent, "entropy (nats)")
    _titled(reward, "RM reward (solid)" + (", gold judge (dashed)" if judge else ""))
    if judge is not None:
        judge.set_ylabel("judge score", fontsize=8)
        judge.tick_params(labelsize=7)
    for axis in (kl, ent, reward):
        _legend(axis)
    return fig


def _layout(points: Points):
    """The x position of a logged step: stage 6's rounds (step // ROUND_STRIDE) laid end to
    end, each starting where the one before ended."""
    ends: dict[int, float] = defaultdict(float)
    for step, _ in points:
        ends[int(step) // ROUND_STRIDE] = max(ends[int(step) // ROUND_STRIDE], step % ROUND_STRIDE)
    offsets, total = {}, 0.0
    for number in sorted(ends):
        offsets[number], total = total, total + ends[number]
    return lambda step: offsets.get(int(step) // ROUND_STRIDE, 0.0) + step % ROUND_STRIDE


def _segments(points: Points) -> list[Points]:
    """A series cut where its step goes back (a rollback logs the undone steps again)."""
    parts: list[Points] = []
    for point in points:
        if not parts or point[0] <= parts[-1][-1][0]:
            parts.append([])
        parts[-1].append(point)
    return parts


def _attempt(axis, points: Points, place, colour: str, label: str | None, **style) -> None:
    """One attempt's series; the steps a rollback undid are drawn faint."""
    parts = _segments([(place(step), value) for step, value in points])
    for index, part in enumerate(parts):
        resumed = parts[index + 1][0][0] if index + 1 < len(parts) else float("inf")
        kept = [p for p in part if p[0] < resumed]
        undone = part[max(0, len(kept) - 1) :] if len(kept) < len(part) else []
        _line(axis, kept, color=colour, label=label, **style)
        _line(axis, undone, color=colour, alpha=0.3, **style)
        label = label if not kept else None


def _attempts(axis, by_attempt: dict[int, Points], title: str) -> None:
    for a, points in sorted(by_attempt.items()):
        label = f"attempt {a}" if len(by_attempt) > 1 else None
        _line(axis, points, color=f"C{a % 10}", label=label)
    _titled(axis, title)


def _line(axis, points: Points, **style) -> None:
    if points:
        xs, ys = zip(*points, strict=True)
        axis.plot(xs, ys, **style)


def _titled(axis, title: str) -> None:
    axis.set_title(title, fontsize=9)
    axis.set_xlabel("step", fontsize=8)
    axis.tick_params(labelsize=7)


def _legend(axis) -> None:
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7)


def _encode(fig) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

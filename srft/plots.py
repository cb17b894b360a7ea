"""Figures of a run for report.html, drawn from metrics.jsonl: the reward model's training
curves, the RL trajectories (KL, entropy, reward, judge score) and the iteration scores."""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RL_SERIES = (
    ("kl_per_token_nats", "KL (nats/token)"),
    ("entropy_nats", "entropy (nats)"),
    ("reward", "RM reward"),
    ("judge_score", "judge score"),
)


def series(rows: list[dict[str, Any]], stage: int, name: str) -> list[tuple[float, float]]:
    """(step, value) of one logged scalar of one stage, in the order they were logged."""
    return [
        (row["step"], row["value"])
        for row in rows
        if row["stage"] == stage and row["name"] == name and row["step"] is not None
    ]


def figures(rows: list[dict[str, Any]], iterations: list[dict[str, Any]] | None) -> dict[str, str]:
    """Title -> PNG image as a data URI, for each figure the run has data for."""
    found: dict[str, str] = {}
    loss = series(rows, 3, "loss")
    accuracy = series(rows, 3, "eval_accuracy")
    if loss or accuracy:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3))
        _line(axes[0], loss, "training loss")
        _line(axes[1], accuracy, "validation accuracy")
        found["Reward model training (stage 3)"] = _encode(fig)
    for stage, title in ((5, "RL fine-tuning (stage 5)"), (6, "Iterations' RL (stage 6)")):
        data = {name: series(rows, stage, name) for name, _ in RL_SERIES}
        if any(data.values()):
            fig, axes = plt.subplots(1, len(RL_SERIES), figsize=(14, 3))
            for axis, (name, label) in zip(axes, RL_SERIES, strict=True):
                _line(axis, _by_round(data[name]) if stage == 6 else data[name], label)
            found[title] = _encode(fig)
    if iterations:
        fig, axis = plt.subplots(figsize=(5, 3))
        _line(axis, [(row["iteration"], row["score"]) for row in iterations], "score", marker="o")
        axis.set_xlabel("iteration")
        found["Score per iteration (stage 6)"] = _encode(fig)
    return found


def _by_round(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Stage 6 logs step = iteration * 100000 + step; lay the rounds end to end."""
    by_round: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for step, value in points:
        by_round[int(step) // 100_000].append((step % 100_000, value))
    laid: list[tuple[float, float]] = []
    offset = 0.0
    for number in sorted(by_round):
        steps = by_round[number]
        laid += [(offset + step, value) for step, value in steps]
        offset += max(step for step, _ in steps)
    return laid


def _line(axis, points: list[tuple[float, float]], label: str, marker: str | None = None) -> None:
    if points:
        xs, ys = zip(*points, strict=True)
        axis.plot(xs, ys, marker=marker)
    axis.set_title(label, fontsize=9)
    axis.set_xlabel("step", fontsize=8)
    axis.tick_params(labelsize=7)


def _encode(fig) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

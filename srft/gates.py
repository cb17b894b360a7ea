"""Quality gates: a measured value, its threshold from `constraints`, and whether it holds.

Gate names are stable (they are keys of summary.json): preference_gap, pair_count,
decontamination, reward_accuracy_train, reward_accuracy_val, train_val_gap, kl_divergence,
entropy, capability_retention, win_rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

Comparison = Literal[">=", ">", "<=", "<", "in"]


@dataclass(frozen=True)
class Gate:
    """One evaluated gate. `value` None means the quantity could not be measured."""

    name: str
    value: float | None
    threshold: float | tuple[float, float]
    comparison: Comparison
    stage: int
    mode: Literal["enforce", "warn"] = "enforce"
    unit: str = ""
    note: str = ""

    @property
    def passed(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        v, t = self.value, self.threshold
        if self.comparison == "in":
            low, high = t  # type: ignore[misc]
            return low <= v <= high
        return {
            ">=": v >= t,  # type: ignore[operator]
            ">": v > t,  # type: ignore[operator]
            "<=": v <= t,  # type: ignore[operator]
            "<": v < t,  # type: ignore[operator]
        }[self.comparison]

    @property
    def blocking(self) -> bool:
        """A failed gate in `enforce` mode blocks the pipeline; in `warn` mode it is reported."""
        return not self.passed and self.mode == "enforce"

    def describe_threshold(self) -> str:
        if self.comparison == "in":
            low, high = self.threshold  # type: ignore[misc]
            return f"in [{low:g}, {high:g}]"
        return f"{self.comparison} {self.threshold:g}"

    def describe_value(self) -> str:
        if self.value is None:
            return "not measurable"
        unit = f" {self.unit}" if self.unit else ""
        if float(self.value).is_integer() and abs(self.value) >= 1:
            return f"{int(self.value)}{unit}"
        return f"{self.value:.4f}{unit}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["threshold"] = (
            list(self.threshold) if isinstance(self.threshold, tuple) else self.threshold
        )
        data["passed"] = self.passed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Gate:
        threshold = data["threshold"]
        return cls(
            name=data["name"],
            value=data["value"],
            threshold=tuple(threshold) if isinstance(threshold, list) else threshold,
            comparison=data["comparison"],
            stage=data["stage"],
            mode=data.get("mode", "enforce"),
            unit=data.get("unit", ""),
            note=data.get("note", ""),
        )


def gates_table(gates: list[Gate]) -> str:
    """The seed's "SRF Quality Gates Status" table, one line per gate."""
    rule = "=" * 60
    lines = ["", rule, "SRF Quality Gates Status", rule]
    for gate in gates:
        mark = "✅" if gate.passed else ("⚠️" if gate.mode == "warn" else "❌")
        lines.append(
            f"{mark} {gate.name}: {gate.describe_value()} (target {gate.describe_threshold()}, "
            f"stage {gate.stage})"
        )
    if not gates:
        overall = "no gates evaluated"
    else:
        overall = "❌ FAILED" if any(g.blocking for g in gates) else "✅ PASSED"
    lines += [rule, f"Overall: {overall}", rule, ""]
    return "\n".join(lines)


def monitor_quality_gates(
    reward_model_metrics: dict[str, Any], rl_training_metrics: dict[str, Any], config: Any
) -> dict[str, Any]:
    """Monitor SRF quality gates, with the seed's signature.

    Args:
        reward_model_metrics: reward model accuracy (`val_accuracy`, optional `train_accuracy`)
        rl_training_metrics: `kl` (nats per token) and `entropy` (nats per token)
        config: an SrftConfig or a dict with a `constraints` section

    Returns:
        {gate name: {"value", "threshold" or "range", "passed"}, ..., "overall": bool}; the
        table is printed as the seed's script does.
    """
    constraints = (
        config["constraints"] if isinstance(config, dict) else config.constraints.model_dump()
    )
    accuracy_target = constraints.get("reward_accuracy_target", 0.70)
    gates = [
        Gate("reward_accuracy", reward_model_metrics["val_accuracy"], accuracy_target, ">=", 4),
        Gate(
            "kl_divergence",
            rl_training_metrics["kl"],
            constraints.get("kl_target", 0.1),
            "<=",
            5,
            unit="nats/token",
        ),
        Gate(
            "entropy",
            rl_training_metrics["entropy"],
            (constraints.get("entropy_min", 0.5), constraints.get("entropy_max", 2.0)),
            "in",
            5,
            unit="nats/token",
        ),
    ]
    if "train_accuracy" in reward_model_metrics:
        gap = reward_model_metrics["train_accuracy"] - reward_model_metrics["val_accuracy"]
        gates.insert(
            1, Gate("train_val_gap", gap, constraints.get("max_train_val_gap", 0.10), "<", 4)
        )
    print(gates_table(gates))
    result: dict[str, Any] = {}
    for gate in gates:
        entry: dict[str, Any] = {"value": gate.value, "passed": gate.passed}
        key = "range" if gate.comparison == "in" else "threshold"
        entry[key] = list(gate.threshold) if isinstance(gate.threshold, tuple) else gate.threshold
        result[gate.name] = entry
    result["overall"] = all(g.passed for g in gates)
    return result

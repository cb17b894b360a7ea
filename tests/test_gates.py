import json
import math

import pytest

from srft.config import SrftConfig
from srft.gates import Gate, gates_table, monitor_quality_gates


def gate(value, threshold, comparison, mode="enforce", **kw) -> Gate:
    return Gate("g", value, threshold, comparison, 2, mode=mode, **kw)


# --- Gate.passed -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "comparison", "passed"),
    [
        (0.71, ">=", True),
        (0.70, ">=", True),  # equality meets a minimum
        (0.69, ">=", False),
        (0.71, ">", True),
        (0.70, ">", False),  # equality does not exceed
        (0.69, "<=", True),
        (0.70, "<=", True),  # equality stays within a maximum
        (0.71, "<=", False),
        (0.69, "<", True),
        (0.70, "<", False),  # equality is not below
        (0.71, "<", False),
    ],
)
def test_comparisons_against_threshold_0_7(value, comparison, passed):
    assert gate(value, 0.70, comparison).passed is passed


@pytest.mark.parametrize(
    ("value", "passed"),
    [(0.49, False), (0.5, True), (1.0, True), (2.0, True), (2.01, False)],
)
def test_band_is_inclusive(value, passed):
    assert gate(value, (0.5, 2.0), "in").passed is passed


@pytest.mark.parametrize("comparison", [">=", ">", "<=", "<"])
def test_not_measurable_fails(comparison):
    assert not gate(None, 0.5, comparison).passed
    assert not gate(math.nan, 0.5, comparison).passed


def test_not_measurable_band_fails():
    assert not gate(None, (0.5, 2.0), "in").passed
    assert not gate(math.nan, (0.5, 2.0), "in").passed


def test_failed_enforced_gate_blocks():
    assert gate(0.5, 0.7, ">=").blocking


def test_failed_warn_gate_does_not_block():
    warned = gate(0.5, 0.7, ">=", mode="warn")
    assert not warned.passed
    assert not warned.blocking


def test_passed_gate_never_blocks():
    assert not gate(0.8, 0.7, ">=").blocking
    assert not gate(0.8, 0.7, ">=", mode="warn").blocking


def test_not_measurable_enforced_gate_blocks():
    assert gate(None, 0.7, ">=").blocking


# --- descriptions ----------------------------------------------------------------------------


def test_describe_threshold():
    assert gate(1, 0.7, ">=").describe_threshold() == ">= 0.7"
    assert gate(1, 1000.0, ">=").describe_threshold() == ">= 1000"
    assert gate(1, (0.5, 2.0), "in").describe_threshold() == "in [0.5, 2]"


def test_describe_value():
    assert gate(None, 0.7, ">=").describe_value() == "not measurable"
    assert gate(0.123456, 0.7, ">=").describe_value() == "0.1235"
    assert gate(1200.0, 1000.0, ">=").describe_value() == "1200"  # a count shows as an integer
    assert gate(0.05, 0.1, "<=", unit="nats/token").describe_value() == "0.0500 nats/token"


# --- serialisation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "original",
    [
        Gate("reward_accuracy_val", 0.72, 0.7, ">=", 4),
        Gate("entropy", 1.2, (0.5, 2.0), "in", 5, mode="warn", unit="nats/token", note="n"),
        Gate("preference_gap", None, 0.15, ">=", 2, note="no annotator scores"),
    ],
)
def test_to_dict_from_dict_round_trip(original):
    data = original.to_dict()
    assert data["passed"] is original.passed
    # Through JSON, as manifests and summary.json store gates: the band becomes a list.
    restored = Gate.from_dict(json.loads(json.dumps(data)))
    assert restored == original


def test_to_dict_band_is_a_list():
    data = gate(1.0, (0.5, 2.0), "in").to_dict()
    assert data["threshold"] == [0.5, 2.0]
    assert data["passed"] is True


def test_from_dict_defaults():
    restored = Gate.from_dict(
        {"name": "pair_count", "value": 5.0, "threshold": 10.0, "comparison": ">=", "stage": 2}
    )
    assert restored.mode == "enforce"
    assert restored.unit == ""
    assert restored.note == ""


# --- gates_table -----------------------------------------------------------------------------


def test_table_of_passing_gates():
    table = gates_table(
        [
            Gate("reward_accuracy_val", 0.8, 0.7, ">=", 4),
            Gate("entropy", 1.0, (0.5, 2.0), "in", 5),
        ]
    )
    assert "SRF Quality Gates Status" in table
    assert "✅ reward_accuracy_val: 0.8000 (target >= 0.7, stage 4)" in table
    assert "✅ entropy: 1 (target in [0.5, 2], stage 5)" in table
    assert "Overall: ✅ PASSED" in table


def test_table_with_a_failed_enforced_gate():
    table = gates_table(
        [Gate("pair_count", 10.0, 1000.0, ">=", 2), Gate("decontamination", 1.0, 0.9, ">=", 2)]
    )
    assert "❌ pair_count: 10 (target >= 1000, stage 2)" in table
    assert "Overall: ❌ FAILED" in table


def test_table_without_gates_says_so():
    # stage 1 alone measures no gate: neither passed nor failed
    assert "Overall: no gates evaluated" in gates_table([])


def test_table_with_only_a_warned_failure_passes():
    table = gates_table([Gate("train_val_gap", 0.2, 0.1, "<", 4, mode="warn")])
    assert "⚠️ train_val_gap" in table
    assert "Overall: ✅ PASSED" in table


# --- monitor_quality_gates, the seed's function ----------------------------------------------

SEED_CONFIG = {
    "constraints": {
        "kl_target": 0.1,
        "entropy_min": 0.5,
        "entropy_max": 2.0,
        "reward_accuracy_target": 0.70,
    }
}


def test_monitor_all_passing(capsys):
    result = monitor_quality_gates(
        {"val_accuracy": 0.75}, {"kl": 0.05, "entropy": 1.2}, SEED_CONFIG
    )
    assert result["reward_accuracy"] == {"value": 0.75, "threshold": 0.70, "passed": True}
    assert result["kl_divergence"] == {"value": 0.05, "threshold": 0.1, "passed": True}
    assert result["entropy"] == {"value": 1.2, "range": [0.5, 2.0], "passed": True}
    assert result["overall"] is True
    assert "train_val_gap" not in result  # only with a train accuracy
    printed = capsys.readouterr().out
    assert "SRF Quality Gates Status" in printed
    assert "Overall: ✅ PASSED" in printed


def test_monitor_failures(capsys):
    result = monitor_quality_gates(
        {"val_accuracy": 0.65}, {"kl": 0.15, "entropy": 0.3}, SEED_CONFIG
    )
    assert result["reward_accuracy"]["passed"] is False
    assert result["kl_divergence"]["passed"] is False
    assert result["entropy"]["passed"] is False
    assert result["overall"] is False
    assert "Overall: ❌ FAILED" in capsys.readouterr().out


def test_monitor_boundaries_pass(capsys):
    # accuracy == target, kl == target and entropy at each end of the band all hold.
    for entropy in (0.5, 2.0):
        result = monitor_quality_gates(
            {"val_accuracy": 0.70}, {"kl": 0.1, "entropy": entropy}, SEED_CONFIG
        )
        assert result["overall"] is True
    capsys.readouterr()


def test_monitor_train_val_gap(capsys):
    # gap = 0.90 - 0.75 = 0.15, not below the default maximum 0.10
    result = monitor_quality_gates(
        {"val_accuracy": 0.75, "train_accuracy": 0.90}, {"kl": 0.05, "entropy": 1.2}, SEED_CONFIG
    )
    assert result["train_val_gap"]["value"] == pytest.approx(0.15)
    assert result["train_val_gap"]["threshold"] == 0.10
    assert result["train_val_gap"]["passed"] is False
    assert result["overall"] is False
    assert "train_val_gap" in capsys.readouterr().out


def test_monitor_with_an_srft_config(capsys):
    config = SrftConfig()
    result = monitor_quality_gates({"val_accuracy": 0.75}, {"kl": 0.05, "entropy": 1.2}, config)
    assert result["reward_accuracy"]["threshold"] == config.constraints.reward_accuracy_target
    assert result["entropy"]["range"] == [
        config.constraints.entropy_min,
        config.constraints.entropy_max,
    ]
    assert result["overall"] is True
    capsys.readouterr()

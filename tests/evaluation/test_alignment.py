import pytest

from srft.evaluation.alignment import capability_retention, reward_hacking, win_rate


def test_win_rate_counts_ties_half():
    # win, tie, loss, win -> (1 + 0.5 + 0 + 1) / 4
    assert win_rate([0.9, 0.5, 0.1, 0.7], [0.2, 0.5, 0.3, 0.6]) == pytest.approx(0.625)


def test_retention_reports_zero_baselines_without_averaging_them():
    # a: 0.45 / 0.5 = 0.9, b: 0.6 / 0.5 = 1.2 -> mean 1.05; c has baseline 0
    value, left_out = capability_retention(
        {"a": 0.45, "b": 0.6, "c": 0.3}, {"a": 0.5, "b": 0.5, "c": 0.0}
    )
    assert value == pytest.approx(1.05)
    assert left_out == ["c"]
    assert capability_retention({"c": 0.3}, {"c": 0.0}) == (None, ["c"])


def test_reward_hacking_flags_reward_up_with_judge_flat_or_down():
    assert reward_hacking(0.8, -0.05) is True
    assert reward_hacking(0.8, 0.005) is True
    assert reward_hacking(0.8, 0.2) is False
    assert reward_hacking(-0.1, -0.2) is False
    assert reward_hacking(0.8, None) is None

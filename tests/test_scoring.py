"""The pieces judges and annotators are made of: weighted criteria and Bradley-Terry noise."""

import math

import pytest

from srft.scoring import WeightedCriteria, bradley_terry_noise


def test_a_weighted_judge_sums_its_criteria():
    judge = WeightedCriteria(
        lambda prompt, response: {"short": float(len(response) < 4), "polite": 0.5},
        {"short": 0.6, "polite": 0.4},
    )
    # "ok": 0.6 x 1 + 0.4 x 0.5 = 0.8; "a long one": 0.6 x 0 + 0.4 x 0.5 = 0.2
    assert judge.scores(["p", "p"], ["ok", "a long one"]) == pytest.approx([0.8, 0.2])
    assert judge.criteria_scores(["p"], ["ok"]) == [{"short": 1.0, "polite": 0.5}]


def test_noise_is_a_function_of_seed_prompt_and_response():
    args = ([0.5, 0.5], ["p", "p"], ["a", "b"], 0.1)
    assert bradley_terry_noise(*args, seed=1) == bradley_terry_noise(*args, seed=1)
    assert bradley_terry_noise(*args, seed=1) != bradley_terry_noise(*args, seed=2)
    first, second = bradley_terry_noise(*args, seed=1)
    assert first != second  # the same score, other responses: other noise


def test_noisy_scores_stay_in_the_unit_interval():
    found = bradley_terry_noise([0.0, 1.0] * 50, ["p"] * 100, [str(i) for i in range(100)], 1.0, 0)
    assert all(0.0 <= v <= 1.0 for v in found)


def test_the_rater_prefers_the_better_response_as_bradley_terry_says():
    # Scores 0.6 and 0.5 with noise 0.1: P(prefer the first) = sigmoid(0.1 / 0.1) = 0.731
    n = 4000
    better = bradley_terry_noise([0.6] * n, ["p"] * n, [f"a{i}" for i in range(n)], 0.1, 0)
    worse = bradley_terry_noise([0.5] * n, ["p"] * n, [f"b{i}" for i in range(n)], 0.1, 0)
    # (scores this far from 0 and 1 are rarely clipped, which would make ties)
    share = sum(b > w for b, w in zip(better, worse, strict=True)) / n
    assert share == pytest.approx(1 / (1 + math.exp(-1.0)), abs=0.03)

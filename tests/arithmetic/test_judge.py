import pytest

from srft.arithmetic.judge import gold_criteria, gold_scores, noisy_annotator

PROMPT = "What is 7 + 5? Answer with just the number."


@pytest.mark.parametrize(
    ("response", "correct", "bare"),
    [
        ("12", 1.0, 1.0),
        (" 12.\n", 1.0, 1.0),
        ("7 + 5 = 12", 1.0, 0.0),
        ("7 + 5 = 12\n\nThe number 13 is", 1.0, 0.0),
        ("13", 0.0, 1.0),
        ("To add 7 and 5, we", 0.0, 0.0),
        ("The sum is\n12", 0.0, 0.0),  # the answer must be on the first line
        ("", 0.0, 0.0),
    ],
)
def test_gold_criteria(response, correct, bare):
    assert gold_criteria(PROMPT, response) == {"correct": correct, "bare": bare}


def test_gold_score_weights_each_criterion_by_half():
    assert gold_scores([PROMPT] * 4, ["12", "7 + 5 = 12", "13", "7 + 5 = 13"]) == [
        1.0,
        0.5,
        0.5,
        0.0,
    ]


def test_differences_and_unknown_prompts():
    assert gold_scores(["What is 9 - 12? Answer with just the number."], ["-3"]) == [1.0]
    assert gold_scores(["Name three fruits."], ["12"]) == [0.0]


def test_annotator_noise_is_reproducible_and_clipped():
    responses = ["12", "7 + 5 = 12", "13", "twelve"]
    first = noisy_annotator([PROMPT] * 4, responses, seed=3)
    assert first == noisy_annotator([PROMPT] * 4, responses, seed=3)
    assert first != noisy_annotator([PROMPT] * 4, responses, seed=4)
    assert all(0.0 <= s <= 1.0 for s in first)
    exact = noisy_annotator([PROMPT] * 4, responses, noise=1e-9)
    assert exact == pytest.approx([1.0, 0.5, 0.5, 0.0], abs=1e-6)

"""The arithmetic task's verifiable judge and a noisy annotator built on it.

A response scores in [0, 1] on two criteria: `correct` (the answer is a number on the
response's first line) and `bare` (the response is just a number, as the prompt asks).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from srft.arithmetic.problems import parse_problem
from srft.scoring import WeightedCriteria, bradley_terry_noise

#: criterion -> weight in the gold score; the weights sum to 1.
CRITERIA_WEIGHTS: dict[str, float] = {"correct": 0.5, "bare": 0.5}

_NUMBER = re.compile(r"-?\d+")
_BARE = re.compile(r"-?\d+\.?")


def gold_criteria(prompt: str, response: str) -> dict[str, float]:
    """Each criterion's score, 1 when the response meets it and 0 when not."""
    problem = parse_problem(prompt)
    text = response.strip()
    if problem is None or not text:
        return dict.fromkeys(CRITERIA_WEIGHTS, 0.0)
    first_line = text.splitlines()[0]
    numbers = [int(n) for n in _NUMBER.findall(first_line)]
    correct = problem.answer in numbers
    return {
        "correct": float(correct),
        "bare": float(_BARE.fullmatch(text) is not None),
    }


#: the gold judge, registered as 'arithmetic' in srft.judges: `gold_scores` for the win rate,
#: `criteria_scores` for the report's reward interpretability (config keys evaluation.judge and
#: evaluation.judge_criteria)
JUDGE = WeightedCriteria(gold_criteria, CRITERIA_WEIGHTS)
gold_score = JUDGE.score
gold_scores = JUDGE.scores
criteria_scores = JUDGE.criteria_scores


def exact_answer(prompts: Sequence[str], completions: Sequence[str], **_) -> list[float]:
    """A verifiable reward (`rl_training.reward_functions`): 1.0 for a completion that is
    exactly the problem's answer, as the prompt asks, else 0.0 (also for a prompt that asks no
    problem)."""
    rewards = []
    for prompt, completion in zip(prompts, completions, strict=True):
        problem = parse_problem(prompt)
        text = completion.strip().rstrip(".")
        rewards.append(float(problem is not None and text == str(problem.answer)))
    return rewards


def noisy_annotator(
    prompts: Sequence[str], responses: Sequence[str], noise: float = 0.05, seed: int = 0
) -> list[float]:
    """The judge's score with Bradley-Terry noise of scale `noise` (see `bradley_terry_noise`)."""
    return bradley_terry_noise(gold_scores(prompts, responses), prompts, responses, noise, seed)

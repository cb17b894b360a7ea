"""The world's hidden gold judge and the noisy annotator built on it.

The gold judge scores a response to a list request ("name three fruits") in [0, 1] on five
criteria: three of task correctness and two of style. The reward model never sees these scores:
it learns from the annotator's labels, which follow the gold judge through Bradley-Terry noise
as a human rater's would.
"""

from __future__ import annotations

from collections.abc import Sequence

from srft.scoring import WeightedCriteria, bradley_terry_noise
from srft.world.lexicon import CATEGORIES, CATEGORY_OF, COUNT_WORDS, FILLERS

#: criterion -> weight in the gold score; the weights sum to 1.
CRITERIA_WEIGHTS: dict[str, float] = {
    "in_category": 0.3,  # correctness: every listed item belongs to the requested category
    "count": 0.15,  # correctness: exactly as many items as requested
    "distinct": 0.15,  # correctness: no item repeated
    "format": 0.20,  # style: items separated by commas, closed by a full stop
    "concise": 0.20,  # style: no filler words
}


def parse_request(prompt: str) -> tuple[int, str] | None:
    """The (count, category) a list prompt asks for, or None for any other prompt."""
    words = prompt.split()
    count = next((COUNT_WORDS.index(w) + 1 for w in words if w in COUNT_WORDS), None)
    category = next((w for w in words if w in CATEGORIES), None)
    if count is None or category is None:
        return None
    return count, category


def gold_criteria(prompt: str, response: str) -> dict[str, float]:
    """Each criterion's score, 1 when the response meets it and 0 when not."""
    request = parse_request(prompt)
    words = response.split()
    if request is None or not words:
        return dict.fromkeys(CRITERIA_WEIGHTS, 0.0)
    count, category = request
    items = [w for w in words if w in CATEGORY_OF]
    n_fillers = sum(w in FILLERS for w in words)
    body = [w for w in words if w not in FILLERS]
    if body and body[0] == "sure":
        body = body[1:]
    if body and body[0] == ":":
        body = body[1:]
    well_formed = (
        bool(items)
        and body[-1:] == ["."]
        and body[:-1]
        == [w for pair in zip(items, [","] * len(items), strict=True) for w in pair][:-1]
    )
    return {
        "in_category": float(bool(items) and all(CATEGORY_OF[w] == category for w in items)),
        "count": float(len(items) == count),
        "distinct": float(bool(items) and len(set(items)) == len(items)),
        "format": float(well_formed),
        "concise": float(n_fillers == 0),
    }


#: the gold judge, registered as 'world' in srft.judges: `gold_scores` for the win rate, `criteria_scores` for
#: the report's reward interpretability (config keys evaluation.judge and evaluation.judge_criteria)
JUDGE = WeightedCriteria(gold_criteria, CRITERIA_WEIGHTS)
gold_score = JUDGE.score
gold_scores = JUDGE.scores
criteria_scores = JUDGE.criteria_scores


def noisy_annotator(
    prompts: Sequence[str], responses: Sequence[str], noise: float = 0.31, seed: int = 0
) -> list[float]:
    """An AI annotator: the gold score with Bradley-Terry noise of scale `noise`."""
    return bradley_terry_noise(gold_scores(prompts, responses), prompts, responses, noise, seed)

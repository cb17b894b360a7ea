"""Scoring responses: the interfaces of judges and annotators, a judge made of weighted
criteria, and a human-like rater's Bradley-Terry noise. Pure Python, no model."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

#: (prompts, responses) -> a score per response, in [0, 1] for judges
Scorer = Callable[[Sequence[str], Sequence[str]], list[float]]


class Judge(Protocol):
    """A judge: a score in [0, 1] per response, and per response its criteria's scores."""

    def scores(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]: ...

    def criteria_scores(
        self, prompts: Sequence[str], responses: Sequence[str]
    ) -> list[dict[str, float]]: ...


def bradley_terry_noise(
    scores: Sequence[float],
    prompts: Sequence[str],
    responses: Sequence[str],
    noise: float,
    seed: int,
) -> list[float]:
    """A noisy rater's scores: each score plus Gumbel noise of scale `noise`, clipped to [0, 1].

    With Gumbel noise on each score, the rater prefers response a over b with probability
    sigmoid((score(a) - score(b)) / noise): the Bradley-Terry model. The noise of a response is
    a deterministic function of (seed, prompt, response), so labels are reproducible.
    """
    noisy = []
    for score, prompt, response in zip(scores, prompts, responses, strict=True):
        digest = hashlib.blake2b(f"{seed}\x1f{prompt}\x1f{response}".encode(), digest_size=8)
        u = (int.from_bytes(digest.digest(), "big") + 0.5) / 2**64
        noisy.append(min(1.0, max(0.0, score - noise * math.log(-math.log(u)))))
    return noisy


@dataclass(frozen=True)
class WeightedCriteria:
    """A judge made of per-criterion scores in [0, 1] and their weights, which sum to 1: a
    response's score is the weighted sum of its criteria."""

    criteria: Callable[[str, str], dict[str, float]]
    weights: dict[str, float]

    def score(self, prompt: str, response: str) -> float:
        found = self.criteria(prompt, response)
        return sum(self.weights[name] * value for name, value in found.items())

    def scores(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return [self.score(p, r) for p, r in zip(prompts, responses, strict=True)]

    def criteria_scores(
        self, prompts: Sequence[str], responses: Sequence[str]
    ) -> list[dict[str, float]]:
        return [self.criteria(p, r) for p, r in zip(prompts, responses, strict=True)]

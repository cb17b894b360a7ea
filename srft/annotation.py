"""Annotators and judges: who scores the generated responses. An annotator is a Python callable
(registered by name in `ANNOTATORS`, or `module:function`), a reward-model checkpoint, or a file
of human labels; the world's noisy gold judge is a callable. A judge (win rate, judge accuracy,
per-criterion scores) is registered by name in `JUDGES`, or given as `module:function`.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from srft.config import SrftConfig
from srft.errors import SrftError
from srft.registry import Registry

Scorer = Callable[[Sequence[str], Sequence[str]], list[float]]


class Judge(Protocol):
    """A judge: a score in [0, 1] per response, and per response its criteria's scores."""

    def scores(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]: ...

    def criteria_scores(
        self, prompts: Sequence[str], responses: Sequence[str]
    ) -> list[dict[str, float]]: ...


# srft's own judges and annotators register in these modules, as a user's plugin module does.
_BUILT_INS = ("srft.world.judge", "srft.arithmetic.judge")

#: name -> judge, for evaluation.judge and evaluation.judge_criteria
JUDGES: Registry[Judge] = Registry("judge", built_ins=_BUILT_INS)
#: name -> annotator (prompts, responses, **options) -> scores, for annotation.callable
ANNOTATORS: Registry[Callable[..., list[float]]] = Registry("annotator", built_ins=_BUILT_INS)


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


def import_callable(spec: str, key: str) -> Callable[..., Any]:
    """'package.module:function' -> the function; errors name the config key."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SrftError(f"{key}: expected 'module:function', got '{spec}'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise SrftError(f"{key}: cannot import module '{module_name}' ({err})") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise SrftError(f"{key}: '{module_name}' has no function '{attr}'")
    return function


def callable_scorer(
    function: Callable[..., Any], key: str, options: dict[str, Any], seed: int
) -> Scorer:
    """A scorer calling `function` with the options; `seed` is passed when it takes one."""
    kwargs = dict(options)
    if "seed" in inspect.signature(function).parameters and "seed" not in kwargs:
        kwargs["seed"] = seed

    def score(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        values = [float(v) for v in function(list(prompts), list(responses), **kwargs)]
        if len(values) != len(responses):
            raise SrftError(f"{key}: {len(values)} scores returned for {len(responses)} responses")
        return values

    return score


def reward_model_scorer(config: SrftConfig) -> Scorer:
    """Scores in [0, 1]: the sigmoid of a reward model's output."""
    from srft.models.loading import load_reward_scorer

    scorer = load_reward_scorer(
        config.annotation.reward_model or "",
        config.data.max_prompt_length,
        config.data.max_response_length,
    )

    def score(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return torch.sigmoid(scorer(list(prompts), list(responses))).tolist()

    return score


def build_annotator(config: SrftConfig) -> Scorer:
    annotation = config.annotation
    if annotation.type == "callable":
        key = "annotation.callable"
        spec = annotation.callable or ""
        function = import_callable(spec, key) if ":" in spec else ANNOTATORS.get(spec, key)
        return callable_scorer(function, key, annotation.options, config.seed)
    if annotation.type == "reward_model":
        return reward_model_scorer(config)
    raise SrftError(
        "annotation.type 'labels_file' scores existing responses; it does not annotate generations"
    )


def build_judge(config: SrftConfig) -> Scorer | None:
    """The evaluation judge (win rate, judge accuracy), or None when none is configured."""
    spec, key = config.evaluation.judge, "evaluation.judge"
    if not spec:
        return None
    function = import_callable(spec, key) if ":" in spec else JUDGES.get(spec, key).scores
    return callable_scorer(function, key, {}, config.seed)


def build_judge_criteria(config: SrftConfig) -> Callable[..., list[dict[str, float]]] | None:
    """The judge's per-criterion scores, (prompts, responses) -> [{criterion: score in [0, 1]}],
    or None when none is configured."""
    spec, key = config.evaluation.judge_criteria, "evaluation.judge_criteria"
    if not spec:
        return None
    return import_callable(spec, key) if ":" in spec else JUDGES.get(spec, key).criteria_scores

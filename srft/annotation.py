"""Building the run's annotator and judge from the config. An annotator is a registered name
(`srft.judges.ANNOTATORS`) or a Python callable `module:function`, a reward-model checkpoint, or
a file of human labels; the world's noisy gold judge is a registered callable. A judge (win rate,
judge accuracy, per-criterion scores) is a registered name (`srft.judges.JUDGES`) or
`module:function`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from srft.config import SrftConfig
from srft.errors import SrftError
from srft.judges import ANNOTATORS, JUDGES
from srft.scoring import Scorer


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
    import torch

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
    """The annotator `annotation.type` names: a callable, a reward model, or human labels (with
    `hybrid`, the reward model when set, else the callable, labelling the rest)."""
    annotation = config.annotation
    if annotation.type == "callable":
        return _callable_annotator(config)
    if annotation.type == "reward_model":
        return reward_model_scorer(config)
    from srft.data.human_labels import HumanLabels, read_labels

    fallback = None
    if annotation.hybrid:
        fallback = reward_model_scorer(config) if annotation.reward_model else None
        fallback = fallback or _callable_annotator(config)
    path = annotation.labels_file or ""
    return HumanLabels(read_labels(path), path, fallback)


def _callable_annotator(config: SrftConfig) -> Scorer:
    annotation = config.annotation
    key = "annotation.callable"
    spec = annotation.callable or ""
    if not spec:
        raise SrftError(f"{key}: required to label what annotation.labels_file leaves out")
    function = import_callable(spec, key) if ":" in spec else ANNOTATORS.get(spec, key)
    return callable_scorer(function, key, annotation.options, config.seed)


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

"""The RL reward: the frozen reward model's score, or that score weighted and added to
verifiable rewards (`rl_training.reward_functions`), functions called as TRL calls its reward
functions, `f(prompts=[...], completions=[...])`, returning one number per completion."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from srft.annotation import import_callable
from srft.config import RLTrainingConfig
from srft.errors import ConfigError, SrftError
from srft.models.reward import RewardScorer

KEY = "rl_training.reward_functions"


class NonFiniteReward(Exception):
    """A rollout whose rewards are not all finite: the step is not taken."""


@dataclass(frozen=True)
class WeightedFunction:
    spec: str  # 'module:function', as the config names it
    function: Callable[..., Sequence[float]]
    weight: float

    @property
    def name(self) -> str:
        return self.spec.partition(":")[2]


def reward_functions(rl: RLTrainingConfig) -> list[WeightedFunction]:
    """The config's reward functions, imported, with their weights; errors name the key."""
    weights = rl.reward_weights or [1.0] * len(rl.reward_functions)
    found = []
    for spec, weight in zip(rl.reward_functions, weights, strict=True):
        try:
            function = import_callable(spec, KEY)
        except SrftError:
            raise
        except Exception as err:  # raised by the module's own code as it imports
            raise ConfigError(
                f"{KEY}: importing '{spec}' raised {type(err).__name__}: {err}"
            ) from None
        found.append(WeightedFunction(spec, function, weight))
    return found


class CombinedReward:
    """`model_weight` x the reward model's score + each function's weight x its values. The
    first call checks every function's answer (one finite number per completion), before any
    update: a function that fails it stops the run with an error naming the key. Later, a
    wrong number of values still does; non-finite values pass, for the engine to refuse the
    step (`NonFiniteReward`). `last_means` holds each part's mean over the last call."""

    def __init__(
        self, model: RewardScorer, functions: list[WeightedFunction], model_weight: float
    ) -> None:
        self.model = model
        self.functions = functions
        self.model_weight = model_weight
        self.checked = False
        self.last_means: dict[str, float] = {}

    def __call__(
        self, prompts: list[str], responses: list[str], sequences: list[list[int]]
    ) -> torch.Tensor:
        total = torch.zeros(len(responses))
        means: dict[str, float] = {}
        if self.model_weight:
            scores = self.model(prompts, responses, sequences).float().cpu()
            means["reward_model"] = scores.mean().item()
            total += self.model_weight * scores
        for part in self.functions:
            values = self._values(part, prompts, responses)
            means[f"reward_{part.name}"] = values.mean().item()
            total += part.weight * values
        self.checked = True
        self.last_means = means
        return total

    def _values(
        self, part: WeightedFunction, prompts: list[str], responses: list[str]
    ) -> torch.Tensor:
        try:
            answer = part.function(prompts=list(prompts), completions=list(responses))
            values = [float(v) for v in answer]
        except Exception as err:
            raise ConfigError(
                f"{KEY}: {part.spec} raised {type(err).__name__}: {err} (it must return one "
                "number per completion)"
            ) from None
        if len(values) != len(responses):
            raise ConfigError(
                f"{KEY}: {part.spec} returned {len(values)} values for {len(responses)} "
                "completions (one each)"
            )
        if not self.checked and not all(math.isfinite(v) for v in values):
            raise ConfigError(f"{KEY}: {part.spec} returned a value that is not finite")
        return torch.tensor(values)

    def accuracy(self, pairs) -> float:
        """The reward model's accuracy on preference pairs (the functions rank no pairs)."""
        return self.model.accuracy(pairs)

"""Judges and annotators by name. srft registers its own below, as a user's module (listed
under the config's `plugins`) registers its own:

    from srft.judges import JUDGES
    from srft.scoring import WeightedCriteria

    JUDGES.register("terse")(WeightedCriteria(criteria, {"short": 0.7, "polite": 0.3}))

A name is registered once: srft's names are taken before any plugin is imported.
"""

from __future__ import annotations

from collections.abc import Callable

from srft.arithmetic import judge as arithmetic
from srft.registry import Registry
from srft.scoring import Judge
from srft.world import judge as world

#: name -> judge, for evaluation.judge and evaluation.judge_criteria
JUDGES: Registry[Judge] = Registry("judge")
#: name -> annotator (prompts, responses, **options) -> scores, for annotation.callable
ANNOTATORS: Registry[Callable[..., list[float]]] = Registry("annotator")

JUDGES.register("world")(world.JUDGE)
JUDGES.register("arithmetic")(arithmetic.JUDGE)
ANNOTATORS.register("world")(world.noisy_annotator)
ANNOTATORS.register("arithmetic")(arithmetic.noisy_annotator)

"""The names a config gives benchmark kinds, judges and annotators: each must be registered, by
srft or by one of the user's `plugins` modules (which `srft.config.validate_config` imports);
and RL's reward functions must import. Checked before a run and by `srft validate-config`,
apart from the schema, because the registries live in modules that import the schema."""

from __future__ import annotations

from typing import Any

from srft.config import SrftConfig
from srft.errors import ConfigError, SrftError
from srft.registry import Registry


def check_registered_names(config: SrftConfig, source: str) -> None:
    """Names of benchmark kinds, judges and annotators must be registered, by srft or by a
    plugin; 'module:function' values are imported when a stage runs, as before."""
    # The registries' modules pull in torch: they are imported only when a config uses a name.
    kinds = {
        f"evaluation.benchmarks.{name}.kind": benchmark.kind
        for name, benchmark in config.evaluation.benchmarks.items()
        if benchmark.kind is not None
    }
    judges = _registered_names(config, ("evaluation.judge", "evaluation.judge_criteria"))
    annotators = _registered_names(config, ("annotation.callable",))
    if kinds:
        from srft.evaluation.tasks import KINDS

        _check_names(KINDS, kinds, source)
    if judges or annotators:
        from srft.judges import ANNOTATORS, JUDGES

        _check_names(JUDGES, judges, source)
        _check_names(ANNOTATORS, annotators, source)
    if config.rl_training.reward_functions:
        from srft.rl.rewards import reward_functions

        try:
            reward_functions(config.rl_training)
        except SrftError as err:
            raise ConfigError(f"{source}: {err}") from None


def _registered_names(config: SrftConfig, keys: tuple[str, ...]) -> dict[str, str]:
    """key -> value for the keys whose value is a name rather than 'module:function'."""
    values = {key: config.value_at(key) for key in keys}
    return {key: value for key, value in values.items() if value and ":" not in value}


def _check_names(registry: Registry[Any], names: dict[str, str], source: str) -> None:
    for key, name in names.items():
        try:
            registry.get(name, key)
        except SrftError as err:
            raise ConfigError(f"{source}: {err}") from None

"""srft: Supervised Reward Fine-tuning from one YAML file, with quality gates between stages."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from srft.api import rl_finetune, train_reward_model
    from srft.data.quality import validate_preference_pairs
    from srft.gates import monitor_quality_gates

__all__ = [
    "monitor_quality_gates",
    "rl_finetune",
    "train_reward_model",
    "validate_preference_pairs",
]
__version__ = "0.1.0"

# Imported on first use (PEP 562): srft.api pulls torch and transformers, which would make
# `srft --help`, `srft init` and `srft validate-config` take seconds instead of a fraction.
_HOMES = {
    "monitor_quality_gates": "srft.gates",
    "rl_finetune": "srft.api",
    "train_reward_model": "srft.api",
    "validate_preference_pairs": "srft.data.quality",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'srft' has no attribute '{name}'")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])

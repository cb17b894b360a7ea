"""Python entry points with the seed's signatures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srft.config import SrftConfig, validate_config
from srft.data.pairs import read_pairs
from srft.models.loading import load_reward_model, load_tokenizer
from srft.models.reward_trainer import fit_reward_model

#: the seed's token limits (its `data` section), for a caller who gives none: the schema's own
#: defaults are the embedded world's, far shorter than real prompts and replies
SEED_LENGTHS = {"max_prompt_length": 512, "max_response_length": 1024}


def _as_config(config: dict[str, Any] | SrftConfig, section: str) -> SrftConfig:
    """A full SrftConfig from an SrftConfig, a full config dict, or one section's keys (with an
    optional "constraints" entry, as the seed's scripts pass them). A dict that sets no token
    limits in a `data` section gets the seed's (SEED_LENGTHS)."""
    if isinstance(config, SrftConfig):
        return config
    if section in config:
        body = dict(config)
    else:
        keys = dict(config)
        body = {section: keys}
        if "constraints" in keys:
            body["constraints"] = keys.pop("constraints")
    body["data"] = {**SEED_LENGTHS, **(body.get("data") or {})}
    return validate_config(body)


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
    config = _as_config(config, "reward_training")
    output_dir = Path(output_dir)
    tokenizer = load_tokenizer(base_model)
    model = load_reward_model(base_model, tokenizer.pad_token_id, seed=config.seed)
    train = read_pairs(train_file, score_scale=config.data.score_scale).pairs
    val = read_pairs(val_file, score_scale=config.data.score_scale).pairs
    fit = fit_reward_model(
        model, tokenizer, train, val, output_dir / "model", output_dir / "checkpoints", config
    )
    return fit.accuracy_val


def rl_finetune(
    policy_model_path: Path,
    reward_model_path: Path,
    prompts_file: Path,
    config: dict[str, Any] | SrftConfig,
    output_dir: Path = Path("outputs/rl_finetuned_model"),
) -> dict[str, Any]:
    """RL fine-tuning of a policy against a frozen reward model (PPO, A2C, GRPO or RLOO), or
    DPO on preference pairs (the reward model then measures the policy's samples).

    Args:
        policy_model_path: the SFT model (the policy's start and the frozen KL reference)
        reward_model_path: the trained reward model (sequence classification, one output)
        prompts_file: prompts for RL, JSONL rows {prompt}; for DPO, preference pairs, rows
            {prompt, chosen, rejected}
        config: the rl_training keys (learning_rate, kl_penalty, batch_size, ...) as a dict,
            optionally with "constraints" (kl_target, ...); a full srft config dict; or an
            SrftConfig
        output_dir: checkpoints go to `output_dir/checkpoints`, the final policy to
            `output_dir/model` (save_pretrained)

    Returns:
        The final metrics: kl_per_token_nats, entropy_nats, reward, steps, rollbacks,
        stopped_early, and the model path.
    """
    from srft.data.sft import read_prompt_rows
    from srft.rl.build import build_engine, guard_settings
    from srft.rl.trainer import train_policy
    from srft.tracking import Tracker

    config = _as_config(config, "rl_training")
    output_dir = Path(output_dir)
    if config.rl_training.offline:
        examples = read_pairs(prompts_file, score_scale=config.data.score_scale).pairs
        prompts = [pair.prompt for pair in examples]
    else:
        prompts = [row["prompt"] for row in read_prompt_rows(prompts_file, ("prompt",))]
        examples = prompts
    engine = build_engine(config, str(policy_model_path), str(reward_model_path))
    guard = guard_settings(config, held_out=prompts[-max(1, len(prompts) // 10) :])
    outcome = train_policy(
        engine,
        examples,
        config.rl_training.max_steps,
        output_dir / "checkpoints",
        guard,
        Tracker(output_dir / "metrics.jsonl", 5),
        save_interval=config.logging.save_interval,
        log_interval=config.logging.log_interval,
    )
    engine.export_policy(output_dir / "model")
    return {
        **outcome.measures.model_dump(exclude_none=True),
        "steps": outcome.steps,
        "rollbacks": outcome.rollbacks,
        "stopped_early": outcome.stopped_early,
        "model": str(output_dir / "model"),
    }

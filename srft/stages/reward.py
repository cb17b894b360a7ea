"""Stage 3, reward model: Bradley-Terry training on the stage-2 pairs; the RM starts from the
SFT policy (`shared`) or from any sequence-classification checkpoint (`separate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srft.artifacts import checkpoint_folders
from srft.config import SrftConfig
from srft.data.pairs import read_pairs
from srft.decisions import retrain_reward_model
from srft.models.loading import apply_threads, load_reward_model, load_tokenizer
from srft.models.reward_trainer import fit_reward_model
from srft.progress import TrainerProgress
from srft.stages.base import StageContext, StageResult, StageSpec
from srft.tracking import TrainerMetrics


def run(ctx: StageContext) -> StageResult:
    config = ctx.config
    apply_threads(config.compute)
    pairs_dir = ctx.upstream(2)
    train = read_pairs(pairs_dir / "pairs_train.jsonl").pairs
    val = read_pairs(pairs_dir / "pairs_val.jsonl").pairs
    base = _reward_base(config, ctx.upstream_model(1))
    tokenizer = load_tokenizer(base)
    model = load_reward_model(base, tokenizer.pad_token_id, seed=config.seed)
    checkpoints = checkpoint_folders(ctx.workdir / "checkpoints")
    result = fit_reward_model(
        model,
        tokenizer,
        train,
        val,
        ctx.workdir,
        config,
        callbacks=[TrainerProgress("stage 3 reward model"), TrainerMetrics(ctx.tracker)],
        resume_from_checkpoint=str(checkpoints[-1]) if ctx.resume and checkpoints else None,
    )
    target = config.constraints.reward_accuracy_target
    gates = [
        ctx.gate("reward_accuracy_train", result["accuracy_train"], target, ">="),
        ctx.gate("reward_accuracy_val", result["accuracy_val"], target, ">="),
    ]
    metrics: dict[str, Any] = {
        "base": base,
        "train_pairs": len(train),
        "val_pairs": len(val),
        **result,
    }
    return StageResult(metrics=metrics, gates=gates, artifacts={"model": "model"})


def _reward_base(config: SrftConfig, sft_model: Path) -> str:
    if config.model.reward_model_type == "separate":
        return config.model.reward_base_model or ""
    return str(sft_model)


SPEC = StageSpec(
    number=3,
    name="reward_model",
    run=run,
    sections=("model", "data", "reward_training", "compute", "constraints", "gates"),
    upstream=(1, 2),
    needs=lambda config: (2,) if config.model.reward_model_type == "separate" else (1, 2),
    adjust=retrain_reward_model,
)

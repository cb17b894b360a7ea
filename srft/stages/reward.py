"""Stage 3, reward model: Bradley-Terry training on the stage-2 pairs; the RM starts from the
SFT policy (`shared`) or from any sequence-classification checkpoint (`separate`)."""

from __future__ import annotations

from srft.data.pairs import read_pairs
from srft.models.loading import apply_threads, load_reward_model, load_tokenizer
from srft.models.reward_trainer import fit_reward_model
from srft.models.training import resumable_checkpoint
from srft.outputs import PreferenceOutputs, RewardOutputs, SFTOutputs
from srft.progress import TrainerProgress
from srft.stages.base import StageContext, StageResult, StageSpec
from srft.stages.remedies import after_reward_model
from srft.tracking import TrainerMetrics


def run(ctx: StageContext) -> StageResult:
    config = ctx.config
    apply_threads(config.compute)
    pairs = ctx.upstream(PreferenceOutputs)
    train = read_pairs(pairs.train_pairs_file).pairs
    val = read_pairs(pairs.val_pairs_file).pairs
    base = _reward_base(ctx)
    tokenizer = load_tokenizer(base)
    model = load_reward_model(base, tokenizer.pad_token_id, seed=config.seed)
    fit = fit_reward_model(
        model,
        tokenizer,
        train,
        val,
        ctx.path("model"),
        ctx.checkpoints,
        config,
        callbacks=[TrainerProgress("stage 3 reward model"), TrainerMetrics(ctx.tracker)],
        resume_from_checkpoint=(
            resumable_checkpoint(ctx.checkpoints, config.compute) if ctx.resume else None
        ),
    )
    target = config.constraints.reward_accuracy_target
    gates = [
        ctx.gate("reward_accuracy_train", fit.accuracy_train, target, ">="),
        ctx.gate("reward_accuracy_val", fit.accuracy_val, target, ">="),
    ]
    outputs = RewardOutputs(
        base=base,
        train_pairs=len(train),
        val_pairs=len(val),
        accuracy_train=fit.accuracy_train,
        accuracy_val=fit.accuracy_val,
        loss_train=fit.loss_train,
        loss_val=fit.loss_val,
        best_checkpoint=fit.best_checkpoint,
        truncated_pairs=fit.truncated_pairs,
    )
    return StageResult(outputs, gates)


def _reward_base(ctx: StageContext) -> str:
    if ctx.config.model.reward_model_type == "separate":
        return ctx.config.model.reward_base_model or ""
    return str(ctx.upstream(SFTOutputs).model)


SPEC = StageSpec(
    number=3,
    name="reward_model",
    run=run,
    outputs=RewardOutputs,
    sections=("model", "data", "reward_training", "compute", "constraints", "gates"),
    upstream=(1, 2),
    needs=lambda config: (2,) if config.model.reward_model_type == "separate" else (1, 2),
    adjust=after_reward_model,
)

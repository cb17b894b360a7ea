"""Stage 1, SFT: train the base model on demonstrations, record validation perplexity and the
baseline capability scores that stage 7 compares against."""

from __future__ import annotations

import math

from transformers import Trainer

from srft.data.sft import SFTCollator, demonstration_splits
from srft.distributed import is_main
from srft.errors import SrftError
from srft.evaluation.benchmarks import run_benchmarks
from srft.models.loading import apply_threads, load_policy, load_tokenizer, resolve_device
from srft.models.lora import add_lora, save_merged
from srft.models.training import ready, resumable_checkpoint, training_arguments
from srft.outputs import SFTOutputs
from srft.progress import TrainerProgress
from srft.stages.base import StageContext, StageResult, StageSpec
from srft.tracking import TrainerMetrics


def run(ctx: StageContext) -> StageResult:
    config = ctx.config
    apply_threads(config.compute)
    device = resolve_device(config.compute)
    source = config.model.sft_checkpoint or config.model.base_model
    tokenizer = load_tokenizer(source)
    model = load_policy(source)
    trained = config.model.sft_checkpoint is None
    if trained and config.model.lora is not None:
        model = add_lora(model, config.model.lora, "CAUSAL_LM", config.seed)

    # SFT training data prepared and validated; train/validation split created (90/10).
    if not config.data.sft_file:
        raise SrftError(
            "data.sft_file: stage 1 needs SFT demonstrations (JSONL {prompt, completion})"
        )
    train, val = demonstration_splits(config, tokenizer)

    trainer = ready(
        Trainer(
            model=model,
            args=training_arguments(
                config,
                ctx.checkpoints,
                learning_rate=config.sft.learning_rate,
                batch_size=config.sft.batch_size,
                epochs=config.sft.epochs,
                weight_decay=config.sft.weight_decay,
                warmup_ratio=config.sft.warmup_ratio,
                eval_strategy="no",
            ),
            train_dataset=train,
            eval_dataset=val,
            data_collator=SFTCollator(tokenizer.pad_token_id),
            callbacks=[TrainerProgress("stage 1 sft"), TrainerMetrics(ctx.tracker)],
        )
    )
    if trained:
        checkpoint = resumable_checkpoint(ctx.checkpoints, config.compute) if ctx.resume else None
        trainer.train(resume_from_checkpoint=checkpoint)
    val_loss = trainer.evaluate()["eval_loss"]
    ctx.tracker.log({"val_loss": val_loss, "val_perplexity": math.exp(val_loss)})

    model_dir = ctx.path("model")
    if is_main():
        tokenizer.save_pretrained(model_dir)
    model = save_merged(trainer.model, model_dir).to(device).eval()

    baseline = run_benchmarks(
        model,
        tokenizer,
        config.evaluation.benchmarks,
        config.data.max_prompt_length,
        config.data.max_response_length,
        execute_code=config.evaluation.execute_code,
    )
    ctx.tracker.log({f"baseline_{name}": score for name, score in baseline.items()})
    outputs = SFTOutputs(
        trained=trained,
        train_examples=len(train),
        val_examples=len(val),
        val_loss=val_loss,
        val_perplexity=math.exp(val_loss),
        truncated_examples=sum(example.truncated for example in [*train, *val]),
        baseline=baseline,
    )
    return StageResult(outputs)


SPEC = StageSpec(
    number=1,
    name="sft",
    run=run,
    outputs=SFTOutputs,
    sections=("model", "data", "sft", "compute", "world", "evaluation"),
)

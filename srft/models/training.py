"""transformers TrainingArguments built from an srft config, shared by the SFT and RM stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import PrinterCallback, Trainer, TrainingArguments

from srft.artifacts import checkpoint_folders
from srft.config import ComputeConfig, SrftConfig
from srft.distributed import world_size
from srft.models.loading import resolve_device
from srft.models.zero import deepspeed_enabled, forget_zero3_loading, prepare_deepspeed_for

OPTIMIZERS = {"adamw": "adamw_torch", "adam": "adamw_torch", "sgd": "sgd"}


def training_arguments(
    config: SrftConfig,
    output_dir: Path,
    *,
    learning_rate: float,
    batch_size: int,
    epochs: float,
    weight_decay: float,
    warmup_ratio: float,
    optimizer: str = "adamw",
    **extra: Any,
) -> TrainingArguments:
    device = resolve_device(config.compute)
    settings: dict[str, Any] = dict(
        output_dir=str(output_dir),
        learning_rate=learning_rate,
        # batch sizes are global: each process takes its share
        per_device_train_batch_size=batch_size // world_size(),
        per_device_eval_batch_size=max(batch_size, 64) // world_size(),
        num_train_epochs=epochs,
        weight_decay=weight_decay if optimizer != "adam" else 0.0,
        warmup_steps=warmup_ratio,
        optim=OPTIMIZERS[optimizer],
        lr_scheduler_type="linear",
        logging_steps=config.logging.log_interval,
        save_strategy="epoch",
        save_total_limit=2,
        save_only_model=False,
        report_to="none",  # the Trainer's logs reach the trackers through srft.tracking
        disable_tqdm=True,
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=device.type == "cpu",
        fp16=config.compute.fp16,
        bf16=config.compute.bf16,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every parameter that trains takes part in the loss
    )
    if config.compute.gradient_checkpointing:
        settings["gradient_checkpointing"] = True
    if config.compute.strategy in ("fsdp", "deepspeed") and world_size() > 1:
        # the FSDP or DeepSpeed state the processes set up when they started (srft.launch)
        settings["accelerator_config"] = {"use_configured_state": True}
    if deepspeed_enabled():
        prepare_deepspeed_for()  # the Trainer fills in its batch sizes, accumulation, clipping
    settings.update(extra)
    return TrainingArguments(**settings)


def resumable_checkpoint(folder: Path, compute: ComputeConfig) -> str | None:
    """The latest Trainer checkpoint in `folder` that training under `compute.strategy` can
    resume, or None (training starts over). The Trainer writes its optimizer state in a file
    of each strategy's own (`optimizer.pt` under ddp, FSDP's `optimizer.bin` under fsdp,
    DeepSpeed's checkpoint, named by `latest`, under deepspeed), and resumes only from its
    own."""
    state_file = STATE_FILES[compute.strategy]
    found = [c for c in checkpoint_folders(folder) if (c / state_file).exists()]
    return str(found[-1]) if found else None


#: the file in which a Trainer checkpoint holds its optimizer state, by strategy
STATE_FILES = {"ddp": "optimizer.pt", "fsdp": "optimizer.bin", "deepspeed": "latest"}


def ready(trainer: Trainer) -> Trainer:
    """A Trainer as srft runs one: without its stdout printer (srft reports progress and
    metrics itself), and, under ZeRO-3, with `from_pretrained` loading whole models again (the
    Trainer's DeepSpeed config would have it partition every model loaded later)."""
    trainer.remove_callback(PrinterCallback)
    if deepspeed_enabled():
        forget_zero3_loading()
    return trainer

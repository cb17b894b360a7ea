"""Bradley-Terry reward-model training on a transformers Trainer, best checkpoint by val accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase, Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler

from srft.config import SrftConfig
from srft.data.pairs import PreferencePair
from srft.distributed import is_main
from srft.models.lora import add_lora, save_merged
from srft.models.reward import (
    bradley_terry_loss,
    encode_pair_text,
    pad_batch,
    pair_text_truncated,
    positions_of,
)
from srft.models.training import ready, training_arguments


@dataclass
class EncodedPair:
    chosen: list[int]
    rejected: list[int]
    truncated: bool = False  # either sequence lost tokens to the length limits or positions


def encode_pairs(
    pairs: list[PreferencePair],
    tokenizer,
    max_prompt: int,
    max_response: int,
    max_length: int | None = None,
) -> list[EncodedPair]:
    """Each pair's chosen and rejected sequences (`encode_pair_text`), fitted into `max_length`
    tokens (the model's positions) when given."""
    lengths = (max_prompt, max_response, max_length)
    encoded = []
    for p in pairs:
        chosen = encode_pair_text(tokenizer, p.prompt, p.chosen, *lengths)
        rejected = encode_pair_text(tokenizer, p.prompt, p.rejected, *lengths)
        truncated = pair_text_truncated(
            tokenizer, p.prompt, p.chosen, chosen
        ) or pair_text_truncated(tokenizer, p.prompt, p.rejected, rejected)
        encoded.append(EncodedPair(chosen, rejected, truncated))
    return encoded


class PairCollator:
    """Stacks chosen then rejected sequences into one right-padded batch of 2B rows."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[EncodedPair]) -> dict[str, torch.Tensor]:
        sequences = [p.chosen for p in batch] + [p.rejected for p in batch]
        return pad_batch(sequences, self.pad_token_id)


def pair_length(pair: EncodedPair) -> int:
    return max(len(pair.chosen), len(pair.rejected))


class BradleyTerryTrainer(Trainer):
    """A Trainer whose loss is the Bradley-Terry loss of (chosen, rejected) reward pairs;
    `group_by_length` batches pairs of similar length (shuffled groups, as transformers does)."""

    def __init__(self, *args, group_by_length: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.group_by_length = group_by_length

    def _get_train_sampler(self, train_dataset=None):
        if not self.group_by_length:
            return super()._get_train_sampler(train_dataset)
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        # Seeded: every process draws the same order, of which each takes its batches.
        return LengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            lengths=[pair_length(p) for p in dataset],
            generator=torch.Generator().manual_seed(self.args.seed),
        )

    def _rewards(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        rewards = model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        ).logits[:, 0]
        half = rewards.shape[0] // 2
        return rewards[:half], rewards[half:]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        chosen, rejected = self._rewards(model, inputs)
        loss = bradley_terry_loss(chosen, rejected)
        return (loss, {"chosen": chosen, "rejected": rejected}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            chosen, rejected = self._rewards(model, inputs)
            loss = bradley_terry_loss(chosen, rejected)
        if prediction_loss_only:
            return loss.detach(), None, None
        rewards = torch.stack([chosen, rejected], dim=1).detach()
        return loss.detach(), rewards, torch.zeros(rewards.shape[0], device=rewards.device)


def accuracy_metric(prediction: EvalPrediction) -> dict[str, float]:
    """Reward accuracy of [N, 2] (chosen, rejected) rewards, ties counted half."""
    rewards = np.asarray(prediction.predictions)
    chosen, rejected = rewards[:, 0], rewards[:, 1]
    wins = (chosen > rejected).astype(float) + 0.5 * (chosen == rejected).astype(float)
    return {"accuracy": float(wins.mean()), "mean_margin": float((chosen - rejected).mean())}


@dataclass(frozen=True)
class RewardFit:
    """The best epoch's reward model: reward accuracy and Bradley-Terry loss (nats) on the
    training and the validation pairs, the checkpoint folder it came from, and how many of the
    pairs lost tokens to the length limits."""

    accuracy_train: float
    accuracy_val: float
    loss_train: float
    loss_val: float
    best_checkpoint: str
    truncated_pairs: int


def fit_reward_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: list[PreferencePair],
    val: list[PreferencePair],
    model_dir: Path,
    checkpoints: Path,
    config: SrftConfig,
    callbacks: list[Any] | None = None,
    resume_from_checkpoint: str | None = None,
    epochs: int | None = None,
) -> RewardFit:
    """Train on `train` for `epochs` (default reward_training.max_epochs) with a checkpoint per
    epoch in `checkpoints`, keep the one with the best val accuracy and save it to
    `model_dir`."""
    rt = config.reward_training
    epochs = epochs or rt.max_epochs
    if config.model.lora is not None:
        model = add_lora(model, config.model.lora, "SEQ_CLS", config.seed)
    max_prompt, max_response = config.data.max_prompt_length, config.data.max_response_length
    lengths = (max_prompt, max_response, positions_of(model))
    train_set = encode_pairs(train, tokenizer, *lengths)
    # Accuracy does not depend on order: evaluate in length order, with little padding.
    val_set = sorted(encode_pairs(val, tokenizer, *lengths), key=pair_length)
    args = training_arguments(
        config,
        checkpoints,
        learning_rate=rt.learning_rate,
        batch_size=rt.batch_size,
        epochs=epochs,
        weight_decay=rt.weight_decay,
        warmup_ratio=rt.warmup_ratio,
        optimizer=rt.optimizer,
        eval_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        save_total_limit=epochs + 1,
    )
    trainer = ready(
        BradleyTerryTrainer(
            model=model,
            args=args,
            train_dataset=train_set,
            eval_dataset=val_set,
            data_collator=PairCollator(tokenizer.pad_token_id),
            compute_metrics=accuracy_metric,
            callbacks=callbacks or [],
            group_by_length=rt.group_by_length,
        )
    )
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    val_metrics = _best_evaluation(trainer) or trainer.evaluate(val_set, metric_key_prefix="val")
    train_metrics = trainer.evaluate(sorted(train_set, key=pair_length), metric_key_prefix="train")
    if is_main():
        tokenizer.save_pretrained(model_dir)
    save_merged(trainer.model, model_dir)
    return RewardFit(
        accuracy_train=train_metrics["train_accuracy"],
        accuracy_val=val_metrics["val_accuracy"],
        loss_train=train_metrics["train_loss"],
        loss_val=val_metrics["val_loss"],
        best_checkpoint=Path(trainer.state.best_model_checkpoint or "").name,
        truncated_pairs=sum(pair.truncated for pair in [*train_set, *val_set]),
    )


def _best_evaluation(trainer: Trainer) -> dict[str, float] | None:
    """The val metrics logged for the best checkpoint, which training already measured."""
    best = trainer.state.best_model_checkpoint
    if not best:
        return None
    step = int(best.rsplit("-", 1)[1])
    for entry in trainer.state.log_history:
        if entry.get("step") == step and "eval_accuracy" in entry:
            return {"val_accuracy": entry["eval_accuracy"], "val_loss": entry["eval_loss"]}
    return None

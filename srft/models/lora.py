"""LoRA adapters (peft) on policies and reward models, and turning them back into plain
checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedModel

from srft.config import LoraSettings
from srft.distributed import barrier, is_main
from srft.errors import SrftError
from srft.models.sharding import is_sharded, save_sharded


def add_lora(model: PreTrainedModel, settings: LoraSettings, task_type: str, seed: int):
    """`model` with trainable LoRA adapters and everything else frozen; `task_type` is
    "CAUSAL_LM" (policies) or "SEQ_CLS" (reward models, whose score head stays trainable). The
    adapters' random initialisation is drawn from `seed`."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise SrftError("model.lora: LoRA needs the peft package (pip install peft)") from None

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type=task_type,
    )
    torch.manual_seed(seed)
    return get_peft_model(model, config)


def is_lora(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def base_of(model) -> PreTrainedModel:
    """The transformers model under a LoRA wrapper, or the model itself."""
    return model.get_base_model() if is_lora(model) else model


def save_merged(model, directory: Path) -> PreTrainedModel:
    """Save `model` as a plain checkpoint (the adapter merged into the weights, in place).
    Every process calls it and merges; the main one writes, and all return once it has. A
    sharded model is gathered and comes back whole, loaded from `directory`."""
    if is_sharded(model):
        return save_sharded(model, directory)
    plain = model.merge_and_unload() if is_lora(model) else model
    if is_main():
        plain.save_pretrained(directory)
    barrier()
    return plain


def load_adapter_weights(model, directory: Path) -> None:
    """Put the adapter weights that `save_pretrained` wrote to `directory` back into `model`."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(directory / "adapter_model.safetensors"))

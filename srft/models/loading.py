"""Loading policies, reward models and tokenizers from a hub id or a local directory."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from srft.config import ComputeConfig
from srft.errors import SrftError


def resolve_device(compute: ComputeConfig) -> torch.device:
    """The device `compute.device` names; a clear error for one this machine lacks."""
    if compute.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if compute.device == "cuda" and not torch.cuda.is_available():
        raise SrftError("compute.device: 'cuda' requested but no CUDA device is available")
    if compute.device == "mps" and not torch.backends.mps.is_available():
        raise SrftError("compute.device: 'mps' requested but MPS is not available")
    if compute.fp16 and compute.device == "cpu":
        raise SrftError("compute.fp16: fp16 training needs a GPU; use bf16 or neither on CPU")
    return torch.device(compute.device)


def apply_threads(compute: ComputeConfig) -> None:
    if compute.num_threads:
        torch.set_num_threads(compute.num_threads)


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    tokenizer = _load(AutoTokenizer.from_pretrained, name, "tokenizer")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_policy(name: str, device: torch.device | None = None) -> PreTrainedModel:
    model = _load(AutoModelForCausalLM.from_pretrained, name, "causal LM")
    return model.to(device) if device is not None else model


def load_reward_model(
    name: str,
    pad_token_id: int | None,
    device: torch.device | None = None,
    trained: bool = False,
):
    """A sequence-classification model with one output: the scalar reward. With `trained`, the
    checkpoint must carry its score head (a freshly initialised head scores at random)."""
    model, info = _load(
        AutoModelForSequenceClassification.from_pretrained,
        name,
        "reward model",
        num_labels=1,
        output_loading_info=True,
    )
    if trained and info.get("missing_keys"):
        missing = ", ".join(sorted(info["missing_keys"])[:3])
        raise SrftError(
            f"{name}: not a trained reward model: the checkpoint has no score head ({missing})"
        )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id
    return model.to(device) if device is not None else model


def load_critic(name: str, pad_token_id: int | None, device: torch.device | None = None):
    """A token-classification model with one output: V(s) at every position."""
    model = _load(AutoModelForTokenClassification.from_pretrained, name, "critic", num_labels=1)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id
    return model.to(device) if device is not None else model


def _load(loader, name: str, what: str, **kwargs):
    looks_local = Path(name).exists() or name.startswith((".", "/", "~"))
    if looks_local and not Path(name).expanduser().exists():
        raise SrftError(f"{what} not found: {name}")
    try:
        return loader(str(Path(name).expanduser()) if looks_local else name, **kwargs)
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SrftError(f"cannot load {what} '{name}': {first}") from None

"""Loading policies, reward models and tokenizers from a hub id or a local directory."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    set_seed,
)

from srft.config import ComputeConfig
from srft.errors import SrftError
from srft.models.reward import RewardScorer

# DeepSpeed, which accelerate imports where it is installed whenever a model is unwrapped to be
# saved, guesses its accelerator at import and warns when it finds none; without CUDA it is the
# CPU's, said here so that every run does not print the warning
if not torch.cuda.is_available():
    os.environ.setdefault("DS_ACCELERATOR", "cpu")


def resolve_device(compute: ComputeConfig) -> torch.device:
    """The device `compute.device` names ('auto': CUDA when present, else the CPU); a clear
    error for a device this machine lacks or a precision the device cannot do."""
    name = compute.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SrftError("compute.device: 'cuda' requested but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise SrftError("compute.device: 'mps' requested but MPS is not available")
    if compute.fp16 and name == "cpu":
        raise SrftError("compute.fp16: fp16 training needs a GPU; use bf16 or neither on CPU")
    if compute.bf16 and name == "cuda" and not torch.cuda.is_bf16_supported():
        raise SrftError("compute.bf16: this GPU does not support bf16; use fp16")
    return torch.device(name)


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
    seed: int | None = None,
):
    """A sequence-classification model with one output: the scalar reward. With `trained`, the
    checkpoint must carry its score head (a freshly initialised head scores at random); with
    `seed`, a head the checkpoint lacks is initialised from that seed."""
    if seed is not None:
        set_seed(seed)
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


def load_reward_scorer(
    name: str,
    max_prompt: int,
    max_response: int,
    *,
    trained: bool = False,
    policy_tokenizer: PreTrainedTokenizerBase | None = None,
    device: torch.device | None = None,
    batch_size: int = 256,
) -> RewardScorer:
    """The reward model at `name` with its tokenizer, as a frozen scorer of texts."""
    tokenizer = load_tokenizer(name)
    model = load_reward_model(name, tokenizer.pad_token_id, device, trained=trained)
    return RewardScorer(model, tokenizer, max_prompt, max_response, batch_size, policy_tokenizer)


def load_critic(name: str, pad_token_id: int | None, device: torch.device | None = None):
    """A token-classification model with one output: V(s) at every position."""
    model = _load(AutoModelForTokenClassification.from_pretrained, name, "critic", num_labels=1)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id
    return model.to(device) if device is not None else model


def _load(loader, name: str, what: str, **kwargs):
    """`loader(name)` for a Hub id, a local directory or a GGUF file (transformers dequantises
    it; needs the gguf package), with one-line errors."""
    path = Path(name).expanduser()
    looks_local = path.exists() or name.startswith((".", "/", "~")) or name.endswith(".gguf")
    if looks_local and not path.exists():
        raise SrftError(f"{what} not found: {name}")
    target = str(path) if looks_local else name
    if path.suffix == ".gguf" and path.is_file():
        target, kwargs = str(path.parent), {**kwargs, "gguf_file": path.name}
    try:
        loaded = loader(target, **kwargs)
    except ImportError as err:
        if "gguf" in str(err).lower():
            raise SrftError(
                f"cannot load {what} '{name}': reading GGUF needs the gguf package "
                "(pip install gguf)"
            ) from None
        raise
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SrftError(f"cannot load {what} '{name}': {first}") from None
    if "gguf_file" in kwargs and hasattr(loaded, "config"):
        # The GGUF weights are dequantised on loading: a plain model from here on, which
        # save_pretrained writes as safetensors like any other.
        loaded.hf_quantizer = None
        loaded.is_quantized = False
        if hasattr(loaded.config, "quantization_config"):
            del loaded.config.quantization_config
        # The GGUF's folder holds no config.json; left as the model's origin, peft would look
        # for one on the Hub each time it saves an adapter.
        loaded.config._name_or_path = ""
        loaded.name_or_path = ""
    return loaded

"""DeepSpeed ZeRO through accelerate's DeepSpeed plugin: the plugin set up once per process from
`compute`, its settings for each model that trains (the Trainer fills its own, the RL engine
states its micro-batch, accumulation and clipping), and the weights of a ZeRO-3 model, whose
parameters each process holds a partition of, gathered whole or put back.

ZeRO-2 partitions gradients and optimizer states; every process keeps the whole model, which
samples and saves as an unsharded one does. ZeRO-3 partitions the weights too: every forward
gathers them, so a ZeRO-3 model runs only with every process at once, as an FSDP one does.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from srft.distributed import is_main
from srft.errors import SrftError

if TYPE_CHECKING:
    from srft.config import ComputeConfig

#: what the Trainer fills in from its arguments and the RL engine from `rl_training`
PER_MODEL_KEYS = (
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
)


def deepspeed_settings(compute: ComputeConfig) -> dict[str, Any]:
    """The DeepSpeed config of a run: `compute.deepspeed_config`'s file, or ZeRO at
    `zero_stage` with optimizer states (and, under ZeRO-3, weights) in CPU memory when
    `cpu_offload`. The optimizer and scheduler are srft's, and the per-model keys are left to
    each model ('auto')."""
    if compute.deepspeed_config:
        settings = read_deepspeed_file(compute.deepspeed_config)
    else:
        offload = {"device": "cpu", "pin_memory": True} if compute.cpu_offload else None
        zero: dict[str, Any] = {"stage": compute.zero_stage, "overlap_comm": False}
        if offload:
            zero["offload_optimizer"] = offload
            if compute.zero_stage == 3:
                zero["offload_param"] = offload
        if compute.zero_stage == 3:
            zero["stage3_gather_16bit_weights_on_model_save"] = True
        settings = {"zero_optimization": zero}
    # srft's own keys choose each model's optimizer, learning rate, batches and clipping
    for key in ("optimizer", "scheduler"):
        settings.pop(key, None)
    settings.update(dict.fromkeys(PER_MODEL_KEYS, "auto"))
    return settings


def read_deepspeed_file(path: str) -> dict[str, Any]:
    """A DeepSpeed JSON config, refused with the key and file named when it is unreadable or
    has no ZeRO section."""
    where = f"compute.deepspeed_config: {path}"
    try:
        settings = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SrftError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SrftError(f"{where}: cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise SrftError(f"{where}: not JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("zero_optimization"), dict):
        raise SrftError(f"{where}: has no 'zero_optimization' section")
    stage = settings["zero_optimization"].get("stage")
    if stage not in (1, 2, 3):
        raise SrftError(f"{where}: zero_optimization.stage must be 1, 2 or 3, not {stage!r}")
    return settings


def zero_stage_of(compute: ComputeConfig) -> int:
    """The ZeRO stage a run trains with (its file's, when it names one)."""
    if compute.deepspeed_config:
        return read_deepspeed_file(compute.deepspeed_config)["zero_optimization"]["stage"]
    return compute.zero_stage


def start_deepspeed(compute: ComputeConfig, on_cpu: bool) -> None:
    """Set up accelerate's DeepSpeed plugin for every model this process prepares (the RL
    engine's accelerator and the Trainer's, which takes the configured state). accelerate
    enables its plugin from the launcher's flag, on accelerators only; DeepSpeed runs on CPU
    processes over gloo too, so the state is told so here, from srft's keys."""
    from accelerate import Accelerator, PartialState
    from accelerate.utils import DeepSpeedPlugin, DistributedType

    for key in [k for k in os.environ if k.startswith("ACCELERATE_DEEPSPEED_")]:
        del os.environ[key]  # the launcher's settings for a plugin: srft's keys configure it
    # A Trainer would otherwise build a second plugin from the launcher's flag.
    os.environ.pop("ACCELERATE_USE_DEEPSPEED", None)
    plugin = DeepSpeedPlugin(hf_ds_config=deepspeed_settings(compute), zero3_init_flag=False)
    plugin.set_mixed_precision(compute.mixed_precision)
    plugin.template = copy.deepcopy(plugin.deepspeed_config)  # type: ignore[attr-defined]
    state = Accelerator(cpu=on_cpu).state
    state.distributed_type = DistributedType.DEEPSPEED
    state.deepspeed_plugins = {"default": plugin}
    plugin.select(_from_accelerator_state=True)
    PartialState._shared_state["distributed_type"] = DistributedType.DEEPSPEED
    forget_zero3_loading()


def deepspeed_enabled() -> bool:
    """Whether this process trains with DeepSpeed (its plugin is set up)."""
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedType

    return AcceleratorState._shared_state.get("distributed_type") == DistributedType.DEEPSPEED


def prepare_deepspeed_for(**values: Any) -> None:
    """Give the DeepSpeed plugin the run's settings anew, with `values` for this model (the
    keys of PER_MODEL_KEYS; the rest stays 'auto' for a Trainer to fill in). Before each model
    is prepared: each fills the per-model keys in place."""
    from accelerate.state import AcceleratorState
    from accelerate.utils.deepspeed import HfDeepSpeedConfig

    plugin = AcceleratorState().deepspeed_plugin
    settings = copy.deepcopy(plugin.template)
    settings.update(values)
    plugin.hf_ds_config = HfDeepSpeedConfig(settings)
    plugin.deepspeed_config = plugin.hf_ds_config.config
    forget_zero3_loading()


def rl_deepspeed_settings(
    mini_batch_size: int, accumulation: int, max_grad_norm: float | None, processes: int
) -> dict[str, Any]:
    """The per-model keys of the RL engine: a micro-batch of each process's share of a
    mini-batch, accumulated `accumulation` times, gradients clipped to `max_grad_norm`."""
    micro = mini_batch_size // processes
    return {
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": micro * accumulation * processes,
        "gradient_clipping": max_grad_norm or 0.0,
    }


def forget_zero3_loading() -> None:
    """Keep transformers' `from_pretrained` loading whole models: under ZeRO-3 it would
    partition each model it loads while a DeepSpeed config is alive, the frozen reference and
    reward models too, which DeepSpeed never prepares. The models that train are partitioned
    when they are prepared."""
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()


def is_zero3_partitioned(model: nn.Module) -> bool:
    """Whether `model`'s parameters are ZeRO-3 partitions."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


def gathered_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole state dict of a ZeRO-3 model on the CPU of the main process ({} on the
    others), gathered one parameter at a time. Every process calls it."""
    from deepspeed.runtime.zero import GatheredParameters

    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if hasattr(tensor, "ds_id"):
            with GatheredParameters([tensor]):
                if is_main():
                    state[name] = tensor.detach().cpu().clone()
        elif is_main():
            state[name] = tensor.detach().cpu().clone()
    return state


def load_gathered(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put whole tensors (`state`, the same on every process) into the parameters and buffers of
    a ZeRO-3 model they name; each process keeps its partition. Every process calls it."""
    from deepspeed.runtime.zero import GatheredParameters

    entries = model.state_dict(keep_vars=True)
    for name, value in state.items():
        tensor = entries[name]
        if hasattr(tensor, "ds_id"):
            with GatheredParameters([tensor], modifier_rank=0), torch.no_grad():
                tensor.copy_(value)
        else:
            with torch.no_grad():
                tensor.copy_(value)

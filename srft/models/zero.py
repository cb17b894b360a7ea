"""DeepSpeed ZeRO through accelerate's DeepSpeed plugin (set up once per process by
`srft.launch`): its settings for each model that trains (the Trainer fills its own, the RL
engine states its micro-batch, accumulation and clipping), and the weights of a ZeRO-3 model,
whose parameters each process holds a partition of, gathered whole.

ZeRO-2 partitions gradients and optimizer states; every process keeps the whole model, which
samples and saves as an unsharded one does. ZeRO-3 partitions the weights too: every forward
gathers them, so a ZeRO-3 model runs only with every process at once, as an FSDP one does.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from srft.distributed import is_main


def deepspeed_enabled() -> bool:
    """Whether this process trains with DeepSpeed (its plugin is set up)."""
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedType

    return AcceleratorState._shared_state.get("distributed_type") == DistributedType.DEEPSPEED


def prepare_deepspeed_for(**values: Any) -> None:
    """Give the DeepSpeed plugin the run's settings anew, with `values` for this model (keys of
    `srft.launch.PER_MODEL_KEYS`; the others stay 'auto' for a Trainer to fill in). Called
    before each model is prepared: each fills the per-model keys in place."""
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

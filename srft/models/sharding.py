"""Models sharded over the processes, by FSDP (accelerate's plugin, torch's FSDP2) or DeepSpeed's
ZeRO-3: whether a model is, its full state dict gathered for saving, and (FSDP) the optimizer's
state in a form that loads whether the model is sharded or not, and over any number of
processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from srft.distributed import barrier, is_main
from srft.models.zero import gathered_state_dict, is_zero3_partitioned


def is_sharded(model: nn.Module) -> bool:
    """Whether `model`'s parameters are shards of a model spread over the processes (FSDP's
    DTensors or ZeRO-3's partitions): it then runs only with every process at once."""
    return is_fsdp_sharded(model) or is_zero3_partitioned(model)


def is_fsdp_sharded(model: nn.Module) -> bool:
    """Whether `model`'s parameters are FSDP's shards (DTensors)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole of `model`'s state dict on the CPU of the main process ({} on the others).
    Every process calls it: a sharded model gathers its shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if is_zero3_partitioned(model):
        return gathered_state_dict(model)

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of `state` under the submodule `prefix` ('policy.'), named from there."""
    return {name[len(prefix) :]: value for name, value in state.items() if name.startswith(prefix)}


def save_sharded(model, directory: Path):
    """Gather a sharded transformers model, save it whole with `save_pretrained` (the main
    process writes) and return it as a plain model loaded back from `directory`, which every
    process can use on its own (a sharded model runs only in step with the others)."""
    state = full_state_dict(model)
    if is_main():
        model.save_pretrained(directory, state_dict=state)
    barrier()
    return unsharded_class(model).from_pretrained(directory)


def unsharded_class(model: nn.Module) -> type:
    """The model's own class: FSDP2 puts a subclass of it and of FSDPModule in its place
    (ZeRO-3 keeps the class)."""
    from torch.distributed.fsdp import FSDPModule

    return next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state keyed by parameter name, whole, on the CPU of the main process
    ({} on the others); every process calls it. It loads with `load_optimizer_state` into a
    model sharded or not, over any number of processes."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    if not optimizer.state:
        # Before its first step an optimizer has nothing to save, and torch would make it take
        # a step of nothing to have something, which would count in its bias correction.
        return {}
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Put an `optimizer_state` back: each process keeps its shard of it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if not state:  # saved before the first step
        optimizer.state.clear()
        return

    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(model, optimizer, optim_state_dict=state, options=options)


def load_module_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a whole state dict for some of `model`'s parameters (those named in `state`); each
    process keeps its shard when the model is sharded."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    options = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, state, options=options)

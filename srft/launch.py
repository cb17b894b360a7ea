"""How this process was started. srft runs a pipeline in one process; a launcher that starts
several (`accelerate launch --multi_gpu`, `torchrun`), or one that was asked for several and
quietly starts one (`accelerate launch --cpu --num_processes N`), would have every process write
the same run directory, or run on one process what the user believes runs on N. Such a launch is
refused before any work starts, saying what was seen."""

from __future__ import annotations

import os
from collections.abc import Mapping

from srft.errors import SrftError


def launch_problem(env: Mapping[str, str]) -> str | None:
    """What is wrong with a launch whose environment is `env`, or None for a plain process."""
    world_size = int(env.get("WORLD_SIZE", "1") or 1)
    if world_size > 1:
        rank = env.get("RANK", "?")
        return (
            f"started as process {rank} of {world_size} (WORLD_SIZE={world_size}); srft runs "
            "a pipeline in one process: start it without a multi-process launcher"
        )
    if env.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return (
            "started with accelerate's FSDP plugin (ACCELERATE_USE_FSDP), which runs each "
            "process alone here: srft runs a pipeline in one process, start it without "
            "--use_fsdp"
        )
    launched_by_accelerate = any(key.startswith("ACCELERATE_") for key in env)
    if launched_by_accelerate and "MASTER_ADDR" in env and "WORLD_SIZE" not in env:
        # accelerate's one-process launcher sets MASTER_ADDR only when asked for several
        return (
            "started by a launcher asked for several processes that runs one "
            "(MASTER_ADDR without WORLD_SIZE, as `accelerate launch --cpu --num_processes N` "
            "does): srft runs a pipeline in one process, start it without the launcher"
        )
    return None


def check_launch(env: Mapping[str, str] | None = None) -> None:
    """Raise SrftError when this process was started in a way `launch_problem` refuses."""
    problem = launch_problem(os.environ if env is None else env)
    if problem is not None:
        raise SrftError(problem)

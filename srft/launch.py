"""How the processes of a run are started.

`compute.num_devices: N` (N > 1) has `srft run` start N worker processes through accelerate's
launcher (gloo on CPU, NCCL on GPUs); `accelerate launch -m srft run ...` with the user's own
accelerate config starts them just as well. A worker checks that the launch matches the config
before any work: a launcher that asked for several processes and quietly runs one
(`accelerate launch --cpu --num_processes N`), a number of processes other than num_devices, or
a launcher plugin other than compute.strategy is refused, saying what was seen.

Each worker then sets up the strategy's plugin from srft's keys: accelerate's FSDP plugin for
`fsdp`, its DeepSpeed plugin (ZeRO from `zero_stage` and `cpu_offload`, or a DeepSpeed JSON file)
for `deepspeed`.

When a worker dies, the launcher stops the others within seconds; `srft run` then names the
process that was lost.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srft.errors import SrftError

if TYPE_CHECKING:
    from srft.config import ComputeConfig

#: the accelerate launcher's environment flags for a strategy's plugin
PLUGIN_FLAGS = {"fsdp": "ACCELERATE_USE_FSDP", "deepspeed": "ACCELERATE_USE_DEEPSPEED"}


def launched_processes(env: Mapping[str, str]) -> int:
    """How many processes the launcher of this one started (1 without a launcher)."""
    return int(env.get("WORLD_SIZE", "1") or 1)


def launch_problem(env: Mapping[str, str], compute: ComputeConfig) -> str | None:
    """What is wrong with a launch whose environment is `env` for `compute`, or None."""
    processes = launched_processes(env)
    if processes > 1 and processes != compute.num_devices:
        return (
            f"compute.num_devices: {compute.num_devices}, but the launcher started "
            f"{processes} processes (WORLD_SIZE={processes}); make them agree"
        )
    launched_by_accelerate = any(key.startswith("ACCELERATE_") for key in env)
    if launched_by_accelerate and "MASTER_ADDR" in env and "WORLD_SIZE" not in env:
        # accelerate's one-process launcher sets MASTER_ADDR only when asked for several
        return (
            "started by a launcher asked for several processes that runs one (MASTER_ADDR "
            "without WORLD_SIZE, as `accelerate launch --cpu --num_processes N` does): set "
            "compute.num_devices and start `srft run`, or use `accelerate launch --multi_gpu`"
        )
    for strategy, flag in PLUGIN_FLAGS.items():
        if env.get(flag, "").lower() == "true" and compute.strategy != strategy:
            return (
                f"compute.strategy: '{compute.strategy}', but the launcher asked for "
                f"{strategy} ({flag}); set compute.strategy: {strategy} in the config, which "
                "then configures the plugin, and launch with --multi_gpu"
            )
    return None


def check_launch(compute: ComputeConfig, env: Mapping[str, str] | None = None) -> None:
    """Raise SrftError when this process was started in a way `launch_problem` refuses."""
    problem = launch_problem(os.environ if env is None else env, compute)
    if problem is not None:
        raise SrftError(problem)


def check_devices(compute: ComputeConfig, device_type: str) -> None:
    """Refuse, before any work, a layout this machine cannot run: more processes than devices
    (CPU cores on a CPU), or a strategy without its package or on a device it cannot use."""
    if device_type == "cuda":
        import torch

        available, what = torch.cuda.device_count(), "CUDA devices"
    else:
        available, what = len(os.sched_getaffinity(0)), "CPU cores"
    if compute.num_devices > available:
        raise SrftError(
            f"compute.num_devices: {compute.num_devices} processes, but this machine has "
            f"{available} {what}"
        )
    if compute.strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise SrftError(
            "compute.strategy: 'deepspeed' needs the deepspeed package "
            "(pip install --no-build-isolation deepspeed, with torch installed first)"
        )


def check_strategy(compute: ComputeConfig, device_type: str) -> None:
    """Refuse a strategy that cannot work as configured."""
    if compute.strategy in ("fsdp", "deepspeed") and compute.num_devices == 1:
        raise SrftError(
            f"compute.strategy: '{compute.strategy}' shards the training over "
            "compute.num_devices processes, and num_devices is 1; set num_devices above 1 or "
            "strategy: ddp"
        )
    if compute.cpu_offload and device_type == "cpu":
        raise SrftError(
            "compute.cpu_offload: true, but compute.device is the CPU, where everything already "
            "lives; set it false"
        )
    if compute.strategy == "deepspeed" and compute.deepspeed_config:
        read_deepspeed_file(compute.deepspeed_config)


def launcher_command(num_processes: int, srft_args: Sequence[str]) -> list[str]:
    """accelerate's launcher starting `num_processes` workers of `srft <srft_args>` on this
    machine; the strategy and precision are the config's, set up by each worker."""
    return [*launcher(num_processes), "-m", "srft", *srft_args]


def launcher(num_processes: int) -> list[str]:
    """accelerate's launcher of `num_processes` processes on this machine, up to the program
    it starts (a script, or -m and a module)."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(num_processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",
    ]


def run_workers(num_processes: int, on_cpu: bool, srft_args: Sequence[str]) -> int:
    """Start `num_processes` workers through accelerate's launcher and wait for them; their
    output passes through. Returns the exit status: a worker's own (1 when a gate stopped the
    run, 2 for a user's mistake), or 1 after naming a worker that died."""
    env = dict(os.environ)
    if on_cpu:
        env["ACCELERATE_USE_CPU"] = "true"  # gloo processes, not one process per GPU
    launcher = subprocess.Popen(
        launcher_command(num_processes, srft_args),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert launcher.stderr is not None
    tail: deque[str] = deque(maxlen=400)
    passing = LauncherOutput()
    for line in launcher.stderr:
        tail.append(line)
        if passing.shows(line):
            sys.stderr.write(line)
            sys.stderr.flush()
    status = launcher.wait()
    if status == 0:
        return 0
    lost = lost_process("".join(tail))
    if lost is None:
        if passing.held:  # the launcher failed for a reason of its own: show it
            sys.stderr.write("".join(passing.held))
        return status
    process, code = lost
    if code >= 0:
        return code
    raise WorkerLost(
        f"process {process} of {num_processes} ended by signal {-code} "
        f"({_signal_name(-code)}); the others were stopped. `srft run` with the same config "
        "resumes the run from its last checkpoint"
    )


class WorkerLost(Exception):
    """A worker process died; the message names it."""


class LauncherOutput:
    """Decides which lines of the launcher's stderr a user sees: the workers' output passes,
    the launcher's own traceback about a failed worker (which `run_workers` summarises in one
    line) is held back."""

    def __init__(self) -> None:
        self.held: list[str] = []
        self._launcher_failed = False

    def shows(self, line: str) -> bool:
        if self._launcher_failed:
            self.held.append(line)
            return False
        if self.held:
            self.held.append(line)
            if "accelerate/commands/launch.py" in line or "ChildFailedError" in line:
                self._launcher_failed = True
                return False
            if line.startswith("  File ") and "<frozen runpy>" not in line:
                sys.stderr.write("".join(self.held[:-1]))  # a worker's traceback
                self.held = []
                return True
            return False
        if line.startswith("Traceback (most recent call last):"):
            self.held.append(line)
            return False
        return True


_ROOT_CAUSE = re.compile(
    r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.DOTALL | re.IGNORECASE
)


def lost_process(launcher_stderr: str) -> tuple[int, int] | None:
    """The rank and exit code of the first worker that failed, as torch's elastic launcher
    reports it ('Root Cause (first observed failure)'); None when it reported none."""
    found = _ROOT_CAUSE.search(launcher_stderr)
    return (int(found.group(1)), int(found.group(2))) if found else None


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def start_processes(compute: ComputeConfig, on_cpu: bool) -> None:
    """Join this worker to the run's process group (gloo on CPU, NCCL on GPUs), with
    `collective_timeout_seconds` as the longest wait in a collective; quiet the log of every
    process but the main one."""
    import datetime
    import logging

    from accelerate import PartialState

    state = PartialState(
        cpu=on_cpu, timeout=datetime.timedelta(seconds=compute.collective_timeout_seconds)
    )
    if state.num_processes != compute.num_devices:
        raise SrftError(
            f"compute.num_devices: {compute.num_devices}, but accelerate set up "
            f"{state.num_processes} processes ({state.distributed_type}); launch with "
            "--multi_gpu"
        )
    if compute.strategy == "fsdp":
        _shard_with_fsdp(compute, on_cpu)
    elif compute.strategy == "deepspeed":
        _shard_with_deepspeed(compute, on_cpu)
    if not state.is_main_process:
        logging.getLogger("srft").setLevel(logging.WARNING)


def _shard_with_fsdp(compute: ComputeConfig, on_cpu: bool) -> None:
    """Set up accelerate's FSDP plugin for every model this run prepares (the RL engine's, and
    the Trainer's, which takes the state set up here): FSDP2, fully sharded, each decoder layer
    (the model's `_no_split_modules`) a unit of its own, gathered whole for saving, parameters
    and optimizer state in CPU memory with `cpu_offload`. accelerate applies its plugin on GPUs
    only; torch's FSDP2 runs on CPU processes over gloo too, so there the state is told so."""
    import logging

    from accelerate import Accelerator, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2,
        reshard_after_forward=True,
        auto_wrap_policy="transformer_based_wrap",
        cpu_offload=compute.cpu_offload,
        state_dict_type="FULL_STATE_DICT",
        cpu_ram_efficient_loading=False,
        sync_module_states=False,  # every process loads the same weights
    )
    state = Accelerator(
        cpu=on_cpu, mixed_precision=compute.mixed_precision, fsdp_plugin=plugin
    ).state
    if state.distributed_type != DistributedType.FSDP:
        state.distributed_type = DistributedType.FSDP
        state.fsdp_plugin = plugin
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    # Later accelerators (the Trainer's) take this state; with the launcher's --use_fsdp flag
    # left set they would first build a plugin of their own from its settings.
    os.environ.pop("ACCELERATE_USE_FSDP", None)
    logging.getLogger("accelerate.utils.fsdp_utils").setLevel(logging.WARNING)  # each save


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
        zero: dict[str, Any] = {"stage": compute.zero_stage}
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


def _shard_with_deepspeed(compute: ComputeConfig, on_cpu: bool) -> None:
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
    # each model starts from these settings (srft.models.zero.prepare_deepspeed_for)
    plugin.template = copy.deepcopy(plugin.deepspeed_config)  # type: ignore[attr-defined]
    state = Accelerator(cpu=on_cpu).state
    state.distributed_type = DistributedType.DEEPSPEED
    state.deepspeed_plugins = {"default": plugin}
    plugin.select(_from_accelerator_state=True)
    PartialState._shared_state["distributed_type"] = DistributedType.DEEPSPEED
    # selecting the plugin has transformers partition every model from_pretrained loads under
    # ZeRO-3; DeepSpeed partitions the models that train when they are prepared
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()

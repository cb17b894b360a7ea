"""How a run's processes start: a launch that does not match compute.num_devices and
compute.strategy is refused before any work, a layout this machine cannot run is refused, and a
worker that dies is named."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import srft
from srft.artifacts import read_json
from srft.config import ComputeConfig
from srft.errors import SrftError
from srft.launch import (
    LauncherOutput,
    check_devices,
    check_launch,
    check_strategy,
    launch_problem,
    launcher_command,
    lost_process,
)
from tests.runs import SMALL_WORLD

SRFT_ROOT = Path(srft.__file__).resolve().parent.parent
ONE = ComputeConfig()
TWO = ComputeConfig(num_devices=2)


def test_a_plain_process_and_a_matching_launch_are_fine():
    assert launch_problem({"PATH": "/usr/bin"}, ONE) is None
    assert launch_problem({"WORLD_SIZE": "1", "RANK": "0"}, ONE) is None
    # a MASTER_ADDR of the user's own, with no launcher around it
    assert launch_problem({"MASTER_ADDR": "10.0.0.1"}, ONE) is None
    assert launch_problem({"WORLD_SIZE": "2", "RANK": "1"}, TWO) is None
    fsdp = ComputeConfig(num_devices=2, strategy="fsdp")
    assert launch_problem({"WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true"}, fsdp) is None


@pytest.mark.parametrize(
    ("env", "compute", "seen"),
    [
        (
            {"WORLD_SIZE": "2", "RANK": "1"},
            ONE,
            "compute.num_devices: 1, but the launcher started 2",
        ),
        (
            {"WORLD_SIZE": "4", "RANK": "0"},
            TWO,
            "compute.num_devices: 2, but the launcher started 4",
        ),
        (
            {"ACCELERATE_USE_FSDP": "true", "WORLD_SIZE": "2"},
            TWO,
            "compute.strategy: 'ddp', but the launcher asked for fsdp",
        ),
        (
            {"ACCELERATE_USE_DEEPSPEED": "true", "WORLD_SIZE": "2"},
            TWO,
            "compute.strategy: 'ddp', but the launcher asked for deepspeed",
        ),
        (
            {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
            TWO,
            "--cpu --num_processes N",
        ),
    ],
)
def test_a_launch_that_does_not_match_the_config_is_refused(env, compute, seen):
    assert seen in launch_problem(env, compute)
    with pytest.raises(SrftError, match="launcher"):
        check_launch(compute, env)


def test_more_processes_than_cores_is_refused():
    cores = len(os.sched_getaffinity(0))
    with pytest.raises(SrftError, match=f"compute.num_devices: {cores + 1} processes, but this"):
        check_devices(ComputeConfig(num_devices=cores + 1), "cpu")
    check_devices(ComputeConfig(num_devices=cores), "cpu")


def test_deepspeed_needs_its_package(monkeypatch):
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "deepspeed" else found(name)
    )
    with pytest.raises(SrftError, match="'deepspeed' needs the deepspeed package"):
        check_devices(ComputeConfig(strategy="deepspeed", num_devices=2), "cpu")


def test_the_launcher_starts_srft_on_accelerate():
    command = launcher_command(2, ["run", "config.yaml"])
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "2"
    assert command[-4:] == ["-m", "srft", "run", "config.yaml"]


TORCHRUN_FAILURE = """\
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/venv/lib/python3.11/site-packages/accelerate/commands/launch.py", line 1423, in <module>
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
=======================================================
Failures:
[1]:
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 32506)  (SIGTERM)
-------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-25_16:19:52
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 32507)  (SIGKILL)
=======================================================
"""


def test_the_lost_process_is_the_root_cause():
    assert lost_process(TORCHRUN_FAILURE) == (1, -9)
    assert lost_process("stage 1 sft: running\n") is None


def test_the_launchers_traceback_is_held_back_and_a_workers_shown(capsys):
    output = LauncherOutput()
    worker = [
        "stage 5 rl: running\n",
        "Traceback (most recent call last):\n",
        '  File "<frozen runpy>", line 198, in _run_module_as_main\n',
        '  File "/repo/srft/rl/engine.py", line 10, in step\n',
        "ValueError: a bug\n",
    ]
    shown = [line for line in worker if output.shows(line)]
    assert shown == [worker[0], *worker[3:]]
    assert "Traceback" in capsys.readouterr().err  # the held lines, written once it was known
    launcher = LauncherOutput()
    assert not [line for line in TORCHRUN_FAILURE.splitlines(True) if launcher.shows(line)]


def launch(tmp_path: Path, *flags: str, srft_flags=()) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRFT_ROOT)}
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", *flags]
    common = ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    srft_run = ["-m", "srft", "run", "--stages", "1", "--output-dir", str(tmp_path / "run")]
    return subprocess.run(
        [*accelerate, *common, *srft_run, *srft_flags],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("flags", "seen"),
    [
        (
            ("--multi_gpu", "--num_processes", "2", "--main_process_port", "0"),
            "compute.num_devices: 1, but the launcher started 2 processes",
        ),
        (("--cpu", "--num_processes", "2"), "--cpu --num_processes N"),
    ],
)
def test_an_accelerate_launch_that_does_not_match_is_refused_before_any_work(tmp_path, flags, seen):
    done = launch(tmp_path, *flags)
    assert done.returncode != 0
    assert seen in done.stderr + done.stdout
    assert not (tmp_path / "run").exists()  # nothing written


@pytest.mark.slow
@pytest.mark.parametrize(
    ("plugin", "settings"),
    [
        ("--use_fsdp", ["compute.strategy=fsdp"]),
        # the launcher's ZeRO stage gives way to the config's
        (
            "--use_deepspeed --zero_stage 3",
            ["compute.strategy=deepspeed", "compute.zero_stage=2"],
        ),
    ],
)
def test_accelerate_launch_with_its_plugin_trains_sharded(tmp_path, plugin, settings):
    flags = (*plugin.split(), "--num_processes", "2", "--main_process_port", "0")
    small = [arg for setting in SMALL_WORLD for arg in ("--set", setting)]
    layout = ["--set", "compute.num_devices=2", *(a for s in settings for a in ("--set", s))]
    done = launch(tmp_path, *flags, srft_flags=[*small, *layout])
    assert done.returncode == 0, done.stderr[-3000:]
    stage = read_json(tmp_path / "run" / "summary.json")["stages"]["1"]
    strategy = settings[0].split("=")[1]
    assert (stage["status"], stage["processes"], stage["strategy"]) == ("done", 2, strategy)
    assert (tmp_path / "run" / "stage1_sft" / "model" / "model.safetensors").exists()


def test_the_sharded_strategies_are_taken():
    for strategy in ("fsdp", "deepspeed"):
        check_strategy(ComputeConfig(strategy=strategy, num_devices=2), "cpu")
    check_strategy(ComputeConfig(), "cpu")


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed"])
def test_sharding_on_one_process_is_refused(strategy):
    with pytest.raises(SrftError, match=f"'{strategy}' shards .* num_devices is 1"):
        check_strategy(ComputeConfig(strategy=strategy), "cuda")


@pytest.mark.parametrize(
    ("text", "seen"),
    [
        (None, "no such file"),
        ("{not json", "not JSON (line 1"),
        ('{"train_batch_size": 8}', "has no 'zero_optimization' section"),
        ('{"zero_optimization": {"stage": 4}}', "zero_optimization.stage must be 1, 2 or 3, not 4"),
    ],
)
def test_a_bad_deepspeed_file_is_refused_naming_it(tmp_path, text, seen):
    path = tmp_path / "ds.json"
    if text is not None:
        path.write_text(text)
    compute = ComputeConfig(strategy="deepspeed", num_devices=2, deepspeed_config=str(path))
    with pytest.raises(SrftError, match=re.escape(f"compute.deepspeed_config: {path}: {seen}")):
        check_strategy(compute, "cpu")


def test_cpu_offload_on_the_cpu_is_refused():
    with pytest.raises(SrftError, match="compute.cpu_offload: true, but compute.device"):
        check_strategy(ComputeConfig(strategy="fsdp", num_devices=2, cpu_offload=True), "cpu")
    check_strategy(ComputeConfig(strategy="fsdp", num_devices=2, cpu_offload=True), "cuda")

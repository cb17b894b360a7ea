"""A pipeline runs in one process: a launch of several, or one that quietly runs one of the
several asked for, is refused before any work starts."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import srft
from srft.errors import SrftError
from srft.launch import check_launch, launch_problem

SRFT_ROOT = Path(srft.__file__).resolve().parent.parent


def test_a_plain_process_is_fine():
    assert launch_problem({"PATH": "/usr/bin"}) is None
    assert launch_problem({"WORLD_SIZE": "1", "RANK": "0"}) is None
    # a MASTER_ADDR of the user's own, with no launcher around it
    assert launch_problem({"MASTER_ADDR": "10.0.0.1"}) is None


@pytest.mark.parametrize(
    ("env", "seen"),
    [
        ({"WORLD_SIZE": "2", "RANK": "1"}, "process 1 of 2 (WORLD_SIZE=2)"),
        ({"ACCELERATE_USE_FSDP": "true", "WORLD_SIZE": "1"}, "ACCELERATE_USE_FSDP"),
        (
            {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
            "--cpu --num_processes N",
        ),
    ],
)
def test_a_launch_of_several_processes_is_refused(env, seen):
    assert seen in launch_problem(env)
    with pytest.raises(SrftError, match="srft runs a pipeline in one process"):
        check_launch(env)


def launch(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRFT_ROOT)}
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", *flags]
    common = ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    srft_run = ["-m", "srft", "run", "--stages", "1", "--output-dir", str(tmp_path / "run")]
    return subprocess.run(
        [*accelerate, *common, *srft_run],
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
        (("--multi_gpu", "--num_processes", "2", "--main_process_port", "0"), "of 2"),
        (("--cpu", "--num_processes", "2"), "--cpu --num_processes N"),
    ],
)
def test_accelerate_launch_is_refused_before_any_work(tmp_path, flags, seen):
    done = launch(tmp_path, *flags)
    assert done.returncode != 0
    assert seen in done.stderr + done.stdout
    assert not (tmp_path / "run").exists()  # nothing written

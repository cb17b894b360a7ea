"""What the benchmarks against TRL share: a TRL release in a virtual environment of its own
(created on first use), a worker process in it or in srft's, and the timing of each side's
steps after one warm-up step."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def trl_python(venv: Path, version: str) -> Path:
    """The interpreter of `venv`, a virtual environment with trl==`version` (and torch's CPU
    build), created on first use."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv.relative_to(ROOT)} with trl=={version} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "--quiet"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, f"trl=={version}"], check=True)
    return python


def run_worker(python: Path, script: str, *args: str) -> float:
    """`python script ARGS`, srft and the benchmarks importable; the last line it prints, a
    number (episodes/s)."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")])
    env = {**os.environ, "PYTHONPATH": path, "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run(
        [str(python), script, *args], check=True, capture_output=True, text=True, env=env
    )
    return float(out.stdout.strip().splitlines()[-1])


def alternate(rounds: int, pythons: dict[str, Path], script: str, *args: str) -> dict[str, list]:
    """Each worker's episodes/s over `rounds` rounds that run the workers in turn, each as
    `python script --worker NAME ARGS` with its own interpreter; every figure is printed to
    stderr as it comes."""
    figures: dict[str, list[float]] = {worker: [] for worker in pythons}
    for number in range(1, rounds + 1):
        for worker, python in pythons.items():
            figure = run_worker(python, script, "--worker", worker, *args)
            figures[worker].append(figure)
            print(f"round {number}: {worker}: {figure:.1f} episodes/s", file=sys.stderr)
    return figures


def engine_episodes_per_s(engine, prompts: list[str], per_step: int, steps: int) -> float:
    """srft's engine: episodes/s over `steps` steps of `per_step` prompts each, after one."""
    batches = [prompts[i : i + per_step] for i in range(0, len(prompts), per_step)]
    engine.step(batches[0])  # warm-up
    start = time.perf_counter()
    for i in range(steps):
        engine.step(batches[(i + 1) % len(batches)])
    return steps * engine.rl.batch_size / (time.perf_counter() - start)


def step_clock():
    """A TRL trainer callback that records when each step ends, and the list it fills."""
    from transformers import TrainerCallback

    ends: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())

    return StepClock(), ends


def clocked_episodes_per_s(ends: list[float], episodes_per_step: int) -> float:
    """A TRL run's episodes/s from its step ends, the first step its warm-up."""
    return (len(ends) - 1) * episodes_per_step / (ends[-1] - ends[0])

"""What the tests that run the pipeline share: the smallest world's config, the run of stages 1-4
that the end-to-end tests share (the `good_run` fixture of tests/conftest.py), bringing it back
to the good config, and a stand-in for a crash."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

import srft
from srft.artifacts import read_json
from srft.config import SrftConfig
from srft.outputs import SFTOutputs
from srft.pipeline import Pipeline, RunOutcome
from srft.run_dir import RunDir

#: A stage 1 record as a test publishes it by hand (val_perplexity = exp(val_loss)).
SFT_RECORD = SFTOutputs(
    trained=True,
    train_examples=90,
    val_examples=10,
    val_loss=1.5,
    val_perplexity=4.4817,
    baseline={"next": 0.5},
)


class Interrupted(Exception):
    """Stands for a crash or Ctrl-C in the middle of a stage."""


SMALL_WORLD = [
    "world.n_sft_list=600",
    "world.n_sft_skill=300",
    "world.n_preference_prompts=300",
    "world.n_eval_prompts=20",
    "world.n_benchmark_items=10",
    "sft.epochs=2",
    "reward_training.max_epochs=3",
    "constraints.min_pairs=100",
    "rl_training.max_steps=6",
    "rl_training.batch_size=16",
    "rl_training.mini_batch_size=8",
    "logging.save_interval=3",
    "iteration.max_iterations=1",
    "iteration.rl_steps=2",
    "iteration.prompts_per_iteration=40",
    "evaluation.win_rate_samples=1",
    # The tiny world cannot reach real reward-model or RL figures: report those gates only.
    "gates.mode={reward_accuracy_train: warn, reward_accuracy_val: warn, train_val_gap: warn, "
    "kl_divergence: warn, entropy: warn, capability_retention: warn, win_rate: warn}",
    "compute.device=cpu",
    # One torch thread: on a busy 2-core machine the default pool made stage 1 take 62 s
    # instead of 2 s for these tiny models.
    "compute.num_threads=1",
]

#: The embedded world's stage 6 as the tests that run the whole world (`world_runs`) run it:
#: one iteration, on 128 new prompts, the reward model trained on from the current one.
WORLD_STAGE_6 = [
    "iteration.max_iterations=1",
    "iteration.prompts_per_iteration=128",
    "iteration.reward_model_start=current",
]

SRFT_ROOT = Path(srft.__file__).resolve().parent.parent


def srft_command(*args: str) -> tuple[list[str], dict[str, str]]:
    """`srft run ARGS` as a user runs it, and the environment it runs in."""
    env = {**os.environ, "PYTHONPATH": str(SRFT_ROOT)}
    return [sys.executable, "-m", "srft", "run", *args], env


def srft_run(*args: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    command, env = srft_command(*args)
    return subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )


#: the stages of the shared good run; stages 5-7 run once on it (`stages_5_to_7`)
STAGES = [1, 2, 3, 4]
LATER_STAGES = [5, 6, 7]


def run_restoring_threads(config: SrftConfig, root: Path, stages: list[int]):
    """Pipeline(config, root).execute(stages), leaving torch's thread count as it was (stages
    set it from compute.num_threads)."""
    threads = torch.get_num_threads()
    try:
        return Pipeline(config, root).execute(stages)
    finally:
        torch.set_num_threads(threads)


@dataclass
class GoodRun:
    config: SrftConfig
    run: RunDir
    status: str
    decision: str | None
    summary: dict  # summary.json, decisions.jsonl and metrics.jsonl right after the first run
    decisions: list[dict]
    metrics: list[dict]
    manifests: dict[int, dict]  # each stage's manifest.json right after the first run


@dataclass
class LaterStages:
    """Stages 5-7 run once on the shared run: the outcome, and each stage's manifest.json right
    after."""

    outcome: RunOutcome
    manifests: dict[int, dict]


def finished_times(run: RunDir) -> dict[int, float]:
    return {n: read_json(run.manifest(n))["finished"] for n in STAGES}


def restore(good: GoodRun) -> dict[int, float]:
    """Bring the shared run back to the good config; return the stages' finish times."""
    assert run_restoring_threads(good.config, good.run.root, STAGES).status == "passed"
    return finished_times(good.run)


def gate_settings(manifest: dict) -> list[tuple]:
    """(name, comparison, threshold, unit, mode) of each gate a stage's manifest holds, in the
    order the stage evaluated them."""
    gates = manifest["gates"]
    assert {g["stage"] for g in gates} <= {manifest["stage"]}
    return [(g["name"], g["comparison"], g["threshold"], g["unit"], g["mode"]) for g in gates]

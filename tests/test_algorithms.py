"""The embedded world passes all ten gates with each RL algorithm at seed 0: GRPO, RLOO and DPO
run stages 5-7 (stage 6 as `WORLD_STAGE_6` says) from the stages 1-4 of the one-process PPO run
of `world_runs`, which passes them with PPO; the three run side by side, one thread each."""

import shutil
import subprocess

import pytest

from srft.artifacts import read_json
from srft.config import GATE_NAMES
from tests.runs import WORLD_STAGE_6, srft_command

ALGORITHMS = ("GRPO", "RLOO", "DPO")
UPSTREAM = ("stage1_sft", "stage2_preferences", "stage3_reward", "stage4_reward_validation")


@pytest.fixture(scope="module")
def algorithm_runs(world_runs, tmp_path_factory):
    ppo = world_runs[1]
    root = tmp_path_factory.mktemp("algorithms")
    started = {}
    for algorithm in ALGORITHMS:
        run = root / algorithm
        run.mkdir()
        for part in ("world", *UPSTREAM):
            shutil.copytree(ppo / part, run / part)
        settings = [*WORLD_STAGE_6, f"rl_training.algorithm={algorithm}", "compute.num_threads=1"]
        command, env = srft_command(
            "--stages", "5-7", "--output-dir", str(run),
            *(arg for setting in settings for arg in ("--set", setting)),
        )  # fmt: skip
        started[algorithm] = subprocess.Popen(
            command, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
    for algorithm, process in started.items():
        _, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, (algorithm, stderr[-3000:])
    return ppo, {algorithm: root / algorithm for algorithm in ALGORITHMS}


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_world_passes_every_gate_with_each_algorithm(algorithm_runs, algorithm):
    ppo, runs = algorithm_runs
    run = runs[algorithm]
    summary = read_json(run / "summary.json")
    assert summary["status"] == "passed" and summary["decision"] == "deploy"
    assert set(summary["gates"]) == set(GATE_NAMES)
    assert all(gate["passed"] for gate in summary["gates"].values()), summary["gates"]
    rl = read_json(run / "stage5_rl" / "manifest.json")["outputs"]
    assert rl["algorithm"] == algorithm and rl["value_model"] == "none"
    for stage in UPSTREAM:  # the PPO run's stages, as they were
        manifest = f"{stage}/manifest.json"
        assert (run / manifest).read_bytes() == (ppo / manifest).read_bytes(), stage

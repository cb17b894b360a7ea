"""The `srft` command: the light commands start without torch or transformers; `srft
evaluate-rm` scores the shared run's reward model as stage 4 did."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import srft
from srft.artifacts import read_json
from srft.errors import SrftError
from srft.outputs import RewardOutputs, SFTOutputs, read_outputs
from tests.runs import restore

# The srft under test, ahead of any installed copy, in every child process.
SRFT_ROOT = Path(srft.__file__).resolve().parent.parent
HEAVY_MODULES = ("torch", "transformers", "accelerate", "datasets", "matplotlib", "numpy")

# Runs the command given as arguments, then prints its exit status and the heavy modules it
# imported, as JSON on the last line.
RUN_AND_REPORT = f"""
import json, sys
sys.argv = ["srft", *sys.argv[1:]]
from srft.cli import main
status = 0
try:
    main()
except SystemExit as stop:
    status = stop.code or 0
heavy = [name for name in {HEAVY_MODULES!r} if name in sys.modules]
print(json.dumps({{"status": status, "heavy": heavy}}))
"""


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SRFT_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _run_and_report(args: list[str], cwd: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_REPORT, *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_imports_no_heavy_module(tmp_path):
    assert _run_and_report(["--help"], tmp_path) == {"status": 0, "heavy": []}


@pytest.mark.parametrize("profile", ["world", "hh-rm", "smollm2"])
def test_init_and_validate_config_import_no_heavy_module(tmp_path, profile):
    config = tmp_path / "srf_config.yaml"
    written = _run_and_report(["init", "--profile", profile, str(config)], tmp_path)
    assert written == {"status": 0, "heavy": []}
    assert config.exists()
    checked = _run_and_report(["validate-config", str(config)], tmp_path)
    assert checked == {"status": 0, "heavy": []}


def test_a_reward_function_that_does_not_import_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "srf_config.yaml"
    config.write_text("rl_training:\n  reward_functions: [no_such_rewards:exact]\n")
    for command in ("validate-config", "run"):
        done = subprocess.run(
            [sys.executable, "-m", "srft", command, str(config)],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2
        assert done.stderr.strip() == (
            f"error: {config}: rl_training.reward_functions: cannot import module "
            "'no_such_rewards' (No module named 'no_such_rewards')"
        )
    assert not (tmp_path / "outputs").exists()  # refused before any work


def _fastest_seconds(command: list[str], cwd: Path, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def test_light_commands_start_within_a_bound_of_bare_python(tmp_path):
    """Each command's fastest of 3 runs, as a multiple of `python -c pass`'s fastest of 3.

    Measured on the 2-core development machine: `python -c pass` 0.023-0.026 s; `--help`
    0.14-0.21 s (6-7x), `init --profile smollm2` 0.20-0.31 s (9-10x), `validate-config`
    0.21-0.27 s (8-10x), up to 14x with both cores kept busy by other processes. `import torch`
    alone takes 1.5-2.2 s (60-66x); before the commands stopped importing it they took
    5-8 s (over 200x). A bound of 30x is about 0.7 s there: twice the worst ratio seen under
    load, and half of what a single import of torch costs.
    """
    bound = 30
    python = _fastest_seconds([sys.executable, "-c", "pass"], tmp_path)
    srft_command = [sys.executable, "-m", "srft"]
    config = str(tmp_path / "srf_config.yaml")
    commands = {
        "--help": ["--help"],
        "init": ["init", "--force", "--profile", "smollm2", config],
        "validate-config": ["validate-config", config],
    }
    ratios = {
        name: _fastest_seconds([*srft_command, *args], tmp_path) / python
        for name, args in commands.items()
    }
    assert all(ratio < bound for ratio in ratios.values()), (ratios, python)


@pytest.mark.slow
def test_evaluate_rm_prints_one_json_object(good_run):
    from typer.testing import CliRunner

    from srft.cli import app

    restore(good_run)
    run = good_run.run
    pairs = str(run.stage(2) / "pairs_test.jsonl")
    result = CliRunner().invoke(
        app,
        [
            "evaluate-rm",
            str(read_outputs(run, RewardOutputs).model),
            pairs,
            "--max-prompt-length",
            str(good_run.config.data.max_prompt_length),
            "--max-response-length",
            str(good_run.config.data.max_response_length),
        ],
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.output.strip().splitlines()[-1])
    assert list(found) == [
        "accuracy",
        "strict_accuracy",
        "tie_rate",
        "n",
        "mean_margin",
        "longer_reply_accuracy",
        "accuracy_over_length_baseline",
        "length_correlation",
        "rm_prefers_longer",
        "accuracy_per_subset",
    ]
    assert found["accuracy_per_subset"] is None  # the world's pairs name no subset
    stage4 = read_json(run.manifest(4))["outputs"]
    # on the test pairs, srft evaluate-rm measures what stage 4 measured
    assert found["accuracy"] == pytest.approx(stage4["reward_accuracy_val"])
    assert found["strict_accuracy"] == pytest.approx(stage4["strict_accuracy_val"])
    assert found["longer_reply_accuracy"] == pytest.approx(stage4["longer_reply_accuracy_val"])
    assert found["n"] == stage4["held_out_pairs"]

    untrained = CliRunner().invoke(
        app, ["evaluate-rm", str(read_outputs(run, SFTOutputs).model), pairs]
    )
    assert isinstance(untrained.exception, SrftError)
    assert "not a trained reward model" in str(untrained.exception)

"""LoRA (srft/models/lora.py) through every stage of the small world: adapters in SFT, the
reward model and RL, merged exports."""

import pytest

from srft.config import load_config
from srft.outputs import RewardOutputs, RLOutputs, SFTOutputs, read_outputs
from srft.run_dir import RunDir
from tests.runs import SMALL_WORLD, run_restoring_threads


@pytest.mark.slow
def test_lora_runs_every_stage_and_leaves_plain_checkpoints(tmp_path):
    # LoRA on the world's randomly initialised base cannot learn much; this checks the plumbing:
    # adapters in SFT, RM and RL, the RL reference as the adapter-free policy, merged exports.
    config = load_config(None, [*SMALL_WORLD, "model.lora={r: 4, alpha: 8}"])
    run = RunDir(tmp_path / "run")
    outcome = run_restoring_threads(config, run.root, [1, 2, 3, 4, 5, 6, 7])
    assert outcome.status == "passed"
    for folder in (
        read_outputs(run, SFTOutputs).model,
        read_outputs(run, RewardOutputs).model,
        read_outputs(run, RLOutputs).model,
        run.stage(6) / "model",
    ):
        assert (folder / "model.safetensors").is_file(), folder
        assert not (folder / "adapter_config.json").exists(), folder
    assert (run.stage(7) / "evaluation_report.json").is_file()

"""The CUDA paths: the RL engine on a GPU, the engine on two GPUs (NCCL) under every strategy
against ddp, and stages 1 to 5 of the small world on GPUs under DeepSpeed ZeRO-3, with and
without offload. They run where CUDA is and are skipped elsewhere; the same code paths run on
CPU processes over gloo in tests/rl/test_sharded.py and tests/test_multiprocess.py."""

import math

import pytest
import torch

from srft.artifacts import read_json
from tests.rl.test_engine import make_engine
from tests.rl.test_sharded import LAYOUTS, STEP, run_layouts
from tests.runs import SMALL_WORLD, srft_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")


def test_the_engine_trains_on_a_gpu():
    engine = make_engine("PPO", learning_rate=3e-3)
    assert engine.accelerator.device.type == "cuda"
    batch, stats = engine.step(STEP)
    assert batch.input_ids.device.type == "cuda"
    assert all(math.isfinite(value) for value in stats.values()), stats


@pytest.fixture(scope="module")
def gpu_runs(tmp_path_factory) -> dict[str, dict]:
    return run_layouts(tmp_path_factory, "cuda")


@pytest.mark.slow
@two_gpus
@pytest.mark.parametrize("layout", [name for name in LAYOUTS if name != "ddp"])
def test_every_strategy_samples_and_updates_on_gpus_as_ddp_does(gpu_runs, layout):
    ddp, sharded = gpu_runs["ddp"]["0"], gpu_runs[layout]["0"]
    for process in ("0", "1"):
        assert gpu_runs[layout][process]["responses"] == gpu_runs["ddp"][process]["responses"]
    for name, weight in ddp["weights"].items():
        assert torch.allclose(sharded["weights"][name], weight, atol=1e-4), (layout, name)
    assert sharded["resumed_same_responses"]


@pytest.mark.slow
@two_gpus
@pytest.mark.parametrize("offload", [False, True])
def test_stages_1_to_5_train_on_gpus_under_zero3(tmp_path, offload):
    layout = [
        "compute.device=cuda",
        "compute.num_devices=2",
        "compute.strategy=deepspeed",
        "compute.zero_stage=3",
        f"compute.cpu_offload={str(offload).lower()}",
    ]
    settings = (arg for setting in [*SMALL_WORLD, *layout] for arg in ("--set", setting))
    run = tmp_path / "run"
    done = srft_run(*settings, "--stages", "1-5", "--output-dir", str(run), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    stages = read_json(run / "summary.json")["stages"]
    for stage in ("1", "2", "3", "4", "5"):
        assert stages[stage]["status"] == "done", stages
        assert (stages[stage]["processes"], stages[stage]["strategy"]) == (2, "deepspeed")

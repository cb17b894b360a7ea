"""The engine with its model sharded over two CPU processes (gloo), by FSDP or DeepSpeed's ZeRO-2
and ZeRO-3, against the same engine under ddp: the same samples from the same weights, the same
update (the SFT loss mixed in), and a checkpoint that holds the whole model and resumes the
sharded engine (FSDP's also a one-process one; DeepSpeed's is refused there, saying why)."""

import copy
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from transformers import LlamaForCausalLM

from srft.config import ComputeConfig
from srft.data.sft import SFTExample, encode_sft
from srft.distributed import leave
from srft.errors import SrftError
from srft.launch import start_processes
from srft.models.sharding import full_state_dict
from srft.rl.engine import RLEngine
from srft.rl.policy import PolicyWithValue
from srft.world.tokenizer import build_tokenizer
from tests.rl.test_engine import LENGTHS, PROMPTS, fruit_share, make_engine

STEP = PROMPTS * 8  # the global batch of 32 prompts

#: strategy name -> the compute keys of two processes under it
LAYOUTS = {
    "ddp": {"strategy": "ddp"},
    "fsdp": {"strategy": "fsdp"},
    "zero2": {"strategy": "deepspeed", "zero_stage": 2},
    "zero3": {"strategy": "deepspeed", "zero_stage": 3},
}


def demonstrations() -> list[SFTExample]:
    rows = [{"prompt": p, "completion": "apple ."} for p in PROMPTS[:2]]
    return encode_sft(rows, build_tokenizer(), LENGTHS.max_prompt_length, 4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resumed_engine(checkpoint, like: RLEngine) -> RLEngine:
    """An engine built as stage 5 builds one to resume: the policy loaded from the checkpoint,
    then the rest of its state."""
    policy = LlamaForCausalLM.from_pretrained(checkpoint / "model")
    engine = RLEngine(
        PolicyWithValue(policy),
        like.tokenizer,
        fruit_share,
        like.rl,
        LENGTHS,
        ComputeConfig(),
        kl_aim_nats=like.kl_aim_nats,
        seed=1,  # another sampler: the checkpoint's comes back
        reference=copy.deepcopy(like.reference),
        demonstrations=like.demonstrations,
    )
    engine.load_state(checkpoint)
    return engine


def _worker(process: int, port: int, layout: str, directory, device: str = "cpu") -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(process),
        LOCAL_RANK=str(process),
        WORLD_SIZE="2",
        LOCAL_WORLD_SIZE="2",
    )
    torch.set_num_threads(1)
    compute = ComputeConfig(num_devices=2, device=device, **LAYOUTS[layout])
    start_processes(compute, on_cpu=device == "cpu")
    try:
        # with the SFT loss mixed in: a second forward of the wrapped model before the backward
        engine = make_engine(
            "PPO", learning_rate=3e-3, demonstrations=demonstrations(), ptx_coef=0.5
        )
        first, _ = engine.step(STEP)
        checkpoint = directory / "checkpoint"
        engine.save(checkpoint)
        # a copy: a model that is not sharded gives its live tensors, and it trains on below
        weights = {k: v.clone() for k, v in full_state_dict(engine.unwrapped).items()}
        dist.barrier()
        result = {"sharded": engine.sharded, "responses": first.responses, "weights": weights}
        if layout != "ddp":
            resumed = resumed_engine(checkpoint, engine)
            result["resumed_steps_done"] = resumed.steps_done
            ours, _ = engine.step(STEP)
            theirs, _ = resumed.step(STEP)
            result["resumed_same_responses"] = theirs.responses == ours.responses
            result["resumed_logprob_gap"] = float((theirs.logprobs - ours.logprobs).abs().max())
        torch.save(result, directory / f"result-{process}.pt")
        leave()  # together, as `srft run`'s processes end
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    return run_layouts(tmp_path_factory, "cpu")


def run_layouts(tmp_path_factory, device: str) -> dict[str, dict]:
    """One step of the engine on two processes on `device` under each layout; what each saw."""
    found = {}
    for layout in LAYOUTS:
        directory = tmp_path_factory.mktemp(layout)
        mp.spawn(_worker, args=(_free_port(), layout, directory, device), nprocs=2, join=True)
        found[layout] = {
            "dir": directory,
            **{str(r): torch.load(directory / f"result-{r}.pt") for r in (0, 1)},
        }
    return found


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["fsdp", "zero2", "zero3"])
def test_a_sharded_engine_samples_as_ddp_does(runs, layout):
    # ZeRO-2 keeps the whole model on every process; FSDP and ZeRO-3 shard it
    assert runs[layout]["0"]["sharded"] == (layout != "zero2")
    assert not runs["ddp"]["0"]["sharded"]
    for process in ("0", "1"):  # each process's share of the batch, from the same weights
        assert runs[layout][process]["responses"] == runs["ddp"][process]["responses"]


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["fsdp", "zero2", "zero3"])
def test_a_sharded_engine_makes_the_update_ddp_makes(runs, layout):
    ddp, sharded = runs["ddp"]["0"]["weights"], runs[layout]["0"]["weights"]
    assert set(ddp) == set(sharded) and "value_head.weight" in ddp
    start = make_engine("PPO", learning_rate=3e-3).unwrapped.state_dict()
    for name, weight in ddp.items():
        moved = (weight - start[name]).abs().max()
        gap = (sharded[name] - weight).abs().max()
        # Adam's first steps move a weight by about the learning rate whatever its gradient's
        # size, so an allreduce and a reduce-scatter may part a weight whose gradient is ~0
        assert gap <= max(0.1 * moved, 1e-5), name


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["zero2", "zero3"])
def test_a_deepspeed_checkpoint_is_whole_and_resumes_under_deepspeed(runs, layout):
    checkpoint = runs[layout]["dir"] / "checkpoint"
    policy = LlamaForCausalLM.from_pretrained(checkpoint / "model")
    whole = make_engine("PPO", learning_rate=3e-3).unwrapped.policy
    assert policy.num_parameters() == whole.num_parameters()
    for name, weight in policy.state_dict().items():
        assert torch.equal(weight, runs[layout]["0"]["weights"][f"policy.{name}"]), name
    result = runs[layout]["0"]
    assert result["resumed_steps_done"] == 1
    assert result["resumed_same_responses"]
    assert result["resumed_logprob_gap"] < 1e-4
    # the optimizer state is DeepSpeed's partitions: one process refuses it, saying why
    torch.set_num_threads(1)
    with pytest.raises(SrftError, match="written under compute.strategy: deepspeed"):
        resumed_engine(checkpoint, make_engine("PPO", learning_rate=3e-3))


@pytest.mark.slow
def test_a_sharded_engines_checkpoint_is_whole_and_resumes(runs, tmp_path):
    checkpoint = runs["fsdp"]["dir"] / "checkpoint"
    policy = LlamaForCausalLM.from_pretrained(checkpoint / "model")
    whole = make_engine("PPO", learning_rate=3e-3).unwrapped.policy
    assert policy.num_parameters() == whole.num_parameters()
    optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    for name, state in optimizer["state"].items():
        assert (
            state["exp_avg"].shape
            == policy.state_dict().get(name.removeprefix("policy."), state["exp_avg"]).shape
        )
    result = runs["fsdp"]["0"]
    assert result["resumed_steps_done"] == 1
    assert result["resumed_same_responses"]
    assert result["resumed_logprob_gap"] < 1e-4
    # and on one process: the whole optimizer state loads into an unsharded engine
    torch.set_num_threads(1)
    one = resumed_engine(checkpoint, make_engine("PPO", learning_rate=3e-3))
    assert one.steps_done == 1
    one.step(STEP)

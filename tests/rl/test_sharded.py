"""The engine with its model sharded by FSDP over two CPU processes (gloo), against the same
engine under ddp: the same samples from the same weights, the same update, and a checkpoint
that holds the whole model and resumes the sharded engine, or a one-process one."""

import copy
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from transformers import LlamaForCausalLM

from srft.config import ComputeConfig
from srft.launch import start_processes
from srft.models.sharding import full_state_dict
from srft.rl.engine import RLEngine
from srft.rl.policy import PolicyWithValue
from tests.rl.test_engine import LENGTHS, PROMPTS, fruit_share, make_engine

STEP = PROMPTS * 8  # the global batch of 32 prompts


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
    )
    engine.load_state(checkpoint)
    return engine


def _worker(process: int, port: int, strategy: str, directory) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(process),
        LOCAL_RANK=str(process),
        WORLD_SIZE="2",
        LOCAL_WORLD_SIZE="2",
    )
    torch.set_num_threads(1)
    start_processes(ComputeConfig(num_devices=2, strategy=strategy, device="cpu"), on_cpu=True)
    try:
        engine = make_engine("PPO", learning_rate=3e-3)
        first, _ = engine.step(STEP)
        checkpoint = directory / "checkpoint"
        engine.save(checkpoint)
        weights = full_state_dict(engine.unwrapped)
        dist.barrier()
        result = {"sharded": engine.sharded, "responses": first.responses, "weights": weights}
        if strategy == "fsdp":
            resumed = resumed_engine(checkpoint, engine)
            result["resumed_steps_done"] = resumed.steps_done
            ours, _ = engine.step(STEP)
            theirs, _ = resumed.step(STEP)
            result["resumed_same_responses"] = theirs.responses == ours.responses
            result["resumed_logprob_gap"] = float((theirs.logprobs - ours.logprobs).abs().max())
        torch.save(result, directory / f"result-{process}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    """One step of the engine on two processes under ddp and under fsdp; what each saw."""
    found = {}
    for strategy in ("ddp", "fsdp"):
        directory = tmp_path_factory.mktemp(strategy)
        mp.spawn(_worker, args=(_free_port(), strategy, directory), nprocs=2, join=True)
        found[strategy] = {
            "dir": directory,
            **{str(r): torch.load(directory / f"result-{r}.pt") for r in (0, 1)},
        }
    return found


@pytest.mark.slow
def test_fsdp_shards_the_model_and_samples_as_ddp_does(runs):
    assert runs["fsdp"]["0"]["sharded"] and not runs["ddp"]["0"]["sharded"]
    for process in ("0", "1"):  # each process's share of the batch, from the same weights
        assert runs["fsdp"][process]["responses"] == runs["ddp"][process]["responses"]


@pytest.mark.slow
def test_fsdp_makes_the_update_ddp_makes(runs):
    ddp, fsdp = runs["ddp"]["0"]["weights"], runs["fsdp"]["0"]["weights"]
    assert set(ddp) == set(fsdp) and "value_head.weight" in ddp
    start = make_engine("PPO", learning_rate=3e-3).unwrapped.state_dict()
    for name, weight in ddp.items():
        moved = (weight - start[name]).abs().max()
        gap = (fsdp[name] - weight).abs().max()
        # Adam's first steps move a weight by about the learning rate whatever its gradient's
        # size, so an allreduce and a reduce-scatter may part a weight whose gradient is ~0
        assert gap <= max(0.1 * moved, 1e-5), name


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

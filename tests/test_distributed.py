"""The collectives of a run's processes: the identity in a world of one, and in two gloo
processes the same answer on every process, equal to the one-process computation over the
whole batch."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from srft.distributed import (
    all_gather,
    all_sum,
    barrier,
    by_main,
    from_main,
    gather_chunks,
    is_main,
    rank,
    share,
    world_size,
)
from srft.rl.advantages import masked_whiten
from srft.rl.reductions import (
    mean_over_processes,
    mean_score,
    rollout_metrics,
    whiten_over_processes,
)


def test_a_plain_process_is_a_world_of_one():
    assert (world_size(), rank(), is_main()) == (1, 0, True)
    barrier()
    assert all_sum([1, 2.5]) == [1.0, 2.5]
    assert all_gather("a") == ["a"]
    assert from_main({"x": 1}) == {"x": 1}
    assert gather_chunks(3, lambda c: c * 10) == [0, 10, 20]
    assert share([1, 2, 3, 4]) == [1, 2, 3, 4]


# A batch of 4 sequences x 3 tokens, the last token of two of them padding.
X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0], [-1.0, 0.5, 2.0], [3.0, 1.0, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(process: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=process, world_size=2)
    try:
        mine = share(list(range(4)))  # rows 0-1 on process 0, rows 2-3 on process 1
        rows = torch.tensor(mine)
        x, mask = X[rows], MASK[rows]
        kl = x.abs() * mask
        worked: list[int] = []
        idle: list[int] = []
        gather_chunks(5, lambda c: c, idle=lambda: idle.append(rank()))
        results[process] = {
            "idle": idle,
            "by_main": by_main(lambda: worked.append(rank()) or f"done by {rank()}"),
            "worked": worked,
            "share": mine,
            "sum": all_sum([process + 1, 10.0]),
            "gather": all_gather(process),
            "from_main": from_main(f"decided by {process}"),
            # chunk c done by process c % 2 only; both get every chunk, in order
            "chunks": gather_chunks(5, lambda c: (c, rank())),
            "whitened": whiten_over_processes(x, mask),
            "metrics": rollout_metrics(mask, kl, x * mask, x[:, 0]),
            "means": mean_over_processes({"loss": float(process)}),
            "judge": mean_score([1.0] if process == 0 else [0.0, 0.5]),
        }
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes() -> dict:
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_worker, args=(_free_port(), results), nprocs=2, join=True)
    return dict(results)


def test_collectives_agree_on_every_process(two_processes):
    first, second = two_processes[0], two_processes[1]
    assert first["share"] == [0, 1] and second["share"] == [2, 3]
    assert first["sum"] == second["sum"] == [3.0, 20.0]
    assert first["gather"] == second["gather"] == [0, 1]
    assert first["from_main"] == second["from_main"] == "decided by 0"
    assert first["by_main"] == second["by_main"] == "done by 0"
    assert first["worked"] == [0] and second["worked"] == []  # the main process alone
    expected = [(0, 0), (1, 1), (2, 0), (3, 1), (4, 0)]
    assert first["chunks"] == second["chunks"] == expected
    # in step: process 1, with chunks 1 and 3 to process 0's three, idles once
    assert first["idle"] == [] and second["idle"] == [1]


def test_advantages_are_whitened_over_the_whole_batch(two_processes):
    whole = masked_whiten(X, MASK)
    together = torch.cat([two_processes[0]["whitened"], two_processes[1]["whitened"]])
    torch.testing.assert_close(together, whole, rtol=1e-5, atol=1e-6)


def test_rollout_metrics_are_the_whole_batchs(two_processes):
    kl = X.abs() * MASK
    whole = rollout_metrics(MASK, kl, X * MASK, X[:, 0])
    # by hand: |x| over the 10 real tokens sums to 22.5; x sums to 20.5; rewards 1, 4, -1, 3
    assert whole["kl_per_token_nats"] == pytest.approx(22.5 / 10)
    assert whole["kl_per_sequence_nats"] == pytest.approx(22.5 / 4)
    assert whole["entropy_nats"] == pytest.approx(20.5 / 10)
    assert whole["reward"] == pytest.approx(7 / 4)
    assert whole["response_tokens"] == pytest.approx(10 / 4)
    for process in (0, 1):
        assert two_processes[process]["metrics"] == pytest.approx(whole)


def test_losses_and_judge_scores_are_averaged_over_processes(two_processes):
    for process in (0, 1):
        assert two_processes[process]["means"] == {"loss": 0.5}
        assert two_processes[process]["judge"] == pytest.approx(1.5 / 3)

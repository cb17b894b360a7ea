import json
from pathlib import Path

import pytest

from srft.evaluation.sandbox import run_program
from srft.evaluation.tasks import humaneval_program

HUMANEVAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "humaneval"
FIRST40 = HUMANEVAL / "humaneval_first40.jsonl"


def test_a_program_that_exits_cleanly_passes():
    assert run_program("assert 1 + 1 == 2").passed


def test_a_failing_assertion_fails_with_its_error():
    outcome = run_program("assert 1 + 1 == 3, 'arithmetic'")
    assert not outcome.passed
    assert outcome.detail == "AssertionError: arithmetic"


def test_an_endless_loop_is_stopped():
    outcome = run_program("while True:\n    pass\n", timeout_seconds=2)
    assert not outcome.passed
    assert outcome.detail in ("timed out", "killed by signal 9 (a resource limit)") or (
        outcome.detail.startswith("killed by signal")
    )


def test_the_network_is_closed():
    outcome = run_program("import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=1)")
    assert outcome.detail == "OSError: network access is disabled in the srft sandbox"


def test_memory_is_limited():
    assert run_program("blob = bytearray(4 * 2**30)").detail == "MemoryError"


def test_the_environment_is_not_inherited(monkeypatch):
    monkeypatch.setenv("SRFT_SECRET", "token")
    assert run_program("import os\nassert 'SRFT_SECRET' not in os.environ").passed


@pytest.mark.skipif(not FIRST40.exists(), reason="shared/data is not beside the repo")
def test_humaneval_canonical_solutions_pass_and_a_wrong_one_fails():
    items = [json.loads(line) for line in FIRST40.read_text().splitlines()]
    outcomes = [run_program(humaneval_program(i, i["canonical_solution"])) for i in items]
    assert sum(o.passed for o in outcomes) == 40
    wrong = run_program(humaneval_program(items[0], "    return not True\n"))
    assert not wrong.passed

import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from srft.annotation import ANNOTATORS, JUDGES
from srft.artifacts import read_json, read_jsonl
from srft.config import load_config
from srft.evaluation.tasks import KINDS
from srft.pipeline import Pipeline
from srft.run_dir import RunDir
from tests.runs import SMALL_WORLD, STAGES, WORLD_STAGE_6, GoodRun, srft_run

# W&B runs stay on this machine, in each run directory, and say nothing
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"


@pytest.fixture
def write_plugin(tmp_path, monkeypatch):
    """A function writing a user's module into tmp_path, importable by its name. The module, and
    what it registers in srft's registries, are forgotten after the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    for registry in (KINDS, JUDGES, ANNOTATORS):
        registry.names()  # srft's own names are in before the copy
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    written: list[str] = []

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


@pytest.fixture(scope="session")
def good_run(tmp_path_factory) -> GoodRun:
    """One run of stages 1-4 that the end-to-end tests share (tests/stages, and `srft
    evaluate-rm` in tests/test_cli.py); each test starts by making sure the run folder holds it
    (a no-op when an earlier test left it so)."""
    threads = torch.get_num_threads()
    config = load_config(None, [*SMALL_WORLD, "logging.report_to=[tensorboard]"])
    run = RunDir(tmp_path_factory.mktemp("e2e") / "run")
    try:
        outcome = Pipeline(config, run.root).execute(STAGES)
    finally:
        torch.set_num_threads(threads)  # stages set it from compute.num_threads
    yield GoodRun(
        config,
        run,
        outcome.status,
        outcome.decision,
        read_json(run.summary),
        read_jsonl(run.decisions),
        read_jsonl(run.metrics),
        {n: read_json(run.manifest(n)) for n in STAGES},
    )
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def world_runs(tmp_path_factory) -> dict[int, Path]:
    """The embedded world's seven stages, `srft run` as a user runs it, in one process and in
    two (stage 6 as `WORLD_STAGE_6` says, every process taking part); tests/test_multiprocess.py
    compares them, tests/test_algorithms.py runs the other algorithms from the first one's
    stages 1-4."""
    root = tmp_path_factory.mktemp("world")
    runs = {}
    for processes in (1, 2):
        run = root / f"p{processes}"
        stage_6 = [arg for setting in WORLD_STAGE_6 for arg in ("--set", setting)]
        done = srft_run(
            "--output-dir",
            str(run),
            "--set",
            f"compute.num_devices={processes}",
            *stage_6,
            cwd=root,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs[processes] = run
    return runs

from pathlib import Path

import pytest
import torch

from srft.artifacts import read_json
from srft.pipeline import stage_specs
from tests.runs import LATER_STAGES, GoodRun, LaterStages, restore, run_restoring_threads

HERE = Path(__file__).parent
#: tests/stages/test_<module>.py tests the stage that srft/stages/<module>.py runs
STAGE_OF_MODULE = {
    f"test_{spec.run.__module__.rsplit('.', 1)[-1]}": number
    for number, spec in stage_specs().items()
}


def pytest_collection_modifyitems(items):
    """Run this folder's tests in stage order, as the pipeline runs the stages (test_base and
    test_remedies, which test no one stage, first), each file's tests in their own order. The
    tests of stages 1-4 then rerun stages on the shared run before stages 5-7 add their metrics:
    each rerun rewrites report.md, whose plots take about a second longer with those metrics in.
    And `test_end_to_end_run` finds .staging empty, as it stays until
    `test_failed_gates_stop_and_keep_the_published_stage` leaves its failed attempt there."""
    places = [i for i, item in enumerate(items) if item.path.parent == HERE]
    ordered = sorted((items[i] for i in places), key=lambda i: STAGE_OF_MODULE.get(i.path.stem, 0))
    for place, item in zip(places, ordered, strict=True):
        items[place] = item


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """Stages set torch's thread count from compute.num_threads: each test here leaves it as it
    found it, as the shared runs do."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def stages_5_to_7(good_run: GoodRun) -> LaterStages:
    """Stages 5-7 run once on the shared run of stages 1-4 (`good_run`), reporting to all three
    trackers (the logging section is in no stage's fingerprint: stages 1-4 stay done)."""
    restore(good_run)
    trackers = ["tensorboard", "mlflow", "wandb"]
    logging = good_run.config.logging.model_copy(update={"report_to": trackers})
    config = good_run.config.model_copy(update={"logging": logging})
    outcome = run_restoring_threads(config, good_run.run.root, LATER_STAGES)
    manifests = {n: read_json(good_run.run.manifest(n)) for n in LATER_STAGES}
    return LaterStages(outcome, manifests)

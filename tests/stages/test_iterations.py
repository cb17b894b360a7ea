"""Stage 6, iterations (srft/stages/iterations.py): its gates on the shared run. Its table of
iterations is checked in tests/stages/test_evaluation.py, with the run of stages 5-7."""

import pytest

from tests.runs import gate_settings


@pytest.mark.slow
def test_stage_6_gates_take_their_thresholds_from_constraints(good_run, stages_5_to_7):
    c = good_run.config.constraints
    # Both in warn mode, as SMALL_WORLD's gates.mode says.
    assert gate_settings(stages_5_to_7.manifests[6]) == [
        ("kl_divergence", "<=", c.kl_target, "nats/token", "warn"),
        ("entropy", "in", [c.entropy_min, c.entropy_max], "nats", "warn"),
    ]

"""Stage 4, reward model validation (srft/stages/reward_validation.py): its gates on the shared
run. What it measures is checked against `srft evaluate-rm` in tests/test_cli.py."""

import pytest

from tests.runs import gate_settings


@pytest.mark.slow
def test_stage_4_gates_take_their_thresholds_from_constraints(good_run):
    c = good_run.config.constraints
    # Both in warn mode, as SMALL_WORLD's gates.mode says.
    assert gate_settings(good_run.manifests[4]) == [
        ("reward_accuracy_val", ">=", c.reward_accuracy_target, "", "warn"),
        ("train_val_gap", "<", c.max_train_val_gap, "", "warn"),
    ]

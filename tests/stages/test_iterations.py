"""Stage 6, iterations (srft/stages/iterations.py): its gates on the shared run, and where an
iteration's reward model starts. Its table of iterations is checked in
tests/stages/test_evaluation.py, with the run of stages 5-7."""

import pytest
import torch

from srft.data.pairs import read_pairs
from srft.models.loading import load_reward_scorer
from srft.outputs import PreferenceOutputs, RewardOutputs, read_outputs
from srft.stages import iterations
from tests.runs import gate_settings, restore


@pytest.mark.slow
def test_stage_6_gates_take_their_thresholds_from_constraints(good_run, stages_5_to_7):
    c = good_run.config.constraints
    # Both in warn mode, as SMALL_WORLD's gates.mode says.
    assert gate_settings(stages_5_to_7.manifests[6]) == [
        ("kl_divergence", "<=", c.kl_target, "nats/token", "warn"),
        ("entropy", "in", [c.entropy_min, c.entropy_max], "nats", "warn"),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("start", ["current", "base"])
def test_an_iterations_reward_model_trains_on_from_the_current_one_or_afresh(
    good_run, tmp_path, start
):
    """At a vanishing learning rate, training on from the current RM keeps its rewards;
    training afresh from stage 3's starting point scores with a new, untrained head."""
    restore(good_run)
    reward = read_outputs(good_run.run, RewardOutputs)
    pairs = read_pairs(read_outputs(good_run.run, PreferenceOutputs).train_pairs_file).pairs[:64]
    config = good_run.config.model_copy(deep=True)
    config.iteration.reward_model_start = start
    config.reward_training.learning_rate = 1e-12
    found = iterations._retrain_reward_model(
        config, reward.base, str(reward.model), pairs[:48], pairs[48:], tmp_path
    )
    scores = [
        torch.cat(load_reward_scorer(model, 32, 24).pairs(pairs))
        for model in (str(reward.model), found)
    ]
    assert torch.allclose(scores[0], scores[1], atol=1e-4) == (start == "current")

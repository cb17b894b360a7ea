from srft.config import SrftConfig
from srft.decisions import adjust_evaluation, adjust_rl, more_candidates, retrain_reward_model
from srft.gates import Gate


def gate(name, value, threshold, comparison, stage=3):
    return Gate(name, value, threshold, comparison, stage)


def test_reward_model_that_underfits_trains_longer():
    # train 0.74, val 0.69: a gap of 0.05 is at least half the allowed 0.10 -> overfitting;
    # train 0.72, val 0.69: a gap of 0.03 -> underfitting
    config = SrftConfig()
    under = [
        gate("reward_accuracy_train", 0.72, 0.7, ">="),
        gate("reward_accuracy_val", 0.69, 0.7, ">="),
    ]
    adjustment = retrain_reward_model(config, under, 0)
    assert adjustment.changes == {
        "reward_training.max_epochs": config.reward_training.max_epochs + 3
    }
    assert adjustment.rerun_from == 3
    assert "underfitting" in adjustment.reason


def test_reward_model_that_overfits_gets_more_regularisation():
    config = SrftConfig()
    over = [
        gate("reward_accuracy_train", 0.74, 0.7, ">="),
        gate("reward_accuracy_val", 0.69, 0.7, ">="),
    ]
    adjustment = retrain_reward_model(config, over, 0)
    assert adjustment.changes["reward_training.max_epochs"] == config.reward_training.max_epochs - 1
    assert (
        adjustment.changes["reward_training.learning_rate"]
        == config.reward_training.learning_rate / 2
    )
    assert "overfitting" in adjustment.reason
    stage4 = [
        gate("reward_accuracy_val", 0.75, 0.7, ">=", 4),
        gate("train_val_gap", 0.15, 0.1, "<", 4),
    ]
    assert "overfitting" in retrain_reward_model(config, stage4, 0).reason


def test_rl_kl_over_halves_the_learning_rate_and_doubles_the_penalty():
    config = SrftConfig()
    gates = [gate("kl_divergence", 0.2, 0.1, "<=", 5), gate("entropy", 1.0, (0.5, 2.0), "in", 5)]
    changes = adjust_rl(config, gates, 0).changes
    assert changes == {
        "rl_training.learning_rate": config.rl_training.learning_rate / 2,
        "rl_training.kl_penalty": config.rl_training.kl_penalty * 2,
    }


def test_rl_entropy_outside_the_band_moves_reward_scale_and_bonus_opposite_ways():
    config = SrftConfig()
    low = adjust_rl(config, [gate("entropy", 0.3, (0.5, 2.0), "in", 5)], 0).changes
    assert low["rl_training.reward_scale"] < config.rl_training.reward_scale
    assert low["rl_training.entropy_bonus"] > config.rl_training.entropy_bonus
    high = adjust_rl(config, [gate("entropy", 2.5, (0.5, 2.0), "in", 5)], 0).changes
    assert high["rl_training.reward_scale"] > config.rl_training.reward_scale
    assert high["rl_training.entropy_bonus"] < config.rl_training.entropy_bonus


def test_passed_gates_need_no_adjustment():
    config = SrftConfig()
    assert adjust_rl(config, [gate("kl_divergence", 0.05, 0.1, "<=", 5)], 0) is None
    assert adjust_evaluation(config, [gate("win_rate", 0.4, 0.5, ">", 7)], 0) is None
    assert more_candidates(config, [gate("pair_count", 2000.0, 1000.0, ">=", 2)], 0) is None


def test_retention_short_reruns_rl_with_half_the_learning_rate():
    config = SrftConfig()
    adjustment = adjust_evaluation(config, [gate("capability_retention", 0.9, 0.95, ">=", 7)], 0)
    assert adjustment.rerun_from == 5
    assert adjustment.changes == {"rl_training.learning_rate": config.rl_training.learning_rate / 2}

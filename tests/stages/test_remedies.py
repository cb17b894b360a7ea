"""The stages' `adjust` hooks (srft/stages/remedies.py): a failed attempt's config and gates ->
the settings to change and the stage to rerun from. Each expected value is worked out here from
the settings the test gives."""

import pytest

from srft.config import load_config
from srft.gates import Gate
from srft.stages.remedies import after_evaluation, after_preferences, after_reward_model, after_rl


def config(*overrides: str):
    return load_config(None, list(overrides))


# --- after stage 2 -----------------------------------------------------------------------------


def test_pair_count_short_doubles_the_samples_and_warms_the_sampling():
    settings = config("annotation.samples_per_prompt=4", "annotation.temperature=1.0")
    failed = [Gate("pair_count", 120.0, 1000.0, ">=", 2)]
    adjustment = after_preferences(settings, failed, 0)
    assert adjustment.changes == {
        "annotation.samples_per_prompt": 8,  # 4 x 2
        "annotation.temperature": 1.2,  # 1.0 + 0.2
    }
    assert adjustment.rerun_from == 2


def test_samples_per_prompt_stop_at_16():
    settings = config("annotation.samples_per_prompt=12", "annotation.temperature=0.7")
    failed = [Gate("preference_gap", 0.05, 0.15, ">=", 2)]
    adjustment = after_preferences(settings, failed, 1)
    assert adjustment.changes == {
        "annotation.samples_per_prompt": 16,  # min(16, 12 x 2)
        "annotation.temperature": 0.9,  # 0.7 + 0.2
    }


def test_contaminated_pairs_are_dropped():
    failed = [Gate("decontamination", 0.8, 0.9, ">=", 2)]
    adjustment = after_preferences(config(), failed, 0)
    assert adjustment.changes == {"data.drop_contaminated": True}
    assert adjustment.rerun_from == 2
    assert after_preferences(config("data.drop_contaminated=true"), failed, 0) is None


def test_imported_pairs_cannot_be_resampled(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n')
    imported = config(f"data.train_file={pairs}")
    short = [Gate("pair_count", 10.0, 1000.0, ">=", 2), Gate("preference_gap", 0.1, 0.15, ">=", 2)]
    assert after_preferences(imported, short, 0) is None
    contaminated = [*short, Gate("decontamination", 0.5, 0.9, ">=", 2)]
    adjustment = after_preferences(imported, contaminated, 0)
    assert adjustment.changes == {"data.drop_contaminated": True}


def test_a_warned_failure_after_stage_2_needs_no_remedy():
    warned = [Gate("pair_count", 10.0, 1000.0, ">=", 2, mode="warn")]
    assert after_preferences(config(), warned, 0) is None


# --- after stages 3 and 4 ----------------------------------------------------------------------

RM_SETTINGS = (
    "reward_training.weight_decay=0.02",
    "reward_training.max_epochs=3",
    "reward_training.learning_rate=0.0002",
    "constraints.max_train_val_gap=0.1",
)


def test_stage_3_accuracies_low_together_mean_underfitting():
    # train 0.62 - val 0.6 = 0.02, under half the allowed gap (0.05)
    failed = [
        Gate("reward_accuracy_train", 0.62, 0.7, ">=", 3),
        Gate("reward_accuracy_val", 0.6, 0.7, ">=", 3),
    ]
    adjustment = after_reward_model(config(*RM_SETTINGS), failed, 0)
    assert adjustment.changes == {"reward_training.max_epochs": 6}  # 3 + 3
    assert adjustment.rerun_from == 3
    assert "underfitting" in adjustment.reason


def test_stage_3_train_ahead_of_val_by_half_the_gap_means_overfitting():
    # train 0.75 - val 0.68 = 0.07, at least half the allowed gap (0.05)
    gates = [
        Gate("reward_accuracy_train", 0.75, 0.7, ">=", 3),
        Gate("reward_accuracy_val", 0.68, 0.7, ">=", 3),
    ]
    adjustment = after_reward_model(config(*RM_SETTINGS), gates, 0)
    assert adjustment.changes == {
        "reward_training.weight_decay": 0.1,  # max(0.05, 0.02 x 5)
        "reward_training.max_epochs": 2,  # 3 - 1
        "reward_training.learning_rate": 0.0001,  # 0.0002 / 2
    }
    assert adjustment.rerun_from == 3
    assert "overfitting" in adjustment.reason


def test_stage_4_train_val_gap_failing_means_overfitting():
    gates = [
        Gate("reward_accuracy_val", 0.72, 0.7, ">=", 4),
        Gate("train_val_gap", 0.12, 0.1, "<", 4),
    ]
    adjustment = after_reward_model(config(*RM_SETTINGS), gates, 0)
    assert adjustment.changes == {
        "reward_training.weight_decay": 0.1,
        "reward_training.max_epochs": 2,
        "reward_training.learning_rate": 0.0001,
    }
    assert adjustment.rerun_from == 3  # stage 4's remedy retrains the reward model
    assert adjustment.reason.startswith("train_val_gap failed (overfitting)")


def test_weight_decay_rises_to_at_least_0_05():
    settings = config("reward_training.weight_decay=0.0", "reward_training.max_epochs=1")
    failed = [Gate("train_val_gap", 0.3, 0.1, "<", 4)]
    changes = after_reward_model(settings, failed, 0).changes
    assert changes["reward_training.weight_decay"] == 0.05  # max(0.05, 0 x 5)
    assert changes["reward_training.max_epochs"] == 1  # at least one epoch


def test_a_warned_failure_is_not_named_as_the_reason_to_retrain():
    gates = [
        Gate("reward_accuracy_val", 0.6, 0.7, ">=", 4),
        Gate("train_val_gap", 0.12, 0.1, "<", 4, mode="warn"),
    ]
    adjustment = after_reward_model(config(*RM_SETTINGS), gates, 0)
    assert adjustment.reason.startswith("reward_accuracy_val failed (overfitting)")


# --- after stage 5 -----------------------------------------------------------------------------

RL_SETTINGS = (
    "rl_training.learning_rate=0.00001",
    "rl_training.kl_penalty=0.1",
    "rl_training.reward_scale=1.0",
    "rl_training.entropy_bonus=0.01",
)
BAND = (0.5, 2.0)


def test_kl_over_halves_the_learning_rate_and_doubles_the_penalty():
    failed = [Gate("kl_divergence", 0.2, 0.1, "<=", 5, unit="nats/token")]
    adjustment = after_rl(config(*RL_SETTINGS), failed, 0)
    assert adjustment.changes == {
        "rl_training.learning_rate": 0.000005,  # 0.00001 / 2
        "rl_training.kl_penalty": 0.2,  # 0.1 x 2
    }
    assert adjustment.rerun_from == 5


def test_entropy_under_the_band_lowers_the_reward_scale_and_raises_the_bonus():
    failed = [Gate("entropy", 0.3, BAND, "in", 5)]
    adjustment = after_rl(config(*RL_SETTINGS), failed, 0)
    assert adjustment.changes == {
        "rl_training.reward_scale": 0.5,  # 1.0 / 2
        "rl_training.entropy_bonus": 0.02,  # max(0.01, 0.01 x 2)
    }
    assert adjustment.rerun_from == 5


def test_entropy_over_the_band_raises_the_reward_scale_and_lowers_the_bonus():
    failed = [Gate("entropy", 2.5, BAND, "in", 5)]
    adjustment = after_rl(config(*RL_SETTINGS), failed, 0)
    assert adjustment.changes == {
        "rl_training.reward_scale": 2.0,  # 1.0 x 2
        "rl_training.entropy_bonus": 0.005,  # 0.01 / 2
    }


def test_kl_and_entropy_failing_together_change_all_four():
    failed = [Gate("kl_divergence", 0.2, 0.1, "<=", 5), Gate("entropy", 0.3, BAND, "in", 5)]
    changes = after_rl(config(*RL_SETTINGS), failed, 0).changes
    assert changes == pytest.approx(
        {
            "rl_training.learning_rate": 0.000005,
            "rl_training.kl_penalty": 0.2,
            "rl_training.reward_scale": 0.5,
            "rl_training.entropy_bonus": 0.02,
        }
    )


def test_warned_or_passed_rl_gates_need_no_remedy():
    gates = [
        Gate("kl_divergence", 0.2, 0.1, "<=", 5, mode="warn"),
        Gate("entropy", 1.0, BAND, "in", 5),
    ]
    assert after_rl(config(*RL_SETTINGS), gates, 0) is None


# --- after stage 7 -----------------------------------------------------------------------------


def test_retention_short_after_stage_7_reruns_rl_with_the_sft_loss(tmp_path):
    failed = [
        Gate("capability_retention", 0.9, 0.95, ">=", 7),
        Gate("win_rate", 0.4, 0.5, ">", 7),
    ]
    sft = tmp_path / "sft.jsonl"
    sft.write_text('{"prompt": "p", "completion": "c"}\n')
    adjustment = after_evaluation(config(f"data.sft_file={sft}"), failed, 0)
    assert adjustment.changes == {"rl_training.ptx_coef": 1.0}  # off, so PTX_COEF
    assert adjustment.rerun_from == 5
    again = after_evaluation(config(f"data.sft_file={sft}", "rl_training.ptx_coef=0.75"), failed, 1)
    assert again.changes == {"rl_training.ptx_coef": 1.5}  # 0.75 x 2
    # no demonstrations to learn from (an SFT checkpoint given instead): half the learning rate
    bare = after_evaluation(config("rl_training.learning_rate=0.00001"), failed, 0)
    assert bare.changes == {"rl_training.learning_rate": 0.000005}  # 0.00001 / 2


def test_other_stage_7_failures_have_no_remedy():
    failed = [Gate("win_rate", 0.4, 0.5, ">", 7), Gate("reward_accuracy_val", 0.6, 0.7, ">=", 7)]
    assert after_evaluation(config(), failed, 0) is None


def test_retention_short_in_warn_mode_needs_no_remedy():
    warned = [Gate("capability_retention", 0.9, 0.95, ">=", 7, mode="warn")]
    assert after_evaluation(config(), warned, 0) is None

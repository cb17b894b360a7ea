"""Each decision as a function of numbers, its expected answer worked out by hand."""

import pytest

from srft.decisions import (
    Adjustment,
    adjust_evaluation,
    adjust_rl,
    blocking,
    deploy_decision,
    judge_iteration,
    kl_guard,
    kl_remedy,
    more_candidates,
    retrain_reward_model,
    retry_or_stop,
)
from srft.gates import Gate


def gate(name, value, threshold, comparison, stage=3, mode="enforce"):
    return Gate(name, value, threshold, comparison, stage, mode=mode)


def test_blocking_names_only_failed_enforced_gates():
    gates = [
        gate("pair_count", 10.0, 1000.0, ">=", 2),
        gate("preference_gap", 0.1, 0.15, ">=", 2, mode="warn"),
        gate("decontamination", 1.0, 0.9, ">=", 2),
    ]
    assert blocking(gates) == {"pair_count"}


def test_retry_or_stop():
    adjustment = Adjustment({"a.b": 1}, "because", rerun_from=2)
    assert retry_or_stop(adjustment, 0, 2) == ("retry", "because")
    assert retry_or_stop(adjustment, 1, 2) == ("retry", "because")
    assert retry_or_stop(adjustment, 2, 2) == ("stop", "retries exhausted")
    assert retry_or_stop(None, 0, 2) == ("stop", "no adjustment for these gates")


def test_gap_short_doubles_the_samples_and_warms_the_sampling():
    found = more_candidates(
        {"preference_gap"},
        imported_pairs=False,
        samples_per_prompt=4,
        temperature=1.0,
        drop_contaminated=False,
    )
    assert found.changes == {"annotation.samples_per_prompt": 8, "annotation.temperature": 1.2}
    assert found.rerun_from == 2
    capped = more_candidates(
        {"pair_count"},
        imported_pairs=False,
        samples_per_prompt=12,
        temperature=0.7,
        drop_contaminated=False,
    )
    assert capped.changes == {"annotation.samples_per_prompt": 16, "annotation.temperature": 0.9}


def test_imported_pairs_cannot_be_resampled_but_can_be_decontaminated():
    kwargs = {"samples_per_prompt": 4, "temperature": 1.0}
    assert (
        more_candidates({"pair_count"}, imported_pairs=True, drop_contaminated=False, **kwargs)
        is None
    )
    found = more_candidates(
        {"pair_count", "decontamination"}, imported_pairs=True, drop_contaminated=False, **kwargs
    )
    assert found.changes == {"data.drop_contaminated": True}
    # already dropping: nothing left to change
    assert (
        more_candidates({"decontamination"}, imported_pairs=False, drop_contaminated=True, **kwargs)
        is None
    )


def retrain(failed, train, val, gap=None):
    return retrain_reward_model(
        failed,
        accuracy_train=train,
        accuracy_val=val,
        train_val_gap=gap,
        max_train_val_gap=0.10,
        weight_decay=0.01,
        max_epochs=5,
        learning_rate=1e-3,
    )


def test_reward_model_that_underfits_trains_longer():
    # train 0.72, val 0.69: a gap of 0.03 is under half the allowed 0.10 -> underfitting
    found = retrain({"reward_accuracy_val"}, 0.72, 0.69)
    assert found.changes == {"reward_training.max_epochs": 8}
    assert found.rerun_from == 3
    assert "underfitting" in found.reason


def test_reward_model_that_overfits_gets_more_regularisation():
    # train 0.74, val 0.69: a gap of 0.05 is half the allowed 0.10 -> overfitting:
    # weight decay max(0.05, 0.01 * 5) = 0.05, epochs 5 - 1, learning rate 1e-3 / 2
    found = retrain({"reward_accuracy_val"}, 0.74, 0.69)
    assert found.changes == {
        "reward_training.weight_decay": 0.05,
        "reward_training.max_epochs": 4,
        "reward_training.learning_rate": 5e-4,
    }
    assert "overfitting" in found.reason
    # stage 4's gap gate failed: overfitting whatever the accuracies
    assert "overfitting" in retrain({"train_val_gap"}, None, None, gap=0.15).reason


def test_no_failed_reward_gate_needs_no_retraining():
    assert retrain(set(), 0.74, 0.69) is None


def test_kl_remedy_halves_the_learning_rate_and_doubles_the_penalty():
    assert kl_remedy(1e-5, 0.1) == (5e-6, 0.2)


def test_kl_guard():
    assert kl_guard(0.1, 0.1, rollbacks=0, max_rollbacks=2) == "continue"  # at the bound
    assert kl_guard(0.11, 0.1, rollbacks=1, max_rollbacks=2) == "rollback"
    assert kl_guard(0.11, 0.1, rollbacks=2, max_rollbacks=2) == "stop"
    assert kl_guard(0.5, 0.1, rollbacks=0, max_rollbacks=2, early_stop=False) == "continue"


def rl_settings(entropy_nats=None):
    return {
        "entropy_nats": entropy_nats,
        "entropy_band": (0.5, 2.0),
        "learning_rate": 1e-5,
        "kl_penalty": 0.1,
        "reward_scale": 1.0,
        "entropy_bonus": 0.01,
    }


def test_rl_kl_over_applies_the_guards_remedy():
    found = adjust_rl({"kl_divergence"}, **rl_settings(entropy_nats=1.0))
    assert found.changes == {"rl_training.learning_rate": 5e-6, "rl_training.kl_penalty": 0.2}
    assert found.rerun_from == 5
    assert found.reason == "KL over: half the learning rate, twice the KL penalty"


def test_rl_entropy_outside_the_band_moves_reward_scale_and_bonus_opposite_ways():
    low = adjust_rl({"entropy"}, **rl_settings(entropy_nats=0.3)).changes
    assert low == {"rl_training.reward_scale": 0.5, "rl_training.entropy_bonus": 0.02}
    high = adjust_rl({"entropy"}, **rl_settings(entropy_nats=2.5)).changes
    assert high == {"rl_training.reward_scale": 2.0, "rl_training.entropy_bonus": 0.005}


RETENTION = {"ptx_coef": 0.0, "has_demonstrations": True, "learning_rate": 1e-5}


def test_no_failed_gate_needs_no_adjustment():
    assert adjust_rl(set(), **rl_settings(entropy_nats=1.0)) is None
    assert adjust_evaluation(**RETENTION, failed={"win_rate"}) is None


def test_retention_short_reruns_rl_with_the_sft_loss_then_twice_its_weight():
    first = adjust_evaluation({"capability_retention"}, **RETENTION)
    assert first.rerun_from == 5
    assert first.changes == {"rl_training.ptx_coef": 1.0}
    again = adjust_evaluation(
        {"capability_retention", "win_rate"}, **{**RETENTION, "ptx_coef": 1.0}
    )
    assert again.changes == {"rl_training.ptx_coef": 2.0}
    assert again.reason == "retention short: rerun RL with the SFT loss, weight 2"


def test_retention_short_without_demonstrations_halves_the_learning_rate():
    found = adjust_evaluation(
        {"capability_retention"}, **{**RETENTION, "has_demonstrations": False}
    )
    assert found.rerun_from == 5
    assert found.changes == {"rl_training.learning_rate": 5e-6}


def iteration(score, kl=0.05, entropy=1.0, accuracy=0.8):
    return judge_iteration(
        previous_score=0.50,
        score=score,
        kl_per_token_nats=kl,
        entropy_nats=entropy,
        reward_accuracy_val=accuracy,
        kl_bound_nats=0.1,
        entropy_band=(0.5, 2.0),
        accuracy_target=0.7,
        min_improvement=0.01,
    )


@pytest.mark.parametrize(
    ("kwargs", "verdict", "reason"),
    [
        ({"score": 0.55}, "accepted", "score up by 0.0500"),
        ({"score": 0.505}, "converged", "score gain 0.0050 below 0.01"),
        ({"score": 0.45}, "rolled_back", "score fell by 0.0500"),
        ({"score": 0.60, "kl": 0.12}, "rolled_back", "KL 0.1200 nats/token over 0.1"),
        ({"score": 0.60, "entropy": 0.4}, "rolled_back", "entropy 0.4000 nats outside"),
        ({"score": 0.60, "accuracy": 0.65}, "rolled_back", "retrained RM accuracy 0.6500"),
    ],
)
def test_judge_iteration(kwargs, verdict, reason):
    found, why = iteration(**kwargs)
    assert found == verdict
    assert why.startswith(reason)


def test_deploy_decision():
    assert deploy_decision(set(), reward_hacking=False) == "deploy"
    assert deploy_decision(set(), reward_hacking=None) == "deploy"  # no judge to tell
    assert deploy_decision(set(), reward_hacking=True) == "stop"
    assert deploy_decision({"win_rate"}, reward_hacking=False) == "stop"
    assert deploy_decision({"capability_retention", "win_rate"}, reward_hacking=False) == (
        "rollback"
    )

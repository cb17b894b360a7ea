"""RL's reward with verifiable reward functions: the weighted sum worked out by hand, the
function's answer checked before any update, the arithmetic task's exact-answer check, and a
rollout with non-finite rewards discarded by the training loop."""

import sys
import types

import pytest
import torch

from srft.arithmetic.judge import exact_answer
from srft.config import RLTrainingConfig, load_config
from srft.errors import ConfigError, SrftError
from srft.plugins import check_registered_names
from srft.rl.rewards import CombinedReward, NonFiniteReward, reward_functions
from srft.rl.trainer import GuardSettings, train_policy
from srft.tracking import Tracker
from tests.rl.test_engine import PROMPTS, fruit_share, make_engine


class ConstantModel:
    """A reward model that scores every response 0.5 and ranks pairs right 3 times in 4."""

    def __call__(self, prompts, responses, sequences):
        return torch.full((len(responses),), 0.5)

    def accuracy(self, pairs):
        return 0.75


@pytest.fixture
def functions_module(monkeypatch):
    module = types.ModuleType("user_rewards")
    module.length = lambda prompts, completions: [len(c) for c in completions]
    module.short = lambda prompts, completions: [1.0]
    module.nan = lambda prompts, completions: [float("nan")] * len(completions)
    module.calls = 0

    def nan_after_first(prompts, completions):
        module.calls += 1
        value = 1.0 if module.calls == 1 else float("nan")
        return [value] * len(completions)

    module.nan_after_first = nan_after_first
    monkeypatch.setitem(sys.modules, "user_rewards", module)
    return module


def combined(specs, weights=None, model_weight=1.0):
    rl = RLTrainingConfig(
        reward_functions=specs, reward_weights=weights, reward_model_weight=model_weight
    )
    return CombinedReward(ConstantModel(), reward_functions(rl), model_weight)


def test_the_reward_is_the_weighted_sum(functions_module):
    reward = combined(["user_rewards:length"], [0.25], model_weight=2.0)
    scores = reward(["p", "q"], ["ab", "abcd"], [[1], [2]])
    # 2 x 0.5 + 0.25 x 2 = 1.5, and 2 x 0.5 + 0.25 x 4 = 2.0
    assert scores.tolist() == [1.5, 2.0]
    assert reward.last_means == {"reward_model": 0.5, "reward_length": 3.0}
    assert reward.accuracy([]) == 0.75  # the reward model's
    alone = combined(["user_rewards:length"], model_weight=0.0)
    assert alone(["p"], ["abc"], [[1]]).tolist() == [3.0]
    assert "reward_model" not in alone.last_means


def test_a_function_answer_that_cannot_be_used_names_the_key(functions_module):
    with pytest.raises(ConfigError, match=r"reward_functions: user_rewards:short returned 1 "):
        combined(["user_rewards:short"])(["p", "q"], ["a", "b"], [[1], [2]])
    with pytest.raises(ConfigError, match="user_rewards:nan returned a value that is not finite"):
        combined(["user_rewards:nan"])(["p"], ["a"], [[1]])
    # after the first call, a non-finite value is the training loop's to handle
    later = combined(["user_rewards:nan_after_first"])
    later(["p"], ["a"], [[1]])
    assert torch.isnan(later(["p"], ["a"], [[1]])).all()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_here:f", "cannot import module 'no_such_module_here'"),
        ("user_rewards:missing", "'user_rewards' has no function 'missing'"),
    ],
)
def test_a_function_that_does_not_import_is_refused_before_the_run(functions_module, spec, message):
    config = load_config(None, [f"rl_training.reward_functions=[{spec}]"])
    with pytest.raises(ConfigError, match=f"cfg: rl_training.reward_functions: {message}"):
        check_registered_names(config, "cfg")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["rl_training.reward_functions=[nocolon]"], "expected 'module:function', got 'nocolon'"),
        (
            ["rl_training.reward_functions=[a:b]", "rl_training.reward_weights=[1, 2]"],
            "rl_training.reward_weights: 2 weights for 1 reward functions",
        ),
        (
            ["rl_training.reward_functions=[a:b]", "rl_training.algorithm=DPO"],
            "rl_training.reward_functions: DPO learns from stage 2's pairs",
        ),
        (["rl_training.reward_model_weight=0"], "leaves no reward"),
    ],
)
def test_reward_settings_that_cannot_work(overrides, message):
    with pytest.raises(SrftError, match=message):
        load_config(None, overrides)


def test_exact_answer_by_hand():
    prompts = ["What is 7 + 5? Answer with just the number.", "What is 9 - 3? Answer ..."]
    assert exact_answer(prompts * 2, ["12", "6.", "7 + 5 = 12", "5"]) == [1.0, 1.0, 0.0, 0.0]
    assert exact_answer(["Name a fruit."], ["12"]) == [0.0]


def test_a_rollout_with_non_finite_rewards_is_discarded(tmp_path):
    torch.set_num_threads(1)
    calls = {"n": 0}

    def flaky(prompts, responses, sequences):
        calls["n"] += 1
        scores = fruit_share(prompts, responses, sequences)
        return scores if calls["n"] != 3 else scores * float("nan")  # the second rollout

    engine = make_engine("PPO", learning_rate=3e-3)
    engine.reward_fn = flaky
    with pytest.raises(NonFiniteReward, match="32 rewards are not finite"):
        calls["n"] = 2
        before = [p.clone() for p in engine.unwrapped.parameters()]
        engine.step(PROMPTS * 8)
    assert engine.steps_done == 0
    for a, b in zip(before, engine.unwrapped.parameters(), strict=True):
        assert torch.equal(a, b)  # nothing applied

    calls["n"] = 0
    decisions = []
    guard = GuardSettings(0.5, True, 1, tuple(PROMPTS), measure_seed=5)
    outcome = train_policy(
        engine,
        PROMPTS * 8,
        max_steps=3,
        checkpoints=tmp_path,
        guard=guard,
        tracker=Tracker(tmp_path / "metrics.jsonl", 5),
        save_interval=10,
        log_interval=1,
        decide=lambda decision, reason, numbers: decisions.append((decision, reason)),
    )
    assert outcome.steps == 3 and outcome.rollbacks == 1 and not outcome.stopped_early
    assert decisions == [
        (
            "rollback",
            "32 of the batch's 32 rewards are not finite: the step is discarded, the policy "
            "unchanged",
        )
    ]

"""The Python entry points' configs: a section's keys as the seed's scripts pass them, a full
config, or an SrftConfig; the seed's token limits where the caller gives none."""

from srft.api import SEED_LENGTHS, _as_config
from srft.config import validate_config


def test_a_sections_keys_get_the_seeds_token_limits():
    config = _as_config({"learning_rate": 2e-5, "constraints": {"kl_target": 0.05}}, "rl_training")
    assert config.rl_training.learning_rate == 2e-5
    assert config.constraints.kl_target == 0.05
    assert (config.data.max_prompt_length, config.data.max_response_length) == (512, 1024)
    assert SEED_LENGTHS == {"max_prompt_length": 512, "max_response_length": 1024}


def test_a_full_config_keeps_its_own_limits_and_fills_the_rest():
    config = _as_config(
        {"reward_training": {"batch_size": 8}, "data": {"max_prompt_length": 64}},
        "reward_training",
    )
    assert config.reward_training.batch_size == 8
    assert (config.data.max_prompt_length, config.data.max_response_length) == (64, 1024)


def test_an_srft_config_is_taken_as_it_is():
    given = validate_config({"data": {"max_prompt_length": 16}})
    assert _as_config(given, "rl_training") is given

"""The Python entry points' configs: a section's keys as the seed's scripts pass them, a full
config, or an SrftConfig; the seed's token limits where the caller gives none; `rl_finetune`
from the shared run's SFT policy and reward model, online and with DPO."""

import json

import pytest
import torch

from srft.api import SEED_LENGTHS, _as_config, rl_finetune
from srft.artifacts import read_jsonl
from srft.config import validate_config
from srft.data.pairs import read_pairs
from tests.runs import restore


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


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["PPO", "GRPO", "DPO"])
def test_rl_finetune_trains_the_stage_1_policy_against_the_stage_3_reward_model(
    good_run, tmp_path, algorithm
):
    restore(good_run)
    run = good_run.run
    pairs = run.stage(2) / "pairs_train.jsonl"
    data = pairs  # DPO learns from the pairs, the others from their prompts
    if algorithm != "DPO":
        data = tmp_path / "prompts.jsonl"
        data.write_text(
            "".join(json.dumps({"prompt": p.prompt}) + "\n" for p in read_pairs(pairs).pairs)
        )
    config = {
        "rl_training": {
            "algorithm": algorithm,
            "batch_size": 8,
            "mini_batch_size": 8,
            "group_size": 4,
            "max_steps": 2,
        },
        "data": {"max_prompt_length": 32, "max_response_length": 24},
        "logging": {"save_interval": 1},
    }
    threads = torch.get_num_threads()
    try:
        found = rl_finetune(
            run.stage(1) / "model", run.stage(3) / "model", data, config, tmp_path / "out"
        )
    finally:
        torch.set_num_threads(threads)
    assert found["steps"] == 2 and not found["stopped_early"]
    assert 0 <= found["kl_per_token_nats"] < 0.1 and found["entropy_nats"] > 0
    assert (tmp_path / "out" / "model" / "config.json").exists()
    logged = {row["name"] for row in read_jsonl(tmp_path / "out" / "metrics.jsonl")}
    assert ("rewards_accuracy" in logged) == (algorithm == "DPO")
    assert "held_out_kl_per_token_nats" in logged

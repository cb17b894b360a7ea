"""The engine on a tiny random model: PPO, A2C, GRPO and RLOO raise a fixed reward; the KL
penalty holds GRPO and RLOO near the reference; the KL guard rolls back and keeps the KL within
the target; a checkpoint resumes where it stopped."""

import copy
import math
import statistics

import pytest
import torch

from srft.config import ComputeConfig, DataConfig, RLTrainingConfig
from srft.data.pairs import PreferencePair
from srft.data.sft import SFTCollator, encode_sft
from srft.errors import SrftError
from srft.rl.engine import RLEngine
from srft.rl.measure import measure_policy
from srft.rl.policy import PolicyWithValue
from srft.rl.trainer import GuardSettings, train_policy
from srft.tracking import Tracker
from srft.world.lexicon import CATEGORIES
from srft.world.model import build_base_model
from srft.world.tokenizer import build_tokenizer

FRUITS = set(CATEGORIES["fruits"])
LENGTHS = DataConfig(max_prompt_length=16, max_response_length=4)
PROMPTS = [f"kim says : name {n} fruits . answer :" for n in ("one", "two", "three", "four")]


def fruit_share(prompts, responses, sequences) -> torch.Tensor:
    """The fixed reward: the share of response words that are fruits."""
    scores = []
    for response in responses:
        words = response.split()
        scores.append(sum(w in FRUITS for w in words) / max(len(words), 1))
    return torch.tensor(scores)


def make_engine(
    algorithm: str,
    learning_rate: float,
    shared: bool = True,
    seed: int = 0,
    gradient_checkpointing: bool = False,
    demonstrations=(),
    **settings,
):
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    policy = build_base_model(tokenizer, hidden_size=32, num_layers=1, seed=seed)
    critic = None
    if not shared:
        from transformers import LlamaForTokenClassification

        critic = LlamaForTokenClassification(copy.deepcopy(policy.config))
    rl = RLTrainingConfig(
        algorithm=algorithm,
        learning_rate=learning_rate,
        **{
            "kl_penalty": 0.0,
            "adaptive_kl": False,
            "batch_size": 32,
            "mini_batch_size": 16,
            "ppo_epochs": 4 if algorithm == "PPO" else 1,
            **settings,
        },
    )
    return RLEngine(
        PolicyWithValue(policy, critic, value=not rl.critic_free),
        tokenizer,
        fruit_share,
        rl,
        LENGTHS,
        ComputeConfig(gradient_checkpointing=gradient_checkpointing),
        kl_aim_nats=0.05,
        seed=seed,
        reference=copy.deepcopy(policy),
        demonstrations=demonstrations,
    )


@pytest.mark.parametrize(("algorithm", "shared"), [("PPO", True), ("PPO", False), ("A2C", True)])
def test_rl_raises_a_fixed_reward(algorithm, shared):
    torch.set_num_threads(1)
    engine = make_engine(
        algorithm, learning_rate=3e-3 if algorithm == "PPO" else 1e-2, shared=shared
    )
    prompts = PROMPTS * 8
    rewards = [engine.step(prompts)[1]["reward"] for _ in range(25)]
    first, last = statistics.fmean(rewards[:3]), statistics.fmean(rewards[-3:])
    assert last > first + 0.2, (first, last)


@pytest.mark.parametrize(
    ("algorithm", "settings"),
    [
        ("GRPO", {}),
        ("GRPO", {"scale_advantages": False, "loss_aggregation": "constant"}),  # Dr. GRPO
        ("RLOO", {"loss_aggregation": "token"}),
    ],
)
def test_critic_free_rl_raises_a_fixed_reward(algorithm, settings):
    torch.set_num_threads(1)
    engine = make_engine(algorithm, 3e-3, group_size=4, **settings)
    assert engine.unwrapped.value_head is None and engine.unwrapped.critic is None
    rewards = []
    for _ in range(25):
        batch, stats = engine.step(PROMPTS * 2)  # batch_size 32: 8 prompts, 4 responses each
        rewards.append(stats["reward"])
    assert batch.input_ids.shape[0] == 32
    assert "value_loss" not in stats
    first, last = statistics.fmean(rewards[:3]), statistics.fmean(rewards[-3:])
    assert last > first + 0.2, (first, last)


@pytest.mark.parametrize(("algorithm", "kl_in"), [("GRPO", "loss"), ("RLOO", "reward")])
def test_the_kl_coefficient_holds_critic_free_rl_to_the_reference(algorithm, kl_in):
    torch.set_num_threads(1)
    kls = {}
    for coef in (0.0, 1.0):
        engine = make_engine(algorithm, 3e-3, group_size=4, kl_in=kl_in, kl_penalty=coef)
        stats = [engine.step(PROMPTS * 2)[1] for _ in range(15)]
        kls[coef] = statistics.fmean(s["kl_per_token_nats"] for s in stats[-5:])
        assert ("kl_k3_per_token_nats" in stats[-1]) == (kl_in == "loss")
    assert kls[1.0] < kls[0.0] / 2, kls


def _demonstration_loss(engine, demonstrations) -> float:
    batch = SFTCollator(engine.tokenizer.pad_token_id)(demonstrations)
    with torch.no_grad():
        out = engine.unwrapped.policy(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        )
    return float(out.loss)


def test_the_sft_loss_keeps_the_policy_on_its_demonstrations():
    torch.set_num_threads(1)
    tokenizer = build_tokenizer()
    rows = [{"prompt": p, "completion": "the ."} for p in PROMPTS]
    demonstrations = encode_sft(rows, tokenizer, LENGTHS.max_prompt_length, 4)
    losses = {}
    for coef in (0.0, 1.0):
        engine = make_engine("PPO", 3e-3, demonstrations=demonstrations, ptx_coef=coef)
        before = _demonstration_loss(engine, demonstrations)
        stats = [engine.step(PROMPTS * 8)[1] for _ in range(5)]
        losses[coef] = (before, _demonstration_loss(engine, demonstrations))
        assert ("ptx_loss" in stats[-1]) == bool(coef)
    # the same start; RL alone leaves the demonstrations unlearnt, the SFT loss learns them
    assert losses[0.0][0] == losses[1.0][0]
    assert losses[1.0][1] < losses[1.0][0] - 1.0
    assert losses[1.0][1] < losses[0.0][1] - 1.0
    with pytest.raises(SrftError, match="rl_training.ptx_coef"):
        make_engine("PPO", 3e-3, ptx_coef=1.0)


@pytest.mark.parametrize("shared", [True, False])
def test_gradient_checkpointing_computes_the_same_update(shared):
    plain = make_engine("PPO", learning_rate=1e-3, shared=shared)
    checkpointed = make_engine(
        "PPO", learning_rate=1e-3, shared=shared, gradient_checkpointing=True
    )
    for _ in range(2):
        _, expected = plain.step(PROMPTS * 8)
        _, got = checkpointed.step(PROMPTS * 8)
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert not checkpointed.unwrapped.training  # back in eval mode for sampling
    layers = list(checkpointed.unwrapped.modules())
    assert any(getattr(m, "gradient_checkpointing", False) is True for m in layers)
    for a, b in zip(plain.unwrapped.parameters(), checkpointed.unwrapped.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_first_ppo_epoch_starts_on_policy():
    # The old log-probabilities come from the sampling pass; the first update's ratio is 1.
    engine = make_engine("PPO", learning_rate=1e-12)
    batch, stats = engine.step(PROMPTS * 8)
    assert stats["approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert stats["clip_fraction"] == 0.0
    assert stats["kl_per_token_nats"] == pytest.approx(0.0, abs=1e-6)


def test_kl_guard_rolls_back_and_keeps_kl_within_target(tmp_path):
    torch.set_num_threads(1)
    # too large: one step keeps the held-out KL near 0.04, the next takes it past 0.1, and then
    # the policy runs away (a rate that runs away at once would leave only the start to keep)
    engine = make_engine("PPO", learning_rate=7e-3)
    decisions = []
    outcome = train_policy(
        engine,
        PROMPTS * 8,
        max_steps=12,
        checkpoints=tmp_path / "checkpoints",
        guard=GuardSettings(
            kl_bound_nats=0.1,
            early_stop_on_kl=True,
            max_rollbacks=2,
            held_out_prompts=tuple(PROMPTS * 8),
            measure_seed=5,
        ),
        tracker=Tracker(tmp_path / "metrics.jsonl", 5),
        save_interval=1,
        log_interval=1,
        decide=lambda decision, reason, numbers: decisions.append((decision, numbers)),
    )
    assert outcome.rollbacks >= 1
    assert decisions[0][0] == "rollback"
    assert decisions[0][1]["kl_per_token_nats"] > 0.1
    kinds = [d for d, _ in decisions]
    assert kinds[: outcome.rollbacks] == ["rollback"] * outcome.rollbacks
    assert kinds[outcome.rollbacks :] == (["stop"] if outcome.stopped_early else [])
    # the policy training ends with is the guard's last good one, measured as a gate measures it
    assert outcome.measures.kl_per_token_nats <= 0.1
    again = measure_policy(engine.measuring_sampler(5), PROMPTS * 8)
    assert again.kl_per_token_nats == pytest.approx(outcome.measures.kl_per_token_nats, rel=1e-6)
    assert again.kl_per_token_nats > 0  # it trained


def test_checkpoint_resume_restores_the_engine(tmp_path):
    torch.set_num_threads(1)
    engine = make_engine("PPO", learning_rate=3e-3)
    for _ in range(2):
        engine.step(PROMPTS * 8)
    engine.save(tmp_path / "ckpt")
    next_batch, _ = engine.step(PROMPTS * 8)

    resumed = make_engine("PPO", learning_rate=3e-3, seed=1)  # other weights and sampler
    resumed.load_weights(tmp_path / "ckpt")
    resumed.load_state(tmp_path / "ckpt")
    assert resumed.steps_done == 2
    again, _ = resumed.step(PROMPTS * 8)
    assert again.responses == next_batch.responses
    assert torch.allclose(again.logprobs, next_batch.logprobs, atol=1e-5)


def test_a_checkpoint_before_the_first_step_changes_nothing(tmp_path):
    torch.set_num_threads(1)
    saved = make_engine("PPO", learning_rate=3e-3)
    saved.save(tmp_path / "ckpt")  # as training does before its first step
    resumed = make_engine("PPO", learning_rate=3e-3, seed=1)
    resumed.load_weights(tmp_path / "ckpt")
    resumed.load_state(tmp_path / "ckpt")
    plain = make_engine("PPO", learning_rate=3e-3)
    for engine in (saved, resumed, plain):
        for _ in range(2):
            engine.step(PROMPTS * 8)
    for engine in (saved, resumed):
        for ours, theirs in zip(
            engine.unwrapped.parameters(), plain.unwrapped.parameters(), strict=True
        ):
            assert torch.equal(ours, theirs)


def make_lora_engine(learning_rate: float = 3e-3):
    from srft.config import LoraSettings
    from srft.models.lora import add_lora

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    policy = add_lora(
        build_base_model(tokenizer, hidden_size=32, num_layers=1, seed=0),
        LoraSettings(r=4, alpha=8),
        "CAUSAL_LM",
        seed=0,
    )
    rl = RLTrainingConfig(
        learning_rate=learning_rate,
        kl_penalty=0.0,
        adaptive_kl=False,
        batch_size=32,
        mini_batch_size=16,
    )
    # No reference model: the reference is the policy with its adapter disabled.
    return RLEngine(
        PolicyWithValue(policy),
        tokenizer,
        fruit_share,
        rl,
        LENGTHS,
        ComputeConfig(),
        kl_aim_nats=0.05,
        seed=0,
        reference=None,
    )


def test_lora_policy_trains_against_its_adapter_free_self(tmp_path):
    torch.set_num_threads(1)
    engine = make_lora_engine(learning_rate=1e-2)
    trainable = [n for n, p in engine.unwrapped.policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    first = engine.step(PROMPTS * 8)[1]
    assert first["kl_per_token_nats"] == pytest.approx(0.0, abs=1e-6)
    for _ in range(3):
        engine.step(PROMPTS * 8)
    assert engine.step(PROMPTS * 8)[1]["kl_per_token_nats"] > 0  # the adapter moved the policy

    engine.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model" / "adapter_model.safetensors").is_file()
    resumed = make_lora_engine()
    resumed.load_weights(tmp_path / "ckpt")
    resumed.load_state(tmp_path / "ckpt")
    batch, _ = engine.step(PROMPTS * 8)
    again, _ = resumed.step(PROMPTS * 8)
    assert torch.allclose(batch.logprobs, again.logprobs, atol=1e-5)

    engine.export_policy(tmp_path / "merged")
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    assert type(plain).__name__ == "LlamaForCausalLM"


def test_a_reference_held_in_half_precision_measures_kl_in_float():
    engine = make_engine("PPO", 1e-3)
    engine.reference.to(torch.bfloat16)
    _, stats = engine.step(["list three fruits"] * 32)
    assert stats["kl_per_token_nats"] >= 0 and math.isfinite(stats["kl_per_token_nats"])
    assert engine.reference.dtype == torch.bfloat16


def _fruit_pairs(chosen: str, rejected: str) -> list[PreferencePair]:
    return [PreferencePair(prompt, chosen, rejected) for prompt in PROMPTS] * 4


def _mean_reward(engine, samples: int = 8) -> float:
    return float(engine.sample(PROMPTS * samples).scores.mean())


def test_dpo_learns_the_chosen_side_of_its_pairs():
    torch.set_num_threads(1)
    engine = make_engine("DPO", 1e-2, batch_size=16, mini_batch_size=16)
    assert engine.unwrapped.value_head is None and engine.unwrapped.critic is None
    fruits = sorted(FRUITS)
    pairs = _fruit_pairs(f"{fruits[0]} {fruits[1]}", "the the")
    before = _mean_reward(engine)
    history = [engine.step(pairs) for _ in range(20)]
    batch, stats = history[-1]
    assert batch is None  # nothing sampled
    assert history[0][1]["rewards_margin"] == pytest.approx(0.0, abs=1e-4)  # policy = reference
    assert stats["rewards_accuracy"] == 1.0 and stats["rewards_margin"] > 0.5
    assert stats["rewards_chosen"] > 0 > stats["rewards_rejected"]
    assert stats["kl_coef"] == 0.1  # beta
    assert _mean_reward(engine) > before + 0.3


def test_dpo_beta_holds_the_policy_to_the_reference():
    torch.set_num_threads(1)
    fruits = sorted(FRUITS)
    pairs = _fruit_pairs(f"{fruits[0]} {fruits[1]}", "the the")
    kls = {}
    for beta in (0.02, 2.0):
        engine = make_engine("DPO", 1e-2, batch_size=16, mini_batch_size=8, beta=beta)
        for _ in range(15):
            engine.step(pairs)
        kls[beta] = float(engine.sample(PROMPTS * 8).kl.sum() / (len(PROMPTS) * 8))
    assert kls[2.0] < kls[0.02] / 2, kls

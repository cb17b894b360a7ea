"""The memory plan: bytes per device worked out by hand, model shapes counted against the built
models."""

from pathlib import Path

import pytest

from srft.config import LoraSettings, WorldConfig, validate_config
from srft.errors import SrftError
from srft.memory import (
    Layout,
    activation_bytes,
    frozen_bytes,
    lora_parameters,
    plan_memory,
    trained_bytes,
)
from srft.models.shape import (
    LinearLayer,
    ModelShape,
    llama_like_shape,
    llama_parameters,
    parse_parameter_count,
    read_shape,
)

README = Path(__file__).parents[1] / "README.md"


def layout(strategy="ddp", zero_stage=2, cpu_offload=False, devices=4, half=True) -> Layout:
    return Layout(strategy, zero_stage, cpu_offload, devices, half)


# 1e9 parameters on 4 devices, bytes per device: (weights, gradients, optimizer states, host).
@pytest.mark.parametrize(
    ("strategy", "zero_stage", "offload", "half", "expected"),
    [
        ("ddp", 2, False, True, (4e9, 4e9, 8e9, 0)),  # fp32 master, fp32 grads, two moments
        ("ddp", 2, True, True, (4e9, 4e9, 8e9, 0)),  # ddp does not offload
        ("ddp", 2, False, False, (4e9, 4e9, 8e9, 0)),  # the same 16 B without fp16/bf16
        ("fsdp", 2, False, True, (1e9, 1e9, 2e9, 0)),  # all of it / 4
        ("fsdp", 2, True, True, (0, 0, 0, 4e9)),  # the shards on the host
        ("deepspeed", 2, False, True, (2e9, 0.5e9, 3e9, 0)),  # 2 whole, 2 / 4, 12 / 4
        ("deepspeed", 2, True, True, (2e9, 0.5e9, 0, 3e9)),
        ("deepspeed", 3, False, True, (0.5e9, 0.5e9, 3e9, 0)),  # (2 + 2 + 12) / 4
        ("deepspeed", 3, True, True, (0, 0.5e9, 0, 3.5e9)),  # weights and optimizer moved
        ("deepspeed", 2, False, False, (4e9, 1e9, 2e9, 0)),  # fp32: 4 whole, (4 + 8) / 4
        ("deepspeed", 3, False, False, (1e9, 1e9, 2e9, 0)),  # fp32: (4 + 4 + 8) / 4
    ],
)
def test_a_trained_model_by_strategy(strategy, zero_stage, offload, half, expected):
    got = trained_bytes(1e9, layout(strategy, zero_stage, offload, half=half))
    assert (got.weights, got.gradients, got.optimizer_states, got.host) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("strategy", "zero_stage", "half", "expected"),
    [
        ("ddp", 2, True, 2e9),
        ("fsdp", 2, True, 2e9),  # frozen models are not sharded by fsdp
        ("deepspeed", 2, True, 2e9),
        ("deepspeed", 3, True, 0.5e9),  # ZeRO-3 shards them: 2e9 / 4
        ("ddp", 2, False, 4e9),
    ],
)
def test_a_frozen_model_by_strategy(strategy, zero_stage, half, expected):
    assert frozen_bytes(1e9, layout(strategy, zero_stage, half=half)) == pytest.approx(expected)


def test_a_lora_base_is_frozen_and_goes_with_the_trained_model():
    # 1e6 adapter parameters on a 1e9 base, fp16, 4 devices.
    ddp = trained_bytes(1e6, layout("ddp"), frozen=1e9)
    assert (ddp.weights, ddp.gradients, ddp.optimizer_states) == pytest.approx((2.004e9, 4e6, 8e6))
    fsdp = trained_bytes(1e6, layout("fsdp"), frozen=1e9)
    # (2e9 base + 4e6 adapters) / 4, 4e6 / 4, 8e6 / 4
    assert (fsdp.weights, fsdp.gradients, fsdp.optimizer_states) == pytest.approx(
        (0.501e9, 1e6, 2e6)
    )
    offloaded = trained_bytes(1e6, layout("deepspeed", 3, cpu_offload=True), frozen=1e9)
    # weights (2e9 + 2e6) / 4 and optimizer 12e6 / 4 on the host, gradients 2e6 / 4 stay
    assert (offloaded.device, offloaded.host) == pytest.approx((0.5e6, 0.5005e9 + 3e6))


LAYERS = (
    LinearLayer("model.layers.0.self_attn.q_proj", 100, 200),
    LinearLayer("model.layers.0.self_attn.v_proj", 100, 50),
    LinearLayer("model.layers.0.mlp.down_proj", 400, 100),
)


def test_lora_parameters_are_r_times_in_plus_out_of_the_targets():
    assert lora_parameters(LAYERS, LoraSettings(r=8)) == 8 * (300 + 150 + 500)  # all-linear
    assert lora_parameters(LAYERS, LoraSettings(r=4, target_modules=["q_proj"])) == 4 * 300
    dotted = LoraSettings(r=2, target_modules=["self_attn.v_proj", "proj"])
    assert lora_parameters(LAYERS, dotted) == 2 * 150  # 'proj' is no module's name


def test_activation_bytes():
    # h 4, a 2 heads, 3 layers, s 10 tokens, b 2 sequences, vocabulary 50
    shape = ModelShape(0, 4, 3, 2, 50, None, (), "by hand")
    full_layer = 34 * 10 * 2 * 4 + 5 * 2 * 10 * 10 * 2  # 2720 + 2000 = 4720
    assert activation_bytes(shape, 2, 10, True, False, False) == 3 * full_layer  # 14160
    assert activation_bytes(shape, 2, 10, False, False, False) == 2 * 3 * full_layer  # fp32
    # checkpointed: each layer's input, 2·s·b·h = 160, plus one layer recomputed
    assert activation_bytes(shape, 2, 10, True, True, False) == 3 * 160 + full_layer  # 5200
    logits = 4 * 10 * 2 * 50  # fp32 logits, 4000
    assert activation_bytes(shape, 2, 10, True, True, True) == 5200 + logits


# 1e9 parameters: hidden 2048, 16 layers, 16 heads, vocabulary 32000, one adapted layer
SMALL = ModelShape(
    10**9, 2048, 16, 16, 32000, None, (LinearLayer("q_proj", 2048, 2048),), "by hand"
)


def small_config(**sections):
    raw = {
        "data": {"max_prompt_length": 6, "max_response_length": 4},  # 10 tokens
        "sft": {"batch_size": 8},
        "reward_training": {"batch_size": 4},
        "rl_training": {"batch_size": 4, "mini_batch_size": 4},
        "compute": {"fp16": True, "num_devices": 4},
    }
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    return validate_config(raw)


def test_the_rl_stage_under_ddp_by_hand():
    rl = plan_memory(small_config(), SMALL, SMALL).stages[-1]
    assert rl.stage == "RL"
    assert (rl.weights, rl.gradients, rl.optimizer_states) == pytest.approx((4e9, 4e9, 8e9))
    assert (rl.reference, rl.reward_model) == pytest.approx((2e9, 2e9))  # fp16, whole
    assert rl.value_model == pytest.approx((2048 + 1) * 16)  # the value head, trained
    # 4 / 4 = 1 sequence of 10 tokens, no checkpointing, fp16, plus the logits
    per_layer = 34 * 10 * 2048 + 5 * 16 * 10 * 10
    assert rl.activations == 16 * per_layer + 4 * 10 * 32000  # 12,549,120
    assert rl.total == pytest.approx(20e9 + 32784 + 12_549_120)


def test_lora_drops_the_reference_and_trains_the_adapters():
    rl = plan_memory(small_config(model={"lora": {"r": 8}}), SMALL, SMALL).stages[-1]
    adapters = 8 * (2048 + 2048)
    assert rl.reference == 0
    assert rl.weights == pytest.approx(2e9 + 4 * adapters)  # the fp16 base and the adapters
    assert (rl.gradients, rl.optimizer_states) == pytest.approx((4 * adapters, 8 * adapters))


def test_a_separate_critic_is_trained_at_the_reward_models_size():
    reward = ModelShape(10**8, 512, 4, 8, 30000, None, (), "by hand")
    config = small_config(
        model={"reward_model_type": "separate", "reward_base_model": "some/rm"},
        rl_training={"value_model": "separate"},
    )
    rl = plan_memory(config, SMALL, reward).stages[-1]
    assert rl.value_model == pytest.approx(16e8)  # 1e8 x 16 B
    assert rl.reward_model == pytest.approx(2e8)  # frozen, fp16
    critic = 4 * (34 * 10 * 512 + 5 * 8 * 100)  # its own activations, no logits
    policy = 16 * (34 * 10 * 2048 + 5 * 16 * 100) + 4 * 10 * 32000
    assert rl.activations == policy + critic


def test_the_stages_and_their_micro_batches():
    plan = plan_memory(small_config(), SMALL, SMALL)
    sft, reward, rl = plan.stages
    assert [s.stage for s in plan.stages] == ["SFT", "reward model", "RL"]
    assert sft.activations == activation_bytes(SMALL, 2, 10, True, False, True)  # 8 / 4
    assert reward.activations == activation_bytes(SMALL, 2, 10, True, False, False)  # 1 pair
    assert plan.peak is rl
    with_checkpoint = small_config(model={"sft_checkpoint": str(README)})
    assert [s.stage for s in plan_memory(with_checkpoint, SMALL, SMALL).stages] == [
        "reward model",
        "RL",
    ]


@pytest.mark.parametrize(
    ("text", "parameters"),
    [("7e9", 7 * 10**9), ("7B", 7 * 10**9), ("135M", 135 * 10**6), ("6.74e9", 6_740_000_000)],
)
def test_parameter_counts_are_read_with_suffixes(text, parameters):
    assert parse_parameter_count(text) == parameters


def test_a_parameter_count_that_is_not_one_is_refused():
    with pytest.raises(SrftError, match="--params 7X: expected a number of parameters"):
        parse_parameter_count("7X")


def test_llama_2_7b_has_its_parameters():
    # embeddings and head 2 x 32000 x 4096 = 262,144,000; 32 layers of 4 x 4096² + 3 x 4096 x
    # 11008 + 2 x 4096 = 202,383,360; the final norm 4096 (transformers counts the same)
    assert llama_parameters(4096, 32, 11008, 32000) == 262_144_000 + 32 * 202_383_360 + 4096
    assert llama_parameters(4096, 32, 11008, 32000) == 6_738_415_616


def test_the_assumed_shape_of_7b_is_llama_2_7b():
    shape = llama_like_shape(6_740_000_000)
    assert shape.parameters == 6_740_000_000 and shape.assumed
    assert (shape.hidden_size, shape.num_layers, shape.num_heads) == (4096, 32, 32)
    assert (shape.intermediate_size, shape.vocab_size) == (11008, 32000)
    assert len(shape.linear_layers) == 32 * 7


def _tiny_llama_config():
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=101,
        hidden_size=32,
        intermediate_size=80,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )


def test_a_local_directory_is_counted_exactly(tmp_path):
    from transformers import AutoModelForSequenceClassification, LlamaForCausalLM

    model = LlamaForCausalLM(_tiny_llama_config())
    model.save_pretrained(tmp_path)
    shape = read_shape(str(tmp_path))
    assert shape.parameters == sum(p.numel() for p in model.parameters())
    assert (shape.hidden_size, shape.num_layers, shape.num_heads) == (32, 2, 4)
    assert len(shape.linear_layers) == 2 * 7  # not the LM head
    config = _tiny_llama_config()
    config.num_labels = 1
    classifier = AutoModelForSequenceClassification.from_config(config)
    assert read_shape(str(tmp_path), "classifier").parameters == sum(
        p.numel() for p in classifier.parameters()
    )


def test_gpt2s_conv1d_layers_count_as_linear(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=90))
    model.save_pretrained(tmp_path)
    shape = read_shape(str(tmp_path))
    assert shape.parameters == sum(p.numel() for p in model.parameters())  # tied: counted once
    assert len(shape.linear_layers) == 2 * 4  # c_attn, c_proj, c_fc, mlp.c_proj
    assert LinearLayer("transformer.h.0.attn.c_attn", 32, 96) in shape.linear_layers


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing")  # transformers' own
@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "v_proj"]])
def test_lora_parameters_match_peft(tmp_path, targets):
    pytest.importorskip("peft")
    from transformers import LlamaForCausalLM

    from srft.models.lora import add_lora

    LlamaForCausalLM(_tiny_llama_config()).save_pretrained(tmp_path)
    settings = LoraSettings(r=4, target_modules=targets)
    adapted = add_lora(LlamaForCausalLM(_tiny_llama_config()), settings, "CAUSAL_LM", seed=0)
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    assert lora_parameters(read_shape(str(tmp_path)).linear_layers, settings) == trainable


def test_a_gguf_file_is_read_from_its_header(tmp_path):
    gguf = pytest.importorskip("gguf")
    import numpy as np

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_embedding_length(16)
    writer.add_block_count(1)
    writer.add_head_count(2)
    writer.add_feed_forward_length(48)
    writer.add_tensor("token_embd.weight", np.zeros((40, 16), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((16, 16), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_up.weight", np.zeros((48, 16), dtype=np.float32))
    writer.add_tensor("blk.0.attn_norm.weight", np.zeros(16, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    shape = read_shape(str(path))
    assert shape.parameters == 40 * 16 + 16 * 16 + 48 * 16 + 16
    assert (shape.hidden_size, shape.num_layers, shape.num_heads, shape.vocab_size) == (
        16,
        1,
        2,
        40,
    )
    assert set(shape.linear_layers) == {
        LinearLayer("model.layers.0.self_attn.q_proj", 16, 16),
        LinearLayer("model.layers.0.mlp.up_proj", 16, 48),
    }


def test_the_world_model_is_counted_as_built():
    from srft.world.model import build_base_model
    from srft.world.tokenizer import build_tokenizer

    world = WorldConfig(hidden_size=32, num_layers=3)
    model = build_base_model(build_tokenizer(), 32, 3)
    shape = read_shape("srft:world", world=world)
    assert shape.parameters == sum(p.numel() for p in model.parameters())
    assert shape.num_layers == 3


def test_a_hub_id_is_not_read_offline():
    with pytest.raises(SrftError, match="srft-tests/no-such-model: cannot read"):
        read_shape("srft-tests/no-such-model", offline=True)

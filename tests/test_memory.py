"""The memory plan: bytes per device worked out by hand, model shapes counted against the built
models, and `srft plan` against the README's walk-through of the seed's template."""

import re
import sys
from pathlib import Path

import pytest
import yaml

from srft.cli import main
from srft.config import LoraSettings, WorldConfig, validate_config
from srft.errors import SrftError
from srft.memory import (
    GB,
    Layout,
    activation_bytes,
    frozen_bytes,
    lora_parameters,
    plan_memory,
    trained_bytes,
)
from srft.memory_plan import check_fits, config_shapes, device_memory, fit_message
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
        ("deepspeed", 3, True, 2e9),  # only the models that train are partitioned
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


def test_critic_free_rl_has_no_value_model():
    config = small_config(rl_training={"algorithm": "GRPO", "batch_size": 8, "group_size": 2})
    rl = plan_memory(config, SMALL, SMALL).stages[-1]
    assert rl.value_model == 0
    assert rl.total == pytest.approx(20e9 + 12_549_120)  # the ddp figures less the value head


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


# --- srft.memory_plan: the shapes of a config, the device's memory, the message, check_fits


def test_the_config_key_and_the_option_are_named_when_a_model_cannot_be_read():
    config = validate_config({"model": {"base_model": "srft-tests/no-such-model"}})
    with pytest.raises(SrftError, match="^model.base_model: .* pass --params N, e.g. --params 7B$"):
        config_shapes(config, offline=True)


def test_check_fits_stops_a_run_that_does_not_fit():
    config = validate_config({"compute": {"device": "cpu"}})  # the world's model
    check_fits(config, device_memory_bytes=100 * GB)
    with pytest.raises(SrftError, match=r"^compute\.num_devices: the SFT stage needs"):
        check_fits(config, device_memory_bytes=1000)  # nothing fits in 1000 bytes


def test_check_fits_returns_when_the_size_or_the_memory_is_unknown():
    unknown = validate_config({"model": {"base_model": "srft-tests/no-such-model"}})
    check_fits(unknown, device_memory_bytes=1000)
    cuda = validate_config({"compute": {"device": "cuda"}})
    if device_memory(cuda.compute)[0] is None:
        check_fits(cuda)  # CUDA asked for and not seen: memory unknown


def test_the_cpus_memory_is_this_machines_ram_over_the_processes():
    one = device_memory(validate_config({"compute": {"device": "cpu"}}).compute)[0]
    four = validate_config({"compute": {"device": "cpu", "num_devices": 4}})
    assert device_memory(four.compute)[0] == pytest.approx(one / 4)


def test_the_message_names_the_first_key_whose_change_fits():
    config = small_config()  # ddp: the RL stage needs 20.01 GB
    message = fit_message(config, SMALL, SMALL, 15 * GB)
    # the policy, then the frozen reference and reward model (2 + 2 GB, whole everywhere):
    # fsdp: 1 + 1 + 2 + 4 GB; ZeRO-2: 2 + 0.5 + 3 + 4; ZeRO-3: 0.5 + 0.5 + 3 + 4
    assert message == (
        "compute.strategy: the RL stage needs 20.0 GB per device under ddp, each device has "
        "15.0 GB; fsdp needs 8.0 GB, deepspeed with zero_stage 2 needs 9.5 GB, "
        "deepspeed with zero_stage 3 needs 8.0 GB"
    )
    sharded = small_config(compute={"strategy": "deepspeed", "zero_stage": 2})
    assert fit_message(sharded, SMALL, SMALL, 8.5 * GB).startswith("compute.strategy: ")  # fsdp
    # ZeRO-2's offload moves its optimizer states, 3 GB, to the host
    assert fit_message(sharded, SMALL, SMALL, 7.5 * GB) == (
        "compute.cpu_offload: the RL stage needs 9.5 GB per device under deepspeed with "
        "zero_stage 2, each device has 7.5 GB; deepspeed with zero_stage 2 and cpu_offload "
        "needs 6.5 GB"
    )
    assert fit_message(config, SMALL, SMALL, 25 * GB) is None


def test_the_message_offers_only_what_srft_run_takes():
    # srft run shards the whole model under fsdp and ZeRO-3, which LoRA's merge needs whole
    lora = fit_message(small_config(model={"lora": {"r": 4}}), SMALL, SMALL, 3 * GB)
    assert "fsdp" not in lora and "zero_stage 3" not in lora, lora
    assert "deepspeed with zero_stage 2 and cpu_offload" in lora
    # and shards over several devices only
    one = small_config(compute={"num_devices": 1}, sft={"batch_size": 2})
    assert fit_message(one, SMALL, SMALL, 15 * GB) == (
        "model.lora: the RL stage needs 20.1 GB per device under ddp, each device has 15.0 GB; "
        "LoRA (model.lora: {r: 8}) needs 4.1 GB"
    )


def test_the_message_combines_the_changes_when_no_one_change_fits():
    # sequences of 6000 tokens: SFT's activations outgrow any one change; fsdp with offload
    # leaves the activations of one sequence per device and little else
    long = small_config(data={"max_prompt_length": 3000, "max_response_length": 3000})
    message = fit_message(long, SMALL, SMALL, 10 * GB)
    assert message.startswith("compute.strategy: the SFT stage needs 123.1 GB per device under")
    assert message.endswith(
        "no one change fits, fsdp with cpu_offload, gradient_checkpointing, sft.batch_size 4 "
        "(one per device) together need 8.5 GB"
    )
    hopeless = fit_message(small_config(), SMALL, SMALL, 0.1 * GB)
    assert hopeless.startswith("compute.num_devices: ")
    assert hopeless.endswith("use more devices, devices with more memory or a smaller model")


# --- srft plan on the seed's template, against the README's arithmetic


def seed_config(tmp_path: Path) -> Path:
    """The README's seed.yaml: the seed's template with its per-process batch sizes made global."""
    block = re.search(r"```yaml\n# seed.yaml\n(.*?)```", README.read_text(), re.S)
    path = tmp_path / "seed.yaml"
    path.write_text(block[1], encoding="utf-8")
    assert yaml.safe_load(block[1])["compute"]["num_devices"] == 8
    return path


def plan(args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["srft", "plan", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    captured = capsys.readouterr()
    return stop.value.code or 0, captured.out, captured.err


def totals(output: str) -> dict[str, float]:
    """Stage name -> the total it prints, GB."""
    lines = output.splitlines()
    header = next(line for line in lines if line.strip().startswith("SFT"))
    stages = re.split(r"\s{2,}", header.strip())
    total = next(line for line in lines if line.startswith("total")).split()[1:]
    return {stage: float(value) for stage, value in zip(stages, total, strict=True)}


def row(output: str, name: str) -> list[str]:
    return next(line for line in output.splitlines() if line.startswith(name))[len(name) :].split()


SEED = ["--params", "6.74e9", "--device-memory-gb", "80"]
# The README's columns and the overrides that give them.
COLUMNS = {
    "ddp": [],
    "fsdp": ["--set", "compute.strategy=fsdp"],
    "deepspeed, zero_stage 3": [
        "--set",
        "compute.strategy=deepspeed",
        "--set",
        "compute.zero_stage=3",
    ],
    "ddp with LoRA": ["--set", "model.lora={r: 8}"],
}


def readme_stage_table() -> dict[str, dict[str, float]]:
    """Column -> stage -> GB: the last figure of each cell of the README's table of stages."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Memory plan") : text.index("## Configuration")]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    start = next(i for i, line in enumerate(lines) if line.startswith("| stage |"))
    columns = [c.strip() for c in lines[start].strip("|").split("|")][1:]
    table: dict[str, dict[str, float]] = {c: {} for c in columns}
    for line in lines[start + 2 : start + 5]:
        stage, *cells = [c.strip() for c in line.strip("|").split("|")]
        for column, cell in zip(columns, cells, strict=True):
            table[column][stage] = float(cell.split("=")[-1])
    return table


def test_the_readme_walks_through_every_column():
    table = readme_stage_table()
    assert set(table) == set(COLUMNS)
    assert all(set(stages) == {"SFT", "reward model", "RL"} for stages in table.values())


@pytest.mark.parametrize("column", list(COLUMNS))
def test_srft_plan_prints_the_readmes_figures(tmp_path, monkeypatch, capsys, column):
    _, out, _ = plan([str(seed_config(tmp_path)), *SEED, *COLUMNS[column]], monkeypatch, capsys)
    printed = totals(out)
    for stage, by_hand in readme_stage_table()[column].items():
        assert printed[stage] == pytest.approx(by_hand, rel=0.15), (column, stage)


def test_ddp_does_not_fit_and_names_the_strategy(tmp_path, monkeypatch, capsys):
    code, out, err = plan([str(seed_config(tmp_path)), *SEED], monkeypatch, capsys)
    assert code == 2
    assert "does not fit: the RL stage's 136.0 GB per device is the peak" in out
    assert "shape assumed: hidden 4096, 32 layers, 32 heads" in out
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(
        "error: compute.strategy: the RL stage needs 136.0 GB per device under ddp, "
        "each device has 80.0 GB; fsdp needs 41.6 GB"
    )
    assert err.strip() in README.read_text(encoding="utf-8")


def test_fsdp_fits(tmp_path, monkeypatch, capsys):
    code, out, err = plan(
        [str(seed_config(tmp_path)), *SEED, *COLUMNS["fsdp"]], monkeypatch, capsys
    )
    assert (code, err) == (0, "")
    assert "fits: the RL stage's 41.6 GB per device is the peak" in out
    assert "strategy: fsdp  precision: fp16  LoRA: off  devices: 8" in out


def test_lora_lowers_the_figure_and_drops_the_reference(tmp_path, monkeypatch, capsys):
    config = str(seed_config(tmp_path))
    _, full, _ = plan([config, *SEED], monkeypatch, capsys)
    code, lora, _ = plan([config, *SEED, *COLUMNS["ddp with LoRA"]], monkeypatch, capsys)
    assert code == 0
    assert totals(lora)["RL"] < totals(full)["RL"] / 4
    assert row(full, "reference")[-1] == "13.48" and row(lora, "reference")[-1] == "-"


def test_the_strategy_changes_the_figures(tmp_path, monkeypatch, capsys):
    config = str(seed_config(tmp_path))
    found = {
        column: totals(plan([config, *SEED, *COLUMNS[column]], monkeypatch, capsys)[1])["RL"]
        for column in ("ddp", "fsdp", "deepspeed, zero_stage 3")
    }
    assert found["ddp"] > max(found["fsdp"], found["deepspeed, zero_stage 3"])


def test_offload_shows_host_memory(tmp_path, monkeypatch, capsys):
    args = [*COLUMNS["fsdp"], "--set", "compute.cpu_offload=true"]
    _, out, _ = plan([str(seed_config(tmp_path)), *SEED, *args], monkeypatch, capsys)
    assert row(out, "host (offloaded)")[-1] == "13.48"  # 16 B x 6.74e9 / 8
    assert row(out, "optimizer states")[-1] == "-"


def test_a_hub_model_without_params_says_to_pass_them(tmp_path, monkeypatch, capsys):
    config = tmp_path / "hub.yaml"
    config.write_text("model: {base_model: srft-tests/no-such-model}\n", encoding="utf-8")
    import huggingface_hub.constants

    # offline: the first request fails at once rather than after the Hub client's retries
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    code, _, err = plan([str(config), "--device-memory-gb", "80"], monkeypatch, capsys)
    assert code == 2
    assert err.startswith("error: model.base_model: srft-tests/no-such-model: cannot read")
    assert err.strip().endswith("pass --params N, e.g. --params 7B")

import importlib.util
from pathlib import Path

import pytest
import yaml

from srft.config import Benchmark, SrftConfig, load_config, validate_config
from srft.errors import ConfigError
from srft.template import config_table, render_template

# Every key of the seed's srf_config.yaml, which `srft init` must keep with its name.
SEED_TEMPLATE_KEYS = [
    "model.base_model",
    "model.sft_checkpoint",
    "model.reward_model_type",
    "data.train_file",
    "data.validation_file",
    "data.max_prompt_length",
    "data.max_response_length",
    "reward_training.learning_rate",
    "reward_training.batch_size",
    "reward_training.max_epochs",
    "reward_training.loss_function",
    "reward_training.optimizer",
    "reward_training.weight_decay",
    "reward_training.warmup_ratio",
    "rl_training.algorithm",
    "rl_training.learning_rate",
    "rl_training.kl_penalty",
    "rl_training.entropy_bonus",
    "rl_training.reward_scale",
    "rl_training.batch_size",
    "rl_training.mini_batch_size",
    "rl_training.gradient_accumulation_steps",
    "rl_training.max_steps",
    "rl_training.ppo_epochs",
    "rl_training.clip_range",
    "constraints.kl_target",
    "constraints.entropy_min",
    "constraints.entropy_max",
    "constraints.reward_accuracy_target",
    "compute.fp16",
    "compute.device",
    "compute.num_devices",
    "compute.gradient_checkpointing",
    "logging.wandb_project",
    "logging.wandb_run_name",
    "logging.output_dir",
    "logging.log_interval",
    "logging.save_interval",
]


def write(tmp_path: Path, text: str, name: str = "srf_config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def fault(path: Path | None = None, overrides: list[str] | None = None) -> str:
    """The one-line ConfigError message `load_config` raises."""
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- valid configs ---------------------------------------------------------------------------


def test_defaults_validate():
    config = validate_config({})
    assert config == SrftConfig()
    assert config.uses_world
    assert config.rl_training.algorithm == "PPO"
    assert config.constraints.entropy_min < config.constraints.entropy_max
    assert config.rl_training.mini_batch_size <= config.rl_training.batch_size


def test_no_file_gives_defaults():
    assert load_config(None) == SrftConfig()


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == SrftConfig()


def test_comment_only_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "# nothing set yet\n")) == SrftConfig()


def test_file_values_override_defaults(tmp_path):
    path = write(
        tmp_path,
        "seed: 7\n"
        "rl_training:\n"
        "  algorithm: A2C\n"
        "  batch_size: 32\n"
        "  mini_batch_size: 8\n"
        "constraints:\n"
        "  entropy_min: 0.2\n"
        "  entropy_max: 1.5\n",
    )
    config = load_config(path)
    assert config.seed == 7
    assert config.rl_training.algorithm == "A2C"
    assert config.rl_training.batch_size == 32
    assert config.rl_training.mini_batch_size == 8
    assert (config.constraints.entropy_min, config.constraints.entropy_max) == (0.2, 1.5)
    # Keys left out keep their defaults.
    assert config.rl_training.learning_rate == SrftConfig().rl_training.learning_rate


def test_scientific_notation_without_a_dot(tmp_path):
    # PyYAML (YAML 1.1) reads `3e-5` as the string "3e-5"; the schema must still take it.
    config = load_config(write(tmp_path, "rl_training:\n  learning_rate: 3e-5\n"))
    assert config.rl_training.learning_rate == pytest.approx(3e-5)


def test_existing_input_file_is_accepted(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    config = load_config(write(tmp_path, f"data:\n  train_file: {pairs}\n"))
    assert config.data.train_file == str(pairs)


# --- faults in the file ----------------------------------------------------------------------


def test_unknown_section(tmp_path):
    path = write(tmp_path, "rl_trainin:\n  batch_size: 8\n")
    assert fault(path) == f"{path}: rl_trainin: unknown key"


def test_unknown_key_in_a_section(tmp_path):
    path = write(tmp_path, "rl_training:\n  lr: 0.001\n")
    assert fault(path) == f"{path}: rl_training.lr: unknown key"


def test_wrong_type(tmp_path):
    path = write(tmp_path, 'rl_training:\n  batch_size: "many"\n')
    message = fault(path)
    assert message.startswith(f"{path}: rl_training.batch_size: ")
    assert "valid integer" in message
    assert message.endswith("(got 'many')")


def test_section_that_is_not_a_mapping(tmp_path):
    path = write(tmp_path, "rl_training: 5\n")
    message = fault(path)
    assert message.startswith(f"{path}: rl_training: ")
    assert message.endswith("(got 5)")


def test_negative_learning_rate(tmp_path):
    path = write(tmp_path, "rl_training:\n  learning_rate: -0.001\n")
    assert fault(path) == (
        f"{path}: rl_training.learning_rate: Input should be greater than 0 (got -0.001)"
    )


def test_accuracy_target_above_one(tmp_path):
    path = write(tmp_path, "constraints:\n  reward_accuracy_target: 70\n")
    message = fault(path)
    assert message.startswith(f"{path}: constraints.reward_accuracy_target: ")
    assert message.endswith("(got 70)")


def test_inverted_entropy_band(tmp_path):
    path = write(tmp_path, "constraints:\n  entropy_min: 2\n  entropy_max: 1\n")
    message = fault(path)
    assert message.startswith(f"{path}: constraints.entropy_min: 2")
    assert "entropy_max 1" in message
    assert "inverted" in message


def test_equal_entropy_bounds_are_an_empty_band(tmp_path):
    path = write(tmp_path, "constraints:\n  entropy_min: 1\n  entropy_max: 1\n")
    assert "constraints.entropy_min" in fault(path)


def test_held_out_shares_that_leave_nothing_to_train_on(tmp_path):
    path = write(tmp_path, "data:\n  validation_fraction: 0.5\n  test_fraction: 0.5\n")
    assert fault(path) == (
        f"{path}: data.test_fraction: 0.5 with validation_fraction 0.5 leaves nothing to train "
        "on (their sum must be under 1)"
    )


def test_mini_batch_larger_than_batch(tmp_path):
    path = write(tmp_path, "rl_training:\n  batch_size: 8\n  mini_batch_size: 16\n")
    assert fault(path) == (f"{path}: rl_training.mini_batch_size: 16 is larger than batch_size 8")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["rl_training.algorithm=GRPO", "rl_training.group_size=3"],
            "rl_training.group_size: 3 does not divide batch_size 64",
        ),
        (
            ["rl_training.algorithm=RLOO", "rl_training.value_model=separate"],
            "rl_training.value_model: RLOO has no value model",
        ),
        (["rl_training.kl_in=loss"], "rl_training.kl_in: 'loss' is for GRPO and RLOO"),
        (
            ["rl_training.algorithm=DPO", "rl_training.value_model=separate"],
            "rl_training.value_model: DPO has no value model",
        ),
        (
            ["rl_training.algorithm=DPO", "rl_training.kl_in=reward"],
            "rl_training.kl_in: is for GRPO and RLOO; DPO's KL is in its objective (beta)",
        ),
        (["rl_training.algorithm=DPO", "rl_training.beta=0"], "rl_training.beta: "),
        (
            [
                "rl_training.algorithm=GRPO",
                "rl_training.batch_size=24",
                "rl_training.mini_batch_size=8",
                "rl_training.group_size=8",
                "compute.num_devices=2",
            ],
            "rl_training.batch_size: 3 prompts of group_size 8 do not split evenly over "
            "compute.num_devices 2",
        ),
    ],
)
def test_critic_free_settings_that_cannot_work(overrides, message):
    assert message in fault(None, overrides)


def test_global_batch_that_does_not_split_over_the_processes(tmp_path):
    path = write(tmp_path, "compute:\n  num_devices: 3\n")
    assert fault(path).startswith(f"{path}: sft.batch_size: 64 does not split evenly over")


def test_fsdp_with_lora(tmp_path):
    text = "compute:\n  num_devices: 2\n  strategy: fsdp\nmodel:\n  lora: {r: 4}\n"
    assert fault(write(tmp_path, text)).endswith(
        "compute.strategy: 'fsdp' shards the whole model, and model.lora trains an adapter on a "
        "frozen one; with lora, use ddp"
    )


def test_the_sft_loss_without_demonstrations(tmp_path):
    text = "model:\n  base_model: some/model\nrl_training:\n  ptx_coef: 0.5\n"
    assert fault(write(tmp_path, text)).endswith(
        "rl_training.ptx_coef: the SFT loss trains on demonstrations; set data.sft_file"
    )
    # the embedded world brings its own
    assert (
        load_config(write(tmp_path, "rl_training:\n  ptx_coef: 0.5\n")).rl_training.ptx_coef == 0.5
    )


@pytest.mark.parametrize("tracker", ["tensorboard", "wandb", "mlflow"])
def test_a_tracker_whose_package_is_missing_is_refused_with_the_install_command(
    monkeypatch, tracker
):
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == tracker else found(name)
    )
    assert fault(None, [f"logging.report_to=[{tracker}]"]) == (
        f"config: logging.report_to: '{tracker}' needs the {tracker} package, which is not "
        f"installed: pip install {tracker}"
    )


def test_mlflow_without_its_database_client_is_refused(monkeypatch):
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "sqlalchemy" else found(name)
    )
    assert fault(None, ["logging.report_to=[mlflow]"]) == (
        "config: logging.report_to: 'mlflow' needs the sqlalchemy package, which is not "
        "installed: pip install mlflow"
    )


def test_zero3_with_lora(tmp_path):
    text = "compute:\n  num_devices: 2\n  strategy: deepspeed\n  zero_stage: 3\nmodel:\n  lora: {r: 4}\n"
    assert fault(write(tmp_path, text)).endswith(
        "compute.zero_stage: 3 partitions the weights, and model.lora merges its adapter into "
        "whole ones; with lora, use zero_stage: 2 or ddp"
    )
    load_config(write(tmp_path, text.replace("zero_stage: 3", "zero_stage: 2")))


def test_unsupported_algorithm(tmp_path):
    path = write(tmp_path, "rl_training:\n  algorithm: TRPO\n")
    message = fault(path)
    assert message.startswith(f"{path}: rl_training.algorithm: ")
    assert "'PPO', 'A2C', 'GRPO', 'RLOO' or 'DPO'" in message
    assert message.endswith("(got 'TRPO')")


def test_unknown_gate_in_gate_modes(tmp_path):
    path = write(tmp_path, "gates:\n  mode:\n    reward_acc: warn\n")
    message = fault(path)
    assert message.startswith(f"{path}: gates.mode: unknown gate 'reward_acc'")
    assert "reward_accuracy_val" in message  # the known names are listed


def test_separate_reward_model_needs_a_base(tmp_path):
    path = write(tmp_path, "model:\n  reward_model_type: separate\n")
    assert fault(path).startswith(f"{path}: model.reward_base_model: required")


def test_missing_input_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "data:\n  train_file: nope.jsonl\n")
    assert fault(path) == f"{path}: data.train_file: file not found: nope.jsonl"


def test_missing_benchmark_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "evaluation:\n  benchmarks:\n    math: math.jsonl\n")
    assert fault(path) == f"{path}: evaluation.benchmarks.math: file not found: math.jsonl"


# --- faults of the file itself ---------------------------------------------------------------


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    # Line 4 is indented one space deeper than its sibling on line 3.
    path = write(tmp_path, "seed: 1\nrl_training:\n  batch_size: 4\n   learning_rate: 1\n")
    message = fault(path)
    assert message.startswith(f"{path}:4: YAML error: ")
    assert "srf_config.yaml:4" in message


def test_yaml_python_tag_is_not_executed(tmp_path, capfd):
    marker = tmp_path / "executed"
    path = write(
        tmp_path,
        f'rl_training: !!python/object/apply:os.system ["echo hi; touch {marker}"]\n',
    )
    message = fault(path)
    assert message.startswith(f"{path}:1: YAML error: ")
    assert "python/object/apply" in message
    assert not marker.exists()
    assert "hi" not in capfd.readouterr().out


def test_top_level_list(tmp_path):
    path = write(tmp_path, "- seed\n- model\n")
    assert fault(path) == f"{path}: expected a mapping of sections, got list"


def test_top_level_scalar(tmp_path):
    path = write(tmp_path, "just some text\n")
    assert fault(path) == f"{path}: expected a mapping of sections, got str"


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert fault(path) == f"{path}: config file not found"


def test_directory_instead_of_file(tmp_path):
    assert fault(tmp_path) == f"{tmp_path}: is a directory, expected a YAML file"


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "srf_config.yaml"
    path.write_bytes("logging:\n  wandb_run_name: caf\xe9\n".encode("latin-1"))
    assert fault(path).startswith(f"{path}: not UTF-8 text")


# --- --set overrides -------------------------------------------------------------------------


def test_override_sets_a_value(tmp_path):
    path = write(tmp_path, "rl_training:\n  learning_rate: 0.001\n")
    config = load_config(path, ["rl_training.learning_rate=3e-5"])
    assert config.rl_training.learning_rate == pytest.approx(3e-5)


def test_override_without_a_file():
    config = load_config(None, ["seed=5", "world.n_sft_list=600"])
    assert config.seed == 5
    assert config.world.n_sft_list == 600


def test_override_value_is_yaml(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())  # installed
    config = load_config(
        None,
        [
            "compute.fp16=true",
            "logging.report_to=[tensorboard]",
            "gates.mode={reward_accuracy_val: warn, train_val_gap: warn}",
        ],
    )
    assert config.compute.fp16 is True
    assert config.logging.report_to == ["tensorboard"]
    assert config.gates.mode == {"reward_accuracy_val": "warn", "train_val_gap": "warn"}
    assert config.gates.mode_of("reward_accuracy_val") == "warn"
    assert config.gates.mode_of("pair_count") == "enforce"


def test_override_inside_a_mapping_field():
    config = load_config(None, ["annotation.options.noise=0.5"])
    assert config.annotation.options == {"noise": 0.5}


def test_later_override_wins():
    config = load_config(None, ["seed=1", "seed=2"])
    assert config.seed == 2


def test_override_of_an_unknown_section():
    assert fault(overrides=["rl.learning_rate=1"]) == "--set rl.learning_rate=1: unknown key 'rl'"


def test_override_of_an_unknown_key():
    assert fault(overrides=["rl_training.lr=1"]) == (
        "--set rl_training.lr=1: unknown key 'rl_training.lr'"
    )


def test_override_without_equals():
    assert fault(overrides=["rl_training.learning_rate"]) == (
        "--set rl_training.learning_rate: expected section.key=value"
    )


def test_override_without_a_key():
    assert fault(overrides=["=3"]) == "--set =3: expected section.key=value"


def test_override_with_a_bad_value_is_validated():
    message = fault(overrides=["rl_training.algorithm=TRPO"])
    assert message.startswith("config: rl_training.algorithm: ")
    assert message.endswith("(got 'TRPO')")


def test_override_below_a_scalar(tmp_path):
    path = write(tmp_path, "rl_training: 5\n")
    message = fault(path, ["rl_training.batch_size=8"])
    assert message == "--set rl_training.batch_size=8: 'rl_training' is not a section"


# --- the `srft init` template ----------------------------------------------------------------


def test_template_parses_back_to_the_defaults():
    data = yaml.safe_load(render_template())
    assert validate_config(data) == SrftConfig()


@pytest.mark.parametrize("key", SEED_TEMPLATE_KEYS)
def test_template_keeps_every_seed_key(key):
    node = yaml.safe_load(render_template())
    for part in key.split("."):
        assert isinstance(node, dict), key
        assert part in node, key
        node = node[part]


def test_template_comments_every_key():
    lines = [line for line in render_template().splitlines() if line.startswith("  ")]
    assert lines
    for line in lines:
        assert "  # " in line, line


def test_template_of_a_changed_config_round_trips():
    config = load_config(
        None,
        [
            "rl_training.learning_rate=3e-5",
            "seed=9",
            "data.score_scale=[1, 10]",
            "model.lora={r: 4, target_modules: [q_proj]}",
        ],
    )
    data = yaml.safe_load(render_template(config))
    assert validate_config(data) == config


def test_readme_config_table_is_the_schema():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert config_table() in readme


def test_pair_file_keys_take_hub_dataset_ids():
    config = load_config(None, ["data.train_file=Anthropic/hh-rlhf", "data.test_file=org/set:test"])
    assert config.data.train_file == "Anthropic/hh-rlhf"
    with pytest.raises(ConfigError, match="data.train_file: file not found: missing/pairs.jsonl"):
        load_config(None, ["data.train_file=missing/pairs.jsonl"])
    with pytest.raises(ConfigError, match="data.sft_file: file not found: org/name"):
        load_config(None, ["data.sft_file=org/name"])


# --- plugins and registered names ------------------------------------------------------------

# A user's module registering a benchmark kind and a judge.
PLUGIN = """
from srft.judges import JUDGES
from srft.scoring import WeightedCriteria
from srft.evaluation.tasks import benchmark_kind


@benchmark_kind("yes_no", fields=("statement", "label"))
def score_yes_no(model, tokenizer, items, settings):
    return 0.0


def criteria(prompt, response):
    return {"short": float(len(response.split()) <= 3)}


JUDGES.register("terse")(WeightedCriteria(criteria, {"short": 1.0}))
"""


def test_a_benchmark_given_as_a_file_keeps_its_meaning(tmp_path):
    bench = write(tmp_path, '{"prompt": "p", "answer": "a"}\n', "bench.jsonl")
    config = load_config(write(tmp_path, f"evaluation:\n  benchmarks:\n    math: {bench}\n"))
    assert config.evaluation.benchmarks["math"] == Benchmark(file=str(bench))
    assert config.evaluation.benchmark_files == {"math": str(bench)}
    # Written back as it was read: the resolved config and the fingerprints are unchanged.
    assert config.to_dict()["evaluation"]["benchmarks"] == {"math": str(bench)}


def test_a_benchmark_may_name_its_kind(tmp_path):
    bench = write(tmp_path, '{"question": "q", "answer": "#### 1"}\n', "bench.jsonl")
    path = write(
        tmp_path, f"evaluation:\n  benchmarks:\n    math: {{file: {bench}, kind: gsm8k}}\n"
    )
    config = load_config(path)
    assert config.evaluation.benchmarks["math"] == Benchmark(file=str(bench), kind="gsm8k")
    assert config.evaluation.benchmark_files == {"math": str(bench)}
    assert validate_config(yaml.safe_load(render_template(config))) == config


def test_an_unknown_key_in_a_benchmark(tmp_path):
    path = write(tmp_path, "evaluation:\n  benchmarks:\n    math: {file: m.jsonl, kin: gsm8k}\n")
    assert fault(path) == f"{path}: evaluation.benchmarks.math.kin: unknown key"


@pytest.mark.parametrize("name", ["world", "arithmetic"])
def test_srfts_judges_and_annotators_are_names(name):
    keys = ("evaluation.judge", "evaluation.judge_criteria", "annotation.callable")
    config = load_config(None, [f"{key}={name}" for key in keys])
    assert (config.evaluation.judge, config.annotation.callable) == (name, name)


def test_a_plugin_registers_a_benchmark_kind_and_a_judge(write_plugin, tmp_path):
    write_plugin("my_evals", PLUGIN)
    bench = write(tmp_path, '{"statement": "s", "label": "yes"}\n', "facts.jsonl")
    path = write(
        tmp_path,
        "plugins: [my_evals]\n"
        "evaluation:\n"
        "  judge: terse\n"
        "  judge_criteria: terse\n"
        f"  benchmarks:\n    facts: {{file: {bench}, kind: yes_no}}\n",
    )
    config = load_config(path)
    assert config.plugins == ["my_evals"]
    assert config.evaluation.benchmarks["facts"].kind == "yes_no"
    assert config.evaluation.judge == "terse"


def test_a_plugin_that_cannot_be_imported(tmp_path, write_plugin):
    assert fault(write(tmp_path, "plugins: [no_such_module]\n")) == (
        f"{tmp_path / 'srf_config.yaml'}: plugins: cannot import 'no_such_module' "
        "(ModuleNotFoundError: No module named 'no_such_module')"
    )
    write_plugin("broken", "raise RuntimeError('no API key\\nset one')\n")
    assert fault(None, ["plugins=[broken]"]) == (
        "config: plugins: cannot import 'broken' (RuntimeError: no API key)"
    )


def test_a_plugin_taking_a_built_in_name(write_plugin):
    write_plugin(
        "clash",
        "from srft.judges import JUDGES\nJUDGES.register('world')(object())\n",
    )
    assert fault(None, ["plugins=[clash]"]) == (
        "config: plugins: cannot import 'clash' "
        "(SrftError: judge 'world' is already registered; choose another name)"
    )

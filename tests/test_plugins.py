"""Names of benchmark kinds, judges and annotators in a config must be registered."""

import pytest

from srft.config import load_config
from srft.errors import ConfigError
from srft.plugins import check_registered_names
from tests.test_config import PLUGIN, write


def fault(path=None, overrides=None) -> str:
    """The one-line ConfigError message of checking the config's names."""
    source = str(path) if path else "config"
    with pytest.raises(ConfigError) as caught:
        check_registered_names(load_config(path, overrides), source)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_an_unknown_benchmark_kind(tmp_path):
    bench = write(tmp_path, '{"prompt": "p", "answer": "a"}\n', "bench.jsonl")
    path = write(
        tmp_path, f"evaluation:\n  benchmarks:\n    math: {{file: {bench}, kind: gsm9k}}\n"
    )
    assert fault(path) == (
        f"{path}: evaluation.benchmarks.math.kind: unknown benchmark kind 'gsm9k' "
        "(known: exact_match, gsm8k, humaneval, mmlu, multiple_choice)"
    )


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("evaluation.judge", "unknown judge 'wrld' (known: arithmetic, world)"),
        ("evaluation.judge_criteria", "unknown judge 'wrld' (known: arithmetic, world)"),
        ("annotation.callable", "unknown annotator 'wrld' (known: arithmetic, world)"),
    ],
)
def test_an_unknown_judge_or_annotator(key, message):
    assert fault(None, [f"{key}=wrld"]) == f"config: {key}: {message}"


def test_a_name_a_plugin_would_register_needs_the_plugin(write_plugin):
    write_plugin("my_evals", PLUGIN)
    message = fault(None, ["evaluation.judge=terse"])
    assert message == "config: evaluation.judge: unknown judge 'terse' (known: arithmetic, world)"


def test_the_plugins_names_pass(write_plugin, tmp_path):
    write_plugin("my_evals", PLUGIN)
    bench = write(tmp_path, '{"statement": "s", "label": "yes"}\n', "facts.jsonl")
    config = load_config(
        None,
        [
            "plugins=[my_evals]",
            "evaluation.judge=terse",
            "evaluation.judge_criteria=terse",
            f"evaluation.benchmarks={{facts: {{file: {bench}, kind: yes_no}}}}",
        ],
    )
    check_registered_names(config, "config")


def test_module_function_values_are_not_names():
    check_registered_names(load_config(None, ["evaluation.judge=no.such:module"]), "config")

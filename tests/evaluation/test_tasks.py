import json
import math
from pathlib import Path

import pytest
import torch

import srft.evaluation.tasks as tasks
from srft.config import Benchmark, validate_config
from srft.errors import DataError
from srft.evaluation.benchmarks import benchmark_texts, read_benchmark, run_benchmarks
from srft.evaluation.tasks import (
    Settings,
    continuation_logprobs,
    cut_completion,
    final_number,
    gsm8k_answer,
)
from srft.world.model import build_base_model
from srft.world.tokenizer import build_tokenizer

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not DATA.exists(), reason="shared/data is not beside the repo")


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("She makes 9 * 2 = $18 every day. The answer is 18.", 18.0),
        ("total: 1,234 apples", 1234.0),
        ("It is -3.5 degrees", -3.5),
        ("no digits here", None),
    ],
)
def test_final_number(text, number):
    assert final_number(text) == number


def test_gsm8k_answer_is_after_the_hashes():
    assert gsm8k_answer("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n#### 1,018") == 1018.0


def test_a_code_completion_stops_where_the_function_ends():
    text = "    return a + b\n\n\ndef unrelated():\n    pass\n"
    assert cut_completion(text) == "    return a + b\n\n"
    assert cut_completion("    return 1\n") == "    return 1\n"


@needs_shared
@pytest.mark.parametrize(
    ("path", "kind", "count"),
    [
        ("gsm8k/test_100.jsonl", "gsm8k", 100),
        ("mmlu/dev_sample.jsonl", "mmlu", 100),
        ("humaneval/humaneval_first40.jsonl", "humaneval", 40),
    ],
)
def test_benchmark_kinds_are_told_by_their_fields(path, kind, count):
    found, items = read_benchmark(str(DATA / path))
    assert (found.name, len(items)) == (kind, count)
    assert len(benchmark_texts(str(DATA / path))) == count


def test_a_row_of_no_known_kind_is_named(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text('{"prompt": "p", "answer": "a"}\n{"q": 1}\n')
    with pytest.raises(DataError, match=r"bench.jsonl:2: not a benchmark row \(fields: q\)"):
        read_benchmark(str(path))


def test_gsm8k_scores_the_final_number(monkeypatch, tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    path.write_text(
        '{"question": "2+2?", "answer": "2+2=4\\n#### 4"}\n'
        '{"question": "3*3?", "answer": "#### 9"}\n'
    )
    outputs = {"Question: 2+2?\nAnswer:": "so it is 4.", "Question: 3*3?\nAnswer:": "6"}
    monkeypatch.setattr(
        tasks, "generate", lambda model, tok, prompts, **kw: [[outputs[p]] for p in prompts]
    )
    assert run_benchmarks(None, None, {"gsm8k": str(path)}, 64, 16) == {"gsm8k": 0.5}


def test_humaneval_is_left_out_without_the_opt_in(tmp_path):
    path = tmp_path / "he.jsonl"
    path.write_text('{"task_id": "t", "prompt": "def f():\\n", "test": "", "entry_point": "f"}\n')
    assert run_benchmarks(None, None, {"humaneval": str(path)}, 64, 16) == {}


def test_continuation_logprobs_sum_the_tokens_log_probabilities():
    tokenizer = build_tokenizer()
    model = build_base_model(tokenizer, hidden_size=16, num_layers=1, num_heads=2)
    context, continuation = "kim says", " apple pear"
    got = continuation_logprobs(model, tokenizer, context, [continuation, " drum"], 16)
    prefix = tokenizer(context)["input_ids"]
    tail = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    logits = model(input_ids=torch.tensor([prefix + tail])).logits[0]
    logp = torch.log_softmax(logits, -1)
    expected = sum(logp[len(prefix) - 1 + i, t].item() for i, t in enumerate(tail))
    assert got[0] == pytest.approx(expected, abs=1e-5)
    assert math.isfinite(got[1])


def test_mmlu_picks_the_most_likely_letter(monkeypatch):
    items = [{"question": "q", "choices": ["w", "x", "y", "z"], "answer": 2}] * 2
    monkeypatch.setattr(tasks, "continuation_logprobs", lambda *a: [-3.0, -2.0, -0.5, -1.0])
    assert tasks._score_mmlu(None, None, items, Settings(64, 16)) == 1.0


def test_multiple_choice_picks_the_most_likely_continuation(monkeypatch):
    items = [
        {"prompt": "The capital of France is", "choices": ["Rome", "Paris"], "answer": 1},
        {"prompt": "The capital of Italy is", "choices": ["Rome", "Paris"], "answer": 0},
    ]
    seen = []

    def logprobs(model, tokenizer, context, continuations, max_prompt_length):
        seen.append((context, continuations))
        return [-1.0, -0.2]  # always "Paris"

    monkeypatch.setattr(tasks, "continuation_logprobs", logprobs)
    assert tasks._score_choice(None, None, items, Settings(64, 16)) == 0.5
    assert seen[0] == ("The capital of France is", ["Rome", "Paris"])
    assert tasks.kind_of(items[0]).name == "multiple_choice"


@needs_shared
def test_gsm8k_reference_answers_score_every_item(monkeypatch):
    source = str(DATA / "gsm8k" / "test_100.jsonl")
    _, items = read_benchmark(source)
    reference = {tasks.gsm8k_prompt(i["question"]): i["answer"] for i in items}
    monkeypatch.setattr(
        tasks, "generate", lambda model, tok, prompts, **kw: [[reference[p]] for p in prompts]
    )
    assert run_benchmarks(None, None, {"gsm8k": source}, 64, 16) == {"gsm8k": 1.0}


@needs_shared
@pytest.mark.parametrize(("letter", "share"), [(0, 0.21), (1, 0.28), (2, 0.22), (3, 0.29)])
def test_a_constant_mmlu_answer_scores_its_letters_share(monkeypatch, letter, share):
    # The slice's answers are A 21, B 28, C 22, D 29 of 100: chance, letter by letter.
    constant = [0.0 if i == letter else -1.0 for i in range(4)]
    monkeypatch.setattr(tasks, "continuation_logprobs", lambda *a: constant)
    source = str(DATA / "mmlu" / "dev_sample.jsonl")
    assert run_benchmarks(None, None, {"mmlu": source}, 64, 16) == {"mmlu": share}


# --- benchmark kinds by name -----------------------------------------------------------------

# A user's module: a kind scored by the model's log-likelihood of the answer against a distractor.
LIKELIER_PLUGIN = """
from srft.evaluation.tasks import benchmark_kind, continuation_logprobs


@benchmark_kind("likelier", fields=("context", "answer", "distractor"))
def score_likelier(model, tokenizer, items, settings):
    hits = 0
    for item in items:
        answer, distractor = continuation_logprobs(
            model, tokenizer, item["context"], [item["answer"], item["distractor"]],
            settings.max_prompt_length,
        )
        hits += answer > distractor
    return hits / len(items)
"""


def write_rows(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def test_srfts_kinds_are_registered_by_name():
    assert set(tasks.KINDS.names()) >= {
        "exact_match",
        "gsm8k",
        "mmlu",
        "multiple_choice",
        "humaneval",
    }


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        (("question", "prompt", "answer"), "gsm8k"),
        (("question", "prompt", "choices", "answer"), "mmlu"),
        (("task_id", "prompt", "test", "entry_point", "answer"), "humaneval"),
    ],
)
def test_rows_that_fit_several_kinds_keep_their_kind(fields, kind):
    assert tasks.kind_of(dict.fromkeys(fields, "x")).name == kind


def test_a_plugins_kind_named_in_the_config_scores_on_a_model(write_plugin, tmp_path):
    write_plugin("likelier_plugin", LIKELIER_PLUGIN)
    rows = [
        {"context": "kim says", "answer": " apple pear", "distractor": " drum"},
        {"context": "name three fruits", "answer": " apple", "distractor": " red"},
    ]
    source = write_rows(tmp_path / "likelier.jsonl", rows)
    config = validate_config(
        {
            "plugins": ["likelier_plugin"],
            "evaluation": {"benchmarks": {"fruit": {"file": source, "kind": "likelier"}}},
        }
    )
    tokenizer = build_tokenizer()
    model = build_base_model(tokenizer, hidden_size=16, num_layers=1, num_heads=2)

    scores = run_benchmarks(model, tokenizer, config.evaluation.benchmarks, 16, 4)

    def likelier(row):
        answer, distractor = continuation_logprobs(
            model, tokenizer, row["context"], [row["answer"], row["distractor"]], 16
        )
        return answer > distractor

    assert [likelier(row) for row in rows] == [False, True]  # the tiny model's own choices
    assert scores == {"fruit": 0.5}
    assert benchmark_texts(config.evaluation.benchmarks["fruit"])[0] == "kim says  apple pear  drum"


def test_a_named_kind_takes_precedence_over_the_rows_fields(write_plugin, tmp_path, monkeypatch):
    write_plugin(
        "answer_length",
        """
        from srft.evaluation.tasks import benchmark_kind

        @benchmark_kind("answer_length", text=lambda item: item["answer"])
        def score(model, tokenizer, items, settings):
            return sum(len(i["answer"]) for i in items) / len(items)
        """,
    )
    import answer_length  # noqa: F401  registers the kind, as `plugins` would

    source = write_rows(tmp_path / "qa.jsonl", [{"prompt": "p", "answer": "four"}])
    monkeypatch.setattr(tasks, "generate", lambda model, tok, prompts, **kw: [["four"]])
    named = Benchmark(file=source, kind="answer_length")
    assert run_benchmarks(None, None, {"qa": named}, 16, 4) == {"qa": 4.0}
    assert run_benchmarks(None, None, {"qa": source}, 16, 4) == {"qa": 1.0}  # exact_match
    assert benchmark_texts(named) == ["four"]
    # A kind without fields is used only by name: it never claims rows of no known kind.
    assert tasks.kind_of({"q": 1}) is None


def test_a_row_without_the_named_kinds_fields_is_named(tmp_path):
    source = write_rows(tmp_path / "math.jsonl", [{"question": "1+1?", "answer": "#### 2"}, {}])
    with pytest.raises(DataError, match=r"math.jsonl:2: a gsm8k row has question, answer"):
        read_benchmark(source, "gsm8k")

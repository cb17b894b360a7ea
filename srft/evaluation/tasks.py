"""Benchmark kinds: each is data (JSONL rows of a known shape) plus a scorer, registered by name
in `KINDS`. A config names a benchmark's kind, or leaves it to be told by the rows' fields.
srft's own kinds, registered below as a user's module registers its own:

- `exact_match`: `{"prompt", "answer"}`, greedy output equal to the answer (the world's tasks).
- `gsm8k`: `{"question", "answer"}` with the final answer after `####`; greedy output, the last
  number in it compared with the final answer.
- `mmlu`: `{"question", "choices": [4], "answer": 0-3}`; the choice whose letter is most likely
  after the question (log-likelihood, no generation).
- `multiple_choice`: `{"prompt", "choices", "answer": index}`; the choice most likely as the
  continuation of the prompt (summed log-likelihood, as lm-evaluation-harness's `acc`).
- `humaneval`: `{"task_id", "prompt", "test", "entry_point"}`; pass@1 of the greedy completion,
  run in the sandbox only when `execute_code` is on.

A user's kind, in a module listed under the config's `plugins`:

    @benchmark_kind("yes_no", fields=("statement", "label"))
    def score_yes_no(model, tokenizer, items, settings) -> float: ...
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from srft.data.sft import encode_prompt
from srft.evaluation.sandbox import run_program
from srft.models.generation import generate
from srft.models.reward import pad_batch
from srft.registry import Registry

LETTERS = "ABCD"
CODE_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@dataclass(frozen=True)
class Settings:
    max_prompt_length: int
    max_new_tokens: int
    execute_code: bool = False


Scorer = Callable[[PreTrainedModel, PreTrainedTokenizerBase, list[dict[str, Any]], Settings], float]


@dataclass(frozen=True)
class Kind:
    name: str
    fields: tuple[str, ...]  # every row has them; () = used only when a config names the kind
    score: Scorer
    text: Callable[[dict[str, Any]], str]  # an item as text, for decontamination


KINDS: Registry[Kind] = Registry("benchmark kind")


def benchmark_kind(
    name: str,
    fields: tuple[str, ...] = (),
    text: Callable[[dict[str, Any]], str] | None = None,
) -> Callable[[Scorer], Scorer]:
    """A decorator registering its scorer as the benchmark kind `name`. `fields` are those every
    row has, by which rows are recognised when a config names no kind; `text` gives an item as
    text for decontamination (by default its fields' values joined by spaces)."""

    def register(score: Scorer) -> Scorer:
        as_text = text or (lambda item: " ".join(str(item[f]) for f in fields))
        KINDS.register(name)(Kind(name, fields, score, as_text))
        return score

    return register


def kind_of(row: dict[str, Any]) -> Kind | None:
    """The benchmark kind whose fields a row has, or None: of several, the one with the most
    fields, then the first registered. A kind without fields is never recognised."""
    found = [k for k in KINDS.values() if k.fields and all(f in row for f in k.fields)]
    return max(found, key=lambda k: len(k.fields), default=None)


def exact_match(predictions: list[str], answers: list[str]) -> float:
    """Fraction of predictions equal to their answer after stripping whitespace."""
    if not answers:
        return 0.0
    hits = sum(p.strip() == a.strip() for p, a in zip(predictions, answers, strict=True))
    return hits / len(answers)


def final_number(text: str) -> float | None:
    """The last number in `text` (commas as thousands separators), or None."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def gsm8k_answer(answer: str) -> float | None:
    """GSM8K's final answer: the number after '####'."""
    _, _, final = answer.rpartition("####")
    return final_number(final)


def cut_completion(text: str) -> str:
    """A code completion up to the first line that leaves the function body."""
    cut = min((i for stop in CODE_STOPS if (i := text.find(stop)) >= 0), default=len(text))
    return text[:cut]


def _greedy(model, tokenizer, prompts: list[str], settings: Settings, strip: bool = True):
    outputs = generate(
        model,
        tokenizer,
        prompts,
        max_prompt_length=settings.max_prompt_length,
        max_new_tokens=settings.max_new_tokens,
        greedy=True,
        strip=strip,
    )
    return [o[0] for o in outputs]


def gsm8k_prompt(question: str) -> str:
    return f"Question: {question}\nAnswer:"


# Registered in this order: of two kinds with as many fields, the first registered is
# recognised (a row with question, prompt and answer is GSM8K's, as it always was).
@benchmark_kind("gsm8k", ("question", "answer"), text=lambda i: f"{i['question']} {i['answer']}")
def _score_gsm8k(model, tokenizer, items, settings) -> float:
    outputs = _greedy(model, tokenizer, [gsm8k_prompt(i["question"]) for i in items], settings)
    hits = 0
    for output, item in zip(outputs, items, strict=True):
        got, want = final_number(output), gsm8k_answer(item["answer"])
        hits += got is not None and want is not None and abs(got - want) < 1e-6
    return hits / len(items)


@benchmark_kind("exact_match", ("prompt", "answer"), text=lambda i: f"{i['prompt']} {i['answer']}")
def _score_exact(model, tokenizer, items, settings) -> float:
    outputs = _greedy(model, tokenizer, [i["prompt"] for i in items], settings)
    return exact_match(outputs, [i["answer"] for i in items])


def mmlu_prompt(item: dict[str, Any]) -> str:
    options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(item["choices"]))
    return f"{item['question']}\n{options}\nAnswer:"


@torch.no_grad()
def continuation_logprobs(
    model, tokenizer, context: str, continuations: list[str], max_prompt_length: int
) -> list[float]:
    """Sum of log-probabilities of each continuation's tokens after `context`."""
    model.eval()
    device = next(model.parameters()).device
    prefix = encode_prompt(tokenizer, context, max_prompt_length)
    tails = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batch = pad_batch([prefix + tail for tail in tails], pad)
    logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    scores = []
    for row, tail in enumerate(tails):
        start = len(prefix)
        positions = torch.arange(start - 1, start - 1 + len(tail), device=device)
        tokens = torch.tensor(tail, device=device)
        scores.append(logp[row, positions, tokens].sum().item())
    return scores


def _most_likely(model, tokenizer, context: str, continuations: list[str], settings) -> int:
    scores = continuation_logprobs(
        model, tokenizer, context, continuations, settings.max_prompt_length
    )
    return max(range(len(scores)), key=scores.__getitem__)


@benchmark_kind(
    "mmlu",
    ("question", "choices", "answer"),
    text=lambda i: f"{i['question']} {' '.join(map(str, i['choices']))}",
)
def _score_mmlu(model, tokenizer, items, settings) -> float:
    hits = 0
    for item in items:
        letters = [f" {LETTERS[i]}" for i in range(len(item["choices"]))]
        hits += _most_likely(model, tokenizer, mmlu_prompt(item), letters, settings) == int(
            item["answer"]
        )
    return hits / len(items)


@benchmark_kind(
    "multiple_choice",
    ("prompt", "choices", "answer"),
    text=lambda i: f"{i['prompt']} {' '.join(map(str, i['choices']))}",
)
def _score_choice(model, tokenizer, items, settings) -> float:
    hits = 0
    for item in items:
        choices = [str(c) for c in item["choices"]]
        hits += _most_likely(model, tokenizer, item["prompt"], choices, settings) == int(
            item["answer"]
        )
    return hits / len(items)


def humaneval_program(item: dict[str, Any], completion: str) -> str:
    return f"{item['prompt']}{completion}\n\n{item['test']}\n\ncheck({item['entry_point']})\n"


@benchmark_kind(
    "humaneval",
    ("task_id", "prompt", "test", "entry_point"),
    text=lambda i: f"{i['prompt']} {i.get('canonical_solution', '')}",
)
def _score_humaneval(model, tokenizer, items, settings) -> float:
    if not settings.execute_code:
        return float("nan")  # reported as not run: running model code needs the opt-in
    outputs = _greedy(model, tokenizer, [i["prompt"] for i in items], settings, strip=False)
    passed = sum(
        run_program(humaneval_program(item, cut_completion(output))).passed
        for item, output in zip(items, outputs, strict=True)
    )
    return passed / len(items)

"""Capability benchmarks: JSONL items {prompt, answer}, scored by exact match of greedy output."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from srft.data.sft import read_prompt_rows
from srft.models.generation import generate


def exact_match(predictions: list[str], answers: list[str]) -> float:
    """Fraction of predictions equal to their answer after stripping whitespace."""
    if not answers:
        return 0.0
    hits = sum(p.strip() == a.strip() for p, a in zip(predictions, answers, strict=True))
    return hits / len(answers)


def run_benchmarks(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    benchmarks: dict[str, str],
    max_prompt_length: int,
    max_new_tokens: int,
) -> dict[str, float]:
    """Exact-match accuracy per benchmark, greedy decoding."""
    scores = {}
    for name, file in sorted(benchmarks.items()):
        items = read_prompt_rows(Path(file), ("prompt", "answer"))
        outputs = generate(
            model,
            tokenizer,
            [i["prompt"] for i in items],
            max_prompt_length=max_prompt_length,
            max_new_tokens=max_new_tokens,
            greedy=True,
        )
        scores[name] = exact_match([o[0] for o in outputs], [i["answer"] for i in items])
    return scores

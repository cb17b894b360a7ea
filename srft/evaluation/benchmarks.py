"""Capability benchmarks: named files (JSONL, parquet or Hub ids) of a kind that
`srft.evaluation.tasks` recognises by the rows' fields, scored on a model."""

from __future__ import annotations

import logging
import math
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from srft.data.pairs import row_source
from srft.errors import DataError
from srft.evaluation.tasks import Kind, Settings, kind_of

log = logging.getLogger("srft")


def read_benchmark(source: str) -> tuple[Kind, list[dict[str, Any]]]:
    """The kind and items of a benchmark file; errors name the file and line."""
    items: list[dict[str, Any]] = []
    kind: Kind | None = None
    for line, row in row_source(source, split="test"):
        if isinstance(row, str):
            raise DataError(f"{source}:{line}: {row}")
        found = kind_of(row)
        if found is None:
            fields = ", ".join(sorted(row)) or "none"
            raise DataError(
                f"{source}:{line}: not a benchmark row (fields: {fields}); expected prompt/answer, "
                "prompt/choices/answer (multiple choice), question/answer (GSM8K), "
                "question/choices/answer (MMLU) or "
                "task_id/prompt/test/entry_point (HumanEval)"
            )
        if kind is not None and found is not kind:
            raise DataError(f"{source}:{line}: a {found.name} row in a {kind.name} benchmark")
        kind = found
        items.append(row)
    if kind is None:
        raise DataError(f"{source}: no rows")
    return kind, items


def benchmark_texts(source: str) -> list[str]:
    """Each item of a benchmark as one text, for decontamination."""
    kind, items = read_benchmark(source)
    return [kind.text(item) for item in items]


def run_benchmarks(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    benchmarks: dict[str, str],
    max_prompt_length: int,
    max_new_tokens: int,
    execute_code: bool = False,
) -> dict[str, float]:
    """Score per benchmark name. A code benchmark is left out (and says why in the log) unless
    `execute_code` allows running model-written programs."""
    settings = Settings(max_prompt_length, max_new_tokens, execute_code)
    scores = {}
    for name, source in sorted(benchmarks.items()):
        kind, items = read_benchmark(source)
        score = kind.score(model, tokenizer, items, settings)
        if math.isnan(score):
            log.info("benchmark %s: not run (set evaluation.execute_code to run model code)", name)
            continue
        scores[name] = score
    return scores

"""Capability benchmarks: named files (JSONL, parquet or Hub ids) of a registered kind, named in
the config or told by the rows' fields (`srft.evaluation.tasks`), scored on a model."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from srft.config import Benchmark
from srft.data.pairs import row_source
from srft.distributed import all_sum, rank, world_size
from srft.errors import DataError
from srft.evaluation.tasks import KINDS, Kind, Settings, kind_of

log = logging.getLogger("srft")


def read_benchmark(source: str, kind: str | None = None) -> tuple[Kind, list[dict[str, Any]]]:
    """The kind and items of a benchmark file: of the registered `kind` or, without one, of the
    kind its rows' fields tell. Errors name the file and line."""
    named = KINDS.get(kind) if kind is not None else None
    found: Kind | None = None
    items: list[dict[str, Any]] = []
    for line, row in row_source(source, split="test"):
        where = f"{source}:{line}"
        if isinstance(row, str):
            raise DataError(f"{where}: {row}")
        fields = ", ".join(sorted(row)) or "none"
        row_kind = named or kind_of(row)
        if row_kind is None:
            raise DataError(f"{where}: not a benchmark row (fields: {fields}); {_known_shapes()}")
        if not all(f in row for f in row_kind.fields):
            wanted = ", ".join(row_kind.fields)
            raise DataError(f"{where}: a {row_kind.name} row has {wanted} (fields: {fields})")
        if found is not None and row_kind is not found:
            raise DataError(f"{where}: a {row_kind.name} row in a {found.name} benchmark")
        found = row_kind
        items.append(row)
    if found is None:
        raise DataError(f"{source}: no rows")
    return found, items


def benchmark_texts(benchmark: str | Benchmark) -> list[str]:
    """Each item of a benchmark (a file, or a file and its kind) as one text, for
    decontamination."""
    benchmark = _as_benchmark(benchmark)
    kind, items = read_benchmark(benchmark.file, benchmark.kind)
    return [kind.text(item) for item in items]


def run_benchmarks(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    benchmarks: Mapping[str, str | Benchmark],
    max_prompt_length: int,
    max_new_tokens: int,
    execute_code: bool = False,
) -> dict[str, float]:
    """Score per benchmark name; a benchmark is a file (its kind told by its rows' fields) or a
    file and a registered kind. A code benchmark is left out (and says why in the log) unless
    `execute_code` allows running model-written programs.

    A kind's score is a mean over its items: with several processes each scores its share of
    the items, and the shares' scores are combined weighted by their sizes."""
    settings = Settings(max_prompt_length, max_new_tokens, execute_code)
    scores = {}
    for name, entry in sorted(benchmarks.items()):
        benchmark = _as_benchmark(entry)
        kind, items = read_benchmark(benchmark.file, benchmark.kind)
        if world_size() == 1:
            score = kind.score(model, tokenizer, items, settings)
        else:
            mine = items[rank() :: world_size()]
            share_score = kind.score(model, tokenizer, mine, settings) if mine else 0.0
            weighted, count = all_sum([share_score * len(mine), len(mine)])
            score = weighted / count
        if math.isnan(score):
            log.info("benchmark %s: not run (set evaluation.execute_code to run model code)", name)
            continue
        scores[name] = score
    return scores


def _as_benchmark(entry: str | Benchmark) -> Benchmark:
    return entry if isinstance(entry, Benchmark) else Benchmark(file=entry)


def _known_shapes() -> str:
    shapes = ", ".join(f"{'/'.join(k.fields)} ({k.name})" for k in KINDS.values() if k.fields)
    return f"expected the fields of a benchmark kind: {shapes}; or name the kind in the config"

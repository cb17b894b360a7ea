"""Human labels of generated responses, as an annotator.

A labels file is JSON Lines, one labelled response a row: `{"prompt", "response", "score"}`, or
`{"id", "score"}` with the id stage 2 writes beside every response it samples
(`candidates.jsonl`). Responses are joined to their labels by that id, a hash of the prompt and
the response. In hybrid annotation an AI annotator labels the responses no human labelled, and
where both label, their agreement is measured: the share of the pairs of responses to one prompt
that the humans order (their scores differ) which the AI orders alike, AI ties counted half.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

from srft.data.sft import json_objects
from srft.errors import DataError, SrftError
from srft.scoring import Scorer


def response_id(prompt: str, response: str) -> str:
    """The id of a response to a prompt: 16 hex digits of their SHA-256."""
    digest = hashlib.sha256(f"{prompt}\x1f{response}".encode()).hexdigest()
    return digest[:16]


def read_labels(path: str | Path) -> dict[str, float]:
    """Response id -> score, from a labels file; errors name the file and line."""
    labels: dict[str, float] = {}
    for number, row in json_objects(path):
        where = f"{path}:{number}"
        score = row.get("score")
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
        ):
            raise DataError(f"{where}: 'score' must be a finite number, got {score!r}")
        if isinstance(row.get("id"), str) and row["id"]:
            labels[row["id"]] = float(score)
        elif isinstance(row.get("prompt"), str) and isinstance(row.get("response"), str):
            labels[response_id(row["prompt"], row["response"])] = float(score)
        else:
            raise DataError(f"{where}: expected 'id', or 'prompt' and 'response', beside 'score'")
    if not labels:
        raise DataError(f"{path}: no labels (the file is empty)")
    return labels


class HumanLabels:
    """An annotator answering from human labels; with `fallback`, hybrid: the fallback labels
    what no human did. It counts the responses each labelled and the humans' and the AI's
    agreement over the responses both labelled."""

    def __init__(self, labels: dict[str, float], path: str, fallback: Scorer | None = None):
        self.labels = labels
        self.path = path
        self.fallback = fallback
        self.by_human = 0
        self.by_ai = 0
        self.ordered = 0.0  # pairs of responses to a prompt the humans order
        self.agreed = 0.0  # of those, the AI orders alike (ties half)

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        ids = [response_id(p, r) for p, r in zip(prompts, responses, strict=True)]
        missing = [i for i, key in enumerate(ids) if key not in self.labels]
        if missing and self.fallback is None:
            first = missing[0]
            raise SrftError(
                f"annotation.labels_file: {self.path} labels {len(ids) - len(missing)} of the "
                f"{len(ids)} responses sampled (the first unlabelled: id {ids[first]}, prompt "
                f"{prompts[first][:60]!r}); set annotation.hybrid: true for AI labels where no "
                "human label exists: stage 2 then writes every response with its id and score "
                "to candidates.jsonl, to label and run again"
            )
        ai = self.fallback(prompts, responses) if self.fallback is not None else None
        self.by_human += len(ids) - len(missing)
        self.by_ai += len(missing)
        if ai is not None:
            self._count_agreement(prompts, ids, ai)
        return [self.labels.get(key, ai[i] if ai else math.nan) for i, key in enumerate(ids)]

    def _count_agreement(self, prompts: Sequence[str], ids: list[str], ai: list[float]) -> None:
        by_prompt: dict[str, list[tuple[float, float]]] = {}
        for prompt, key, machine in zip(prompts, ids, ai, strict=True):
            if key in self.labels:
                by_prompt.setdefault(prompt, []).append((self.labels[key], machine))
        for scored in by_prompt.values():
            for i, (human_a, ai_a) in enumerate(scored):
                for human_b, ai_b in scored[i + 1 :]:
                    if human_a == human_b:
                        continue
                    self.ordered += 1
                    if ai_a == ai_b:
                        self.agreed += 0.5
                    elif (ai_a > ai_b) == (human_a > human_b):
                        self.agreed += 1

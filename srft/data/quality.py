"""Quality metrics of a set of preference pairs, and the report the data gates read.

**preference gap**: mean over pairs of `s(chosen) - s(rejected)`, with `s` the annotator's score
normalised to [0, 1]. Pairs without scores are skipped; with no scored pair the gap is None,
"not measurable", and its check fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srft.data.pairs import PreferencePair, read_pairs


def normalise_score(score: float, scale: tuple[float, float]) -> float:
    """`score` on the scale (lo, hi) mapped linearly to [0, 1]: `(score - lo) / (hi - lo)`."""
    low, high = scale
    if not high > low:
        raise ValueError(f"score scale must have max > min, got {scale}")
    return (score - low) / (high - low)


def preference_gap(pairs: Sequence[PreferencePair], scale: tuple[float, float]) -> float | None:
    """**preference gap**: mean over pairs of `s(chosen) - s(rejected)`, with `s` the annotator's
    score normalised to [0, 1].

    `scale` is the (min, max) of the annotator's scores. Pairs that carry no scores are skipped;
    None ("not measurable") when no pair carries scores. The value lies in [-1, 1].
    """
    gaps = [
        normalise_score(pair.score_chosen, scale) - normalise_score(pair.score_rejected, scale)
        for pair in pairs
        if pair.score_chosen is not None and pair.score_rejected is not None
    ]
    if not gaps:
        return None
    return sum(gaps) / len(gaps)


@dataclass
class PairSetReport:
    """What the preference-data gates and the data report need to know about a pair set."""

    path: str | None
    n_pairs: int
    n_unique_prompts: int
    n_scored: int  # pairs that carry both scores
    preference_gap: float | None  # None when no pair carries scores (not measurable)
    gap_threshold: float
    min_pairs: int
    n_ties: int  # scored pairs with equal scores
    n_duplicate_pairs: int  # identical (prompt, chosen, rejected) seen earlier in the set
    mean_chosen_words: float  # whitespace-separated words per chosen response
    mean_rejected_words: float
    n_dropped: int  # rows of the file left out as invalid
    gap_passed: bool | None  # None when the gap is not measurable
    count_passed: bool
    passed: bool  # gap and count both passed; a gap that is not measurable fails

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def format(self) -> str:
        """A short multi-line report for people, one ✅/❌ line per check."""
        if self.preference_gap is None:
            gap_line = "❌ preference gap: not measurable (no pair carries scores)"
        else:
            relation = ">=" if self.gap_passed else "<"
            gap_line = (
                f"{_mark(self.gap_passed)} preference gap: {self.preference_gap:.3f} {relation} "
                f"{self.gap_threshold:g} ({self.n_scored} of {self.n_pairs} pairs scored)"
            )
        relation = ">=" if self.count_passed else "<"
        lines = [
            f"Preference pairs: {self.path or '(in memory)'}",
            f"  {gap_line}",
            f"  {_mark(self.count_passed)} pair count: {self.n_pairs} {relation} {self.min_pairs}",
            f"  unique prompts: {self.n_unique_prompts}; ties: {self.n_ties}; "
            f"duplicate pairs: {self.n_duplicate_pairs}; dropped rows: {self.n_dropped}",
            f"  mean words: chosen {self.mean_chosen_words:.1f}, "
            f"rejected {self.mean_rejected_words:.1f}",
            f"  {'passed' if self.passed else 'failed'}",
        ]
        return "\n".join(lines)


def validate_preference_pairs(
    source: str | Path | list[PreferencePair],
    *,
    gap_threshold: float = 0.15,
    score_scale: tuple[float, float] = (0.0, 1.0),
    min_pairs: int = 1000,
    on_invalid: str = "error",
) -> PairSetReport:
    """Measure a pair set against the gap and count checks.

    `source` is a JSONL path (read with `read_pairs`, the same `score_scale` and `on_invalid`)
    or pairs already in memory. The gap check passes when the preference gap is at least
    `gap_threshold`; the count check when there are at least `min_pairs` pairs.
    """
    if isinstance(source, str | Path):
        pair_file = read_pairs(source, score_scale=score_scale, on_invalid=on_invalid)
        path: str | None = str(source)
        pairs, n_dropped = pair_file.pairs, len(pair_file.dropped)
    else:
        path, pairs, n_dropped = None, list(source), 0
    scored = [p for p in pairs if p.score_chosen is not None and p.score_rejected is not None]
    gap = preference_gap(scored, score_scale)
    gap_passed = None if gap is None else gap >= gap_threshold
    count_passed = len(pairs) >= min_pairs
    return PairSetReport(
        path=path,
        n_pairs=len(pairs),
        n_unique_prompts=len({p.prompt for p in pairs}),
        n_scored=len(scored),
        preference_gap=gap,
        gap_threshold=gap_threshold,
        min_pairs=min_pairs,
        n_ties=sum(p.score_chosen == p.score_rejected for p in scored),
        n_duplicate_pairs=_count_repeats((p.prompt, p.chosen, p.rejected) for p in pairs),
        mean_chosen_words=_mean_words(p.chosen for p in pairs),
        mean_rejected_words=_mean_words(p.rejected for p in pairs),
        n_dropped=n_dropped,
        gap_passed=gap_passed,
        count_passed=count_passed,
        passed=count_passed and gap_passed is True,
    )


def _count_repeats(keys: Iterable[tuple[str, str, str]]) -> int:
    """How many keys equal one seen earlier."""
    seen: set[tuple[str, str, str]] = set()
    repeats = 0
    for key in keys:
        repeats += key in seen
        seen.add(key)
    return repeats


def _mean_words(texts: Iterable[str]) -> float:
    """Mean number of whitespace-separated words per text; 0.0 for no text."""
    counts = [len(text.split()) for text in texts]
    return sum(counts) / len(counts) if counts else 0.0


def _mark(passed: bool | None) -> str:
    return "✅" if passed else "❌"

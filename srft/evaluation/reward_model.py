"""Evaluating any reward model on any pair file: accuracy, margin, length bias."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srft.data.pairs import read_pairs
from srft.evaluation.reward_probes import length_bias, longer_reply_accuracy, subset_accuracy
from srft.models.loading import load_reward_scorer
from srft.models.reward import pair_accuracy, strict_accuracy, tie_rate


def evaluate_reward_model(
    model_dir: str,
    pairs_file: str | Path,
    *,
    max_prompt_length: int = 256,
    max_response_length: int = 256,
    score_scale: tuple[float, float] | None = None,
    on_invalid: str = "error",
    batch_size: int = 32,
) -> dict[str, Any]:
    """`accuracy` (**reward accuracy**: fraction of pairs with r(chosen) > r(rejected), ties
    counted half), `strict_accuracy` (ties as misses), `tie_rate`, `n` pairs, `mean_margin`
    (mean of r(chosen) - r(rejected)), `longer_reply_accuracy` (the accuracy of "the longer
    reply wins", in words, on the same pairs) and `accuracy_over_length_baseline` (accuracy
    minus it), `length_correlation` (Pearson correlation of reward with response length in
    words, over every chosen and rejected response; None when either side is constant) and
    `rm_prefers_longer` (share of pairs differing in length where the RM prefers the longer),
    and `accuracy_per_subset` (pairs, accuracy and the longer-reply baseline of each `subset`
    the rows name; None when no row names one)."""
    pairs = read_pairs(pairs_file, score_scale=score_scale, on_invalid=on_invalid).pairs
    scorer = load_reward_scorer(
        model_dir, max_prompt_length, max_response_length, trained=True, batch_size=batch_size
    )
    chosen, rejected = scorer.pairs(pairs)
    lengths = length_bias(scorer, pairs, chosen, rejected, unit="words")
    accuracy, baseline = pair_accuracy(chosen, rejected), longer_reply_accuracy(pairs)
    per_subset = subset_accuracy(pairs, chosen, rejected)
    return {
        "accuracy": accuracy,
        "strict_accuracy": strict_accuracy(chosen, rejected),
        "tie_rate": tie_rate(chosen, rejected),
        "n": len(pairs),
        "mean_margin": (chosen - rejected).mean().item(),
        "longer_reply_accuracy": baseline,
        "accuracy_over_length_baseline": accuracy - baseline,
        "length_correlation": lengths.correlation,
        "rm_prefers_longer": lengths.rm_prefers_longer,
        "accuracy_per_subset": None
        if per_subset is None
        else {name: found.model_dump() for name, found in per_subset.items()},
    }

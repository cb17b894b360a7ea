"""Evaluating any reward model on any pair file: accuracy, margin, length correlation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srft.data.pairs import read_pairs
from srft.evaluation.alignment import pearson
from srft.models.loading import load_reward_model, load_tokenizer
from srft.models.reward import pair_accuracy, score_pairs


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
    counted half), `n` pairs, `mean_margin` (mean of r(chosen) - r(rejected)) and
    `length_correlation` (Pearson correlation of reward with response length in words, over
    every chosen and rejected response; None when either side is constant)."""
    pairs = read_pairs(pairs_file, score_scale=score_scale, on_invalid=on_invalid).pairs
    tokenizer = load_tokenizer(model_dir)
    model = load_reward_model(model_dir, tokenizer.pad_token_id, trained=True)
    chosen, rejected = score_pairs(
        model, tokenizer, pairs, max_prompt_length, max_response_length, batch_size
    )
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    rewards = chosen.tolist() + rejected.tolist()
    return {
        "accuracy": pair_accuracy(chosen, rejected),
        "n": len(pairs),
        "mean_margin": (chosen - rejected).mean().item(),
        "length_correlation": pearson(rewards, [len(r.split()) for r in responses]),
    }

"""Probes of a reward model beyond accuracy: consistency, edge cases, length bias, failure modes
and agreement with a judge. Each takes a `RewardScorer` (or its rewards) and preference pairs,
so stage 4 and `srft evaluate-rm` run the same probes on any reward model."""

from __future__ import annotations

import statistics
from typing import Literal

import torch

from srft.data.pairs import PreferencePair
from srft.evaluation.alignment import pearson
from srft.models.reward import RewardScorer
from srft.outputs import Consistency, EdgeCase, FailureMode, LengthBias
from srft.scoring import Scorer

CONSISTENCY_TOLERANCE = 1e-3


def consistency(scorer: RewardScorer, pairs: list[PreferencePair]) -> Consistency:
    """The same text scored alone, in a batch, and beside longer padding gets the same reward
    (max absolute difference within 1e-3); swapping a pair's order flips the sign of its
    margin."""
    prompts = [p.prompt for p in pairs]
    chosen = [p.chosen for p in pairs]
    batched = scorer(prompts, chosen)
    alone = torch.cat([scorer([p], [r]) for p, r in zip(prompts[:16], chosen[:16], strict=True)])
    padded = scorer(prompts + ["x " * 40], chosen + ["y " * 40])[: len(pairs)]
    rejected = scorer(prompts, [p.rejected for p in pairs])
    swapped = scorer(prompts, [p.rejected for p in pairs]) - scorer(prompts, chosen)
    diffs = [
        (alone - batched[:16]).abs().max().item(),
        (padded - batched).abs().max().item(),
        (swapped + (batched - rejected)).abs().max().item(),
    ]
    worst = max(diffs)
    return Consistency(
        pairs=len(pairs),
        alone_vs_batch=diffs[0],
        padding=diffs[1],
        swap_sign=diffs[2],
        max_abs_diff=worst,
        consistent=worst <= CONSISTENCY_TOLERANCE,
    )


def edge_cases(
    scorer: RewardScorer, pairs: list[PreferencePair]
) -> tuple[dict[str, EdgeCase], float]:
    """Rewards of degenerate responses against the chosen response they derive from: empty,
    truncated to half, repeated three times, and the prompt echoed back; and the chosen
    responses' mean reward."""
    prompts = [p.prompt for p in pairs]
    original = scorer(prompts, [p.chosen for p in pairs])
    variants = {
        "empty": [" "] * len(pairs),
        "truncated": [
            " ".join(p.chosen.split()[: max(1, len(p.chosen.split()) // 2)]) for p in pairs
        ],
        "repeated": [" ".join([p.chosen] * 3) for p in pairs],
        "prompt_echoed": list(prompts),
    }
    found = {}
    for name, responses in variants.items():
        rewards = scorer(prompts, responses)
        found[name] = EdgeCase(
            mean_reward=rewards.mean().item(),
            mean_vs_original=(rewards - original).mean().item(),
            share_above_original=(rewards > original).float().mean().item(),
        )
    return found, original.mean().item()


def length_bias(
    scorer: RewardScorer,
    pairs: list[PreferencePair],
    chosen: torch.Tensor | None = None,
    rejected: torch.Tensor | None = None,
    unit: Literal["tokens", "words"] = "tokens",
) -> LengthBias:
    """Correlation of reward with response length (in the RM's tokens, or in words) over every
    chosen and rejected response, and how often the RM prefers the longer response of a pair.
    The pairs' rewards are scored unless given."""
    if chosen is None or rejected is None:
        chosen, rejected = scorer.pairs(pairs)
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    rewards = chosen.tolist() + rejected.tolist()
    if unit == "words":
        lengths = [float(len(r.split())) for r in responses]
    else:
        lengths = [
            float(len(scorer.tokenizer(r, add_special_tokens=False)["input_ids"]))
            for r in responses
        ]
    longer_wins = [
        (len(p.chosen) > len(p.rejected)) == (rc > rr)
        for p, rc, rr in zip(pairs, chosen.tolist(), rejected.tolist(), strict=True)
        if len(p.chosen) != len(p.rejected)
    ]
    return LengthBias(
        correlation=pearson(lengths, rewards),
        responses=len(responses),
        rm_prefers_longer=statistics.fmean(longer_wins) if longer_wins else None,
    )


def failure_modes(
    pairs: list[PreferencePair], chosen: torch.Tensor, rejected: torch.Tensor, k: int
) -> list[FailureMode]:
    """The k pairs the RM gets most wrong (most negative margin)."""
    margins = (chosen - rejected).tolist()
    worst = sorted(range(len(pairs)), key=lambda i: margins[i])[:k]
    return [
        FailureMode(
            prompt=pairs[i].prompt,
            chosen=pairs[i].chosen,
            rejected=pairs[i].rejected,
            margin=margins[i],
        )
        for i in worst
        if margins[i] < 0
    ]


def judge_accuracy(
    judge: Scorer, pairs: list[PreferencePair], chosen: torch.Tensor, rejected: torch.Tensor
) -> tuple[float | None, int]:
    """Reward accuracy against the judge's preference, over the pairs the judge orders (ties
    counted half), and the number of those pairs."""
    prompts = [p.prompt for p in pairs]
    judge_c = judge(prompts, [p.chosen for p in pairs])
    judge_r = judge(prompts, [p.rejected for p in pairs])
    hits = []
    for jc, jr, rc, rr in zip(judge_c, judge_r, chosen.tolist(), rejected.tolist(), strict=True):
        if jc == jr:
            continue
        hits.append(1.0 if (rc > rr) == (jc > jr) and rc != rr else 0.5 if rc == rr else 0.0)
    return (statistics.fmean(hits) if hits else None), len(hits)

"""Probes of a reward model beyond accuracy: consistency, edge cases, length bias, failure modes
and agreement with a judge. Each takes a `RewardScorer` (or its rewards) and preference pairs,
so stage 4 and `srft evaluate-rm` run the same probes on any reward model."""

from __future__ import annotations

import statistics
from typing import Literal

import torch

from srft.data.pairs import PreferencePair
from srft.evaluation.alignment import pearson
from srft.models.reward import RewardScorer, pair_accuracy
from srft.outputs import Consistency, EdgeCase, FailureMode, LengthBias, SubsetAccuracy
from srft.scoring import Scorer

CONSISTENCY_TOLERANCE = 1e-3


def consistency(scorer: RewardScorer, pairs: list[PreferencePair]) -> Consistency:
    """The same pair's margin r(chosen) - r(rejected) whatever else is in its batch (max
    absolute difference within 1e-3), against the margins of the chosen responses batched
    together and the rejected ones together: each pair scored alone (its two responses a batch
    of two), beside a much longer sequence (more padding), and with every chosen and rejected
    response interleaved in one batch in the reverse order."""
    margins = _margins(*scorer.pairs(pairs))
    alone = torch.cat([_margins(*scorer.pairs([pair])) for pair in pairs[:16]])
    long_prompt, long_reply = "x " * 40, "y " * 40
    prompts = [p.prompt for p in pairs]
    padded = scorer(
        [*prompts, long_prompt, *prompts],
        [*(p.chosen for p in pairs), long_reply] + [p.rejected for p in pairs],
    )
    padded = padded[: len(pairs)] - padded[len(pairs) + 1 :]
    backwards = pairs[::-1]
    interleaved = scorer(
        [p.prompt for p in backwards for _ in (0, 1)],
        [text for p in backwards for text in (p.chosen, p.rejected)],
    )
    reordered = (interleaved[0::2] - interleaved[1::2]).flip(0)
    diffs = [
        (alone - margins[:16]).abs().max().item(),
        (padded - margins).abs().max().item(),
        (reordered - margins).abs().max().item(),
    ]
    worst = max(diffs)
    return Consistency(
        pairs=len(pairs),
        alone_vs_batch=diffs[0],
        padding=diffs[1],
        order=diffs[2],
        max_abs_diff=worst,
        consistent=worst <= CONSISTENCY_TOLERANCE,
    )


def _margins(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    return chosen - rejected


def longer_reply_accuracy(pairs: list[PreferencePair]) -> float:
    """The reward accuracy of the baseline "the longer reply wins": each reply scored by its
    length in words, ties counted half."""
    chosen = torch.tensor([float(len(p.chosen.split())) for p in pairs])
    rejected = torch.tensor([float(len(p.rejected.split())) for p in pairs])
    return pair_accuracy(chosen, rejected)


def subset_accuracy(
    pairs: list[PreferencePair], r_chosen: torch.Tensor, r_rejected: torch.Tensor
) -> dict[str, SubsetAccuracy] | None:
    """Reward accuracy per `subset` of the pairs that carry one, in name order; None when
    none does."""
    members: dict[str, list[int]] = {}
    for index, pair in enumerate(pairs):
        if pair.subset is not None:
            members.setdefault(pair.subset, []).append(index)
    if not members:
        return None
    return {
        name: SubsetAccuracy(
            pairs=len(rows),
            accuracy=pair_accuracy(r_chosen[rows], r_rejected[rows]),
            longer_reply_accuracy=longer_reply_accuracy([pairs[i] for i in rows]),
        )
        for name, rows in sorted(members.items())
    }


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

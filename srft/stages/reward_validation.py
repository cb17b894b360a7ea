"""Stage 4, reward model validation: held-out accuracy, overfitting, consistency, edge cases,
length bias, failure modes, and (with a judge) accuracy against the judge."""

from __future__ import annotations

import statistics
from typing import Any

import torch

from srft.annotation import build_judge
from srft.artifacts import atomic_write_json, atomic_write_text
from srft.data.pairs import PreferencePair, read_pairs
from srft.decisions import retrain_reward_model
from srft.evaluation.alignment import pearson
from srft.gates import Gate
from srft.models.loading import apply_threads, load_reward_model, load_tokenizer
from srft.models.reward import encode_pair_text, pair_accuracy, score_sequences
from srft.stages.base import StageContext, StageResult, StageSpec

CONSISTENCY_TOLERANCE = 1e-3


class RewardScorer:
    """Scores (prompt, response) texts with a reward model, batched."""

    def __init__(self, model, tokenizer, max_prompt: int, max_response: int) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.max_prompt, self.max_response = max_prompt, max_response

    def encode(self, prompt: str, response: str) -> list[int]:
        return encode_pair_text(
            self.tokenizer, prompt, response, self.max_prompt, self.max_response
        )

    def __call__(
        self, prompts: list[str], responses: list[str], batch_size: int = 256
    ) -> torch.Tensor:
        sequences = [self.encode(p, r) for p, r in zip(prompts, responses, strict=True)]
        return score_sequences(self.model, sequences, self.tokenizer.pad_token_id, batch_size)

    def pairs(self, pairs: list[PreferencePair]) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = [p.prompt for p in pairs]
        return self(prompts, [p.chosen for p in pairs]), self(prompts, [p.rejected for p in pairs])


def run(ctx: StageContext) -> StageResult:
    config = ctx.config
    apply_threads(config.compute)
    model_dir = str(ctx.upstream_model(3))
    tokenizer = load_tokenizer(model_dir)
    scorer = RewardScorer(
        load_reward_model(model_dir, tokenizer.pad_token_id),
        tokenizer,
        config.data.max_prompt_length,
        config.data.max_response_length,
    )
    train = read_pairs(ctx.upstream(2) / "pairs_train.jsonl").pairs
    val = read_pairs(ctx.upstream(2) / "pairs_val.jsonl").pairs
    if config.data.test_file:
        val = read_pairs(config.data.test_file, score_scale=config.data.score_scale).pairs

    train_c, train_r = scorer.pairs(train)
    val_c, val_r = scorer.pairs(val)
    accuracy_train = pair_accuracy(train_c, train_r)
    accuracy_val = pair_accuracy(val_c, val_r)
    metrics: dict[str, Any] = {
        "held_out_pairs": len(val),
        "reward_accuracy_train": accuracy_train,
        "reward_accuracy_val": accuracy_val,
        "train_val_gap": accuracy_train - accuracy_val,
        "mean_margin_val": (val_c - val_r).mean().item(),
    }
    checks: dict[str, Any] = {
        "consistency": consistency(scorer, val[:64]),
        "edge_cases": edge_cases(scorer, val[:200]),
        "length_bias": length_bias(scorer, val),
        "failure_modes": failure_modes(val, val_c, val_r, k=5),
    }
    judge = build_judge(config)
    if judge is not None:
        metrics.update(judge_accuracy(judge, val, val_c, val_r))
    metrics["length_correlation"] = checks["length_bias"]["correlation"]
    metrics["consistency_max_abs_diff"] = checks["consistency"]["max_abs_diff"]

    c = config.constraints
    gates = [
        ctx.gate("reward_accuracy_val", accuracy_val, c.reward_accuracy_target, ">="),
        ctx.gate("train_val_gap", accuracy_train - accuracy_val, c.max_train_val_gap, "<"),
    ]
    report = {"metrics": metrics, "checks": checks, "gates": [g.to_dict() for g in gates]}
    atomic_write_json(ctx.workdir / "validation_report.json", report)
    atomic_write_text(ctx.workdir / "validation_report.md", _markdown(metrics, checks, gates))
    ctx.tracker.log({k: v for k, v in metrics.items() if isinstance(v, int | float)})
    return StageResult(
        metrics=metrics, gates=gates, checks=checks, artifacts={"report": "validation_report.md"}
    )


def consistency(scorer: RewardScorer, pairs: list[PreferencePair]) -> dict[str, Any]:
    """The same text scored alone, in a batch, and beside longer padding gets the same reward;
    swapping a pair's order flips the sign of its margin."""
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
    return {
        "pairs": len(pairs),
        "alone_vs_batch": diffs[0],
        "padding": diffs[1],
        "swap_sign": diffs[2],
        "max_abs_diff": worst,
        "consistent": worst <= CONSISTENCY_TOLERANCE,
    }


def edge_cases(scorer: RewardScorer, pairs: list[PreferencePair]) -> dict[str, Any]:
    """Rewards of degenerate responses against the chosen response they derive from:
    empty, truncated to half, repeated three times, and the prompt echoed back."""
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
    out = {}
    for name, responses in variants.items():
        rewards = scorer(prompts, responses)
        out[name] = {
            "mean_reward": rewards.mean().item(),
            "mean_vs_original": (rewards - original).mean().item(),
            "share_above_original": (rewards > original).float().mean().item(),
        }
    out["original_mean_reward"] = original.mean().item()
    return out


def length_bias(scorer: RewardScorer, pairs: list[PreferencePair]) -> dict[str, Any]:
    """Correlation of reward with response length (tokens) over every held-out response."""
    prompts = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    rewards = scorer(prompts, responses).tolist()
    lengths = [
        float(len(scorer.tokenizer(r, add_special_tokens=False)["input_ids"])) for r in responses
    ]
    correlation = pearson(lengths, rewards)
    longer_wins = [
        (len(p.chosen) > len(p.rejected)) == (rc > rr)
        for p, rc, rr in zip(pairs, rewards[: len(pairs)], rewards[len(pairs) :], strict=True)
        if len(p.chosen) != len(p.rejected)
    ]
    return {
        "correlation": correlation,
        "responses": len(responses),
        "rm_prefers_longer": statistics.fmean(longer_wins) if longer_wins else None,
    }


def failure_modes(
    pairs, chosen: torch.Tensor, rejected: torch.Tensor, k: int
) -> list[dict[str, Any]]:
    """The k held-out pairs the RM gets most wrong (most negative margin)."""
    margins = (chosen - rejected).tolist()
    worst = sorted(range(len(pairs)), key=lambda i: margins[i])[:k]
    return [
        {
            "prompt": pairs[i].prompt,
            "chosen": pairs[i].chosen,
            "rejected": pairs[i].rejected,
            "margin": margins[i],
        }
        for i in worst
        if margins[i] < 0
    ]


def judge_accuracy(judge, pairs, chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, Any]:
    """Reward accuracy against the judge's preference, over pairs the judge orders."""
    prompts = [p.prompt for p in pairs]
    judge_c = judge(prompts, [p.chosen for p in pairs])
    judge_r = judge(prompts, [p.rejected for p in pairs])
    hits = []
    for jc, jr, rc, rr in zip(judge_c, judge_r, chosen.tolist(), rejected.tolist(), strict=True):
        if jc == jr:
            continue
        hits.append(1.0 if (rc > rr) == (jc > jr) and rc != rr else 0.5 if rc == rr else 0.0)
    return {
        "reward_accuracy_judge": statistics.fmean(hits) if hits else None,
        "judge_ordered_pairs": len(hits),
    }


def _markdown(metrics: dict[str, Any], checks: dict[str, Any], gates: list[Gate]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["# Reward model validation", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in metrics.items()]
    lines += ["", "## Gates", ""]
    lines += [
        f"- {'✅' if g.passed else '❌'} {g.name}: {g.describe_value()} "
        f"(target {g.describe_threshold()})"
        for g in gates
    ]
    c = checks["consistency"]
    lines += [
        "",
        "## Consistency",
        "",
        f"Max |reward difference| alone vs batch {fmt(c['alone_vs_batch'])}, with other padding "
        f"{fmt(c['padding'])}, swapped pair sign {fmt(c['swap_sign'])}: "
        f"{'consistent' if c['consistent'] else 'INCONSISTENT'}.",
    ]
    lines += [
        "",
        "## Edge cases (reward relative to the chosen response)",
        "",
        "| case | mean reward | mean vs original | share above original |",
        "|---|---|---|---|",
    ]
    for name, row in checks["edge_cases"].items():
        if isinstance(row, dict):
            lines.append(
                f"| {name} | {fmt(row['mean_reward'])} | {fmt(row['mean_vs_original'])} | "
                f"{fmt(row['share_above_original'])} |"
            )
    lb = checks["length_bias"]
    lines += [
        "",
        "## Length bias",
        "",
        f"Correlation of reward with response length: {fmt(lb['correlation'])} over "
        f"{lb['responses']} responses; the RM prefers the longer response in "
        f"{fmt(lb['rm_prefers_longer'])} of pairs that differ in length.",
    ]
    lines += ["", "## Failure modes (most negative margins)", ""]
    for f in checks["failure_modes"]:
        lines.append(
            f"- margin {fmt(f['margin'])}: `{f['prompt']}` chosen `{f['chosen']}` "
            f"rejected `{f['rejected']}`"
        )
    return "\n".join(lines) + "\n"


SPEC = StageSpec(
    number=4,
    name="reward_validation",
    run=run,
    sections=("data", "evaluation", "constraints", "gates"),
    upstream=(2, 3),
    adjust=retrain_reward_model,
)

"""Stage 4, reward model validation: accuracy on the test pairs (held out from training and
epoch selection), overfitting, consistency, edge cases, length bias, failure modes, and (with a
judge) accuracy against the judge."""

from __future__ import annotations

from srft.annotation import build_judge
from srft.artifacts import atomic_write_json, atomic_write_text
from srft.data.pairs import read_pairs
from srft.distributed import by_main
from srft.evaluation.reward_probes import (
    consistency,
    edge_cases,
    failure_modes,
    judge_accuracy,
    length_bias,
    longer_reply_accuracy,
    subset_accuracy,
)
from srft.gates import Gate
from srft.models.loading import apply_threads, load_reward_scorer
from srft.models.reward import pair_accuracy, strict_accuracy, tie_rate
from srft.outputs import PreferenceOutputs, RewardOutputs, RewardValidationOutputs
from srft.stages.base import StageContext, StageResult, StageSpec
from srft.stages.remedies import after_reward_model


def run(ctx: StageContext) -> StageResult:
    config = ctx.config
    apply_threads(config.compute)
    scorer = load_reward_scorer(
        str(ctx.upstream(RewardOutputs).model),
        config.data.max_prompt_length,
        config.data.max_response_length,
    )
    pairs = ctx.upstream(PreferenceOutputs)
    train = read_pairs(pairs.train_pairs_file).pairs
    # the test pairs: stage 3 neither trained nor picked its epoch on them
    val = read_pairs(pairs.test_pairs_file).pairs

    train_c, train_r = scorer.pairs(train)
    val_c, val_r = scorer.pairs(val)
    accuracy_train = pair_accuracy(train_c, train_r)
    accuracy_val = pair_accuracy(val_c, val_r)
    edges, original_mean_reward = edge_cases(scorer, val[:200])
    judged, judge_pairs = None, None
    judge = build_judge(config)
    if judge is not None:
        judged, judge_pairs = by_main(lambda: judge_accuracy(judge, val, val_c, val_r))
    found = consistency(scorer, val[:64])
    lengths = length_bias(scorer, val, val_c, val_r)
    baseline = longer_reply_accuracy(val)
    outputs = RewardValidationOutputs(
        held_out_pairs=len(val),
        reward_accuracy_train=accuracy_train,
        reward_accuracy_val=accuracy_val,
        strict_accuracy_val=strict_accuracy(val_c, val_r),
        tie_rate_val=tie_rate(val_c, val_r),
        longer_reply_accuracy_val=baseline,
        accuracy_over_length_baseline=accuracy_val - baseline,
        train_val_gap=accuracy_train - accuracy_val,
        mean_margin_val=(val_c - val_r).mean().item(),
        truncated_pairs=scorer.truncated(val),
        reward_accuracy_judge=judged,
        judge_ordered_pairs=judge_pairs,
        length_correlation=lengths.correlation,
        consistency_max_abs_diff=found.max_abs_diff,
        consistency=found,
        edge_cases=edges,
        original_mean_reward=original_mean_reward,
        length_bias=lengths,
        failure_modes=failure_modes(val, val_c, val_r, k=5),
        accuracy_per_subset=subset_accuracy(val, val_c, val_r),
    )
    c = config.constraints
    gates = [
        ctx.gate("reward_accuracy_val", accuracy_val, c.reward_accuracy_target, ">="),
        ctx.gate("train_val_gap", accuracy_train - accuracy_val, c.max_train_val_gap, "<"),
    ]
    found = outputs.model_dump(mode="json")
    checks = {
        "consistency": found["consistency"],
        "edge_cases": {**found["edge_cases"], "original_mean_reward": original_mean_reward},
        "length_bias": found["length_bias"],
        "failure_modes": found["failure_modes"],
    }
    report = {"metrics": outputs.scalars(), "checks": checks, "gates": [g.to_dict() for g in gates]}
    atomic_write_json(ctx.path("report_json"), report)
    atomic_write_text(ctx.path("report"), _markdown(outputs, gates))
    ctx.tracker.log(outputs.scalars())
    return StageResult(outputs, gates)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _markdown(o: RewardValidationOutputs, gates: list[Gate]) -> str:
    lines = ["# Reward model validation", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in o.scalars().items()]
    lines += ["", "## Gates", ""]
    lines += [
        f"- {'✅' if g.passed else '❌'} {g.name}: {g.describe_value()} "
        f"(target {g.describe_threshold()})"
        for g in gates
    ]
    c = o.consistency
    lines += [
        "",
        "## Consistency",
        "",
        f"Max |margin difference| of the same pair scored alone vs batched "
        f"{_fmt(c.alone_vs_batch)}, beside longer padding {_fmt(c.padding)}, interleaved in "
        f"reverse order {_fmt(c.order)}: {'consistent' if c.consistent else 'INCONSISTENT'}.",
        "",
        "## Against the length baseline",
        "",
        f"Test accuracy {_fmt(o.reward_accuracy_val)} (strict {_fmt(o.strict_accuracy_val)}, "
        f'ties {_fmt(o.tie_rate_val)}); "the longer reply wins" scores '
        f"{_fmt(o.longer_reply_accuracy_val)} on the same pairs: a margin of "
        f"{_fmt(o.accuracy_over_length_baseline)}.",
        "",
    ]
    if o.accuracy_per_subset:
        lines += ["| subset | pairs | accuracy | longer reply wins |", "|---|---|---|---|"]
        lines += [
            f"| {name} | {row.pairs} | {_fmt(row.accuracy)} | {_fmt(row.longer_reply_accuracy)} |"
            for name, row in o.accuracy_per_subset.items()
        ]
        lines.append("")
    lines += [
        "## Edge cases (reward relative to the chosen response)",
        "",
        f"Mean reward of the chosen responses: {_fmt(o.original_mean_reward)}.",
        "",
        "| case | mean reward | mean vs original | share above original |",
        "|---|---|---|---|",
    ]
    for name, row in o.edge_cases.items():
        lines.append(
            f"| {name} | {_fmt(row.mean_reward)} | {_fmt(row.mean_vs_original)} | "
            f"{_fmt(row.share_above_original)} |"
        )
    lb = o.length_bias
    lines += [
        "",
        "## Length bias",
        "",
        f"Correlation of reward with response length: {_fmt(lb.correlation)} over "
        f"{lb.responses} responses; the RM prefers the longer response in "
        f"{_fmt(lb.rm_prefers_longer)} of pairs that differ in length.",
        "",
        "## Failure modes (most negative margins)",
        "",
    ]
    for f in o.failure_modes:
        lines.append(
            f"- margin {_fmt(f.margin)}: `{f.prompt}` chosen `{f.chosen}` rejected `{f.rejected}`"
        )
    return "\n".join(lines) + "\n"


SPEC = StageSpec(
    number=4,
    name="reward_validation",
    run=run,
    outputs=RewardValidationOutputs,
    sections=("data", "evaluation", "constraints", "gates"),
    upstream=(2, 3),
    adjust=after_reward_model,
)

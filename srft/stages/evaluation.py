"""Stage 7, evaluation: capability retention against the stage-1 baseline, win rate against the
SFT policy by the judge, final KL to the SFT policy, RM accuracy on held-out pairs, reward
interpretability, the reward-hacking check, and the deploy decision."""

from __future__ import annotations

import statistics
from typing import Any

from srft.annotation import build_judge, build_judge_criteria
from srft.artifacts import atomic_write_json, read_json
from srft.config import SrftConfig
from srft.data.pairs import read_pairs
from srft.data.prompts import evaluation_prompts
from srft.decisions import adjust_evaluation
from srft.evaluation.alignment import (
    capability_retention,
    pearson,
    reward_hacking,
    win_rate,
)
from srft.evaluation.benchmarks import run_benchmarks
from srft.models.loading import (
    apply_threads,
    load_policy,
    load_reward_model,
    load_tokenizer,
    resolve_device,
)
from srft.models.reward import pairs_accuracy
from srft.rl.build import build_engine
from srft.rl.measure import PolicySample, sample_policy
from srft.stages.base import StageContext, StageResult, StageSpec

EXAMPLES = 5


def run(ctx: StageContext) -> StageResult:
    config = ctx.config
    apply_threads(config.compute)
    sft_dir = str(ctx.upstream_model(1))
    final_dir, reward_dir = _final_models(ctx)
    judge = build_judge(config)

    # Capability benchmarks against the stage-1 baseline.
    tokenizer = load_tokenizer(final_dir)
    final_policy = load_policy(final_dir, resolve_device(config.compute))
    benchmarks = run_benchmarks(
        final_policy,
        tokenizer,
        config.evaluation.benchmarks,
        config.data.max_prompt_length,
        config.data.max_response_length,
        execute_code=config.evaluation.execute_code,
    )
    del final_policy
    baseline = read_json(ctx.run.manifest(1))["metrics"].get("baseline", {})
    retention, left_out = capability_retention(benchmarks, baseline)

    # Alignment: the final and the SFT policy on held-out prompts, the same prompts for both.
    prompts = evaluation_prompts(config)
    prompts = [p for p in prompts for _ in range(config.evaluation.win_rate_samples)]
    final = sample_policy(
        build_engine(config, final_dir, reward_dir, reference_dir=sft_dir, seed_offset=7),
        prompts,
        judge,
    )
    sft = sample_policy(build_engine(config, sft_dir, reward_dir, seed_offset=7), prompts, judge)
    wins = win_rate(final.judge_scores, sft.judge_scores) if judge else None

    accuracy_val = _held_out_accuracy(ctx, config, reward_dir)
    reward_gain = final.metrics["reward"] - sft.metrics["reward"]
    judge_gain = (
        final.metrics["judge_score"] - sft.metrics["judge_score"] if judge is not None else None
    )
    hacking = reward_hacking(reward_gain, judge_gain)
    interpretability = _interpretability(config, [final, sft])

    c = config.constraints
    gates = [
        ctx.gate("capability_retention", retention, c.min_capability_retention, ">="),
        ctx.gate(
            "win_rate",
            wins,
            c.min_win_rate,
            ">",
            note="" if judge else "no evaluation.judge configured",
        ),
        ctx.gate(
            "kl_divergence",
            final.metrics["kl_per_token_nats"],
            c.kl_target,
            "<=",
            unit="nats/token",
        ),
        ctx.gate("reward_accuracy_val", accuracy_val, c.reward_accuracy_target, ">="),
    ]
    metrics: dict[str, Any] = {
        "final_model": final_dir,
        "reward_model": reward_dir,
        "benchmarks": benchmarks,
        "baseline": baseline,
        "retention": retention,
        "retention_left_out": left_out,
        "win_rate": wins,
        "eval_prompts": len(prompts) // config.evaluation.win_rate_samples,
        "responses_per_policy": len(prompts),
        "final": final.metrics,
        "sft": sft.metrics,
        "final_kl_per_token_nats": final.metrics["kl_per_token_nats"],
        "final_kl_per_sequence_nats": final.metrics["kl_per_sequence_nats"],
        "reward_accuracy_val": accuracy_val,
        "reward_gain": reward_gain,
        "judge_gain": judge_gain,
        "reward_hacking": hacking,
    }
    decision = deploy_decision(ctx, gates, hacking)
    metrics["deploy_decision"] = decision
    report = {"metrics": metrics, "interpretability": interpretability}
    atomic_write_json(ctx.workdir / "evaluation_report.json", report)
    checks = {"reward_hacking": hacking, "deploy_decision": decision, **interpretability}
    return StageResult(metrics=metrics, gates=gates, checks=checks)


def _final_models(ctx: StageContext) -> tuple[str, str]:
    """The final policy and the RM it was last trained against: stage 6's."""
    folder = ctx.upstream(6)
    return str(folder / "model"), str(folder / "reward_model")


def _held_out_accuracy(ctx: StageContext, config: SrftConfig, reward_dir: str) -> float:
    # Stage 2's held-out pairs, the set stage 4 measured: "accuracy maintained" compares alike.
    pairs = read_pairs(ctx.upstream(2) / "pairs_val.jsonl").pairs
    tokenizer = load_tokenizer(reward_dir)
    model = load_reward_model(reward_dir, tokenizer.pad_token_id)
    lengths = (config.data.max_prompt_length, config.data.max_response_length)
    return pairs_accuracy(model, tokenizer, pairs, *lengths)


def _interpretability(config: SrftConfig, samples: list[PolicySample]) -> dict[str, Any]:
    """What the reward tracks: its correlation with response length and, with a criteria
    callable, with each judge criterion; the most and least rewarded responses."""
    prompts = [p for s in samples for p in s.prompts]
    responses = [r for s in samples for r in s.responses]
    rewards = [r for s in samples for r in s.rewards]
    judged = [j for s in samples for j in s.judge_scores]
    found: dict[str, Any] = {
        "reward_length_correlation": pearson(rewards, [len(r.split()) for r in responses]),
    }
    if judged:
        found["reward_judge_correlation"] = pearson(rewards, judged)
    if config.evaluation.judge_criteria:
        criteria_fn = build_judge_criteria(config)
        table = criteria_fn(prompts, responses)
        found["reward_criterion_correlation"] = {
            name: pearson(rewards, [row[name] for row in table]) for name in table[0]
        }
    ranked = sorted(range(len(rewards)), key=lambda i: rewards[i])
    unique: list[int] = []
    for i in ranked:
        if responses[i] not in {responses[j] for j in unique}:
            unique.append(i)

    def rows(indices: list[int]) -> list[dict[str, Any]]:
        return [
            {
                "prompt": prompts[i],
                "response": responses[i],
                "reward": round(rewards[i], 4),
                **({"judge": judged[i]} if judged else {}),
            }
            for i in indices
        ]

    found["most_rewarded"] = rows(unique[::-1][:EXAMPLES])
    found["least_rewarded"] = rows(unique[:EXAMPLES])
    found["mean_reward"] = statistics.fmean(rewards)
    return found


def deploy_decision(ctx: StageContext, gates, hacking: bool | None) -> str:
    """deploy: every gate of the run holds and no reward hacking; rollback: capability
    retention short; stop: anything else."""
    earlier = []
    for number in range(2, 7):
        path = ctx.run.manifest(number)
        if path.exists():
            earlier += [g for g in read_json(path).get("gates", []) if not g["passed"]]
    failed = [g.name for g in gates if not g.passed] + [g["name"] for g in earlier]
    if "capability_retention" in failed:
        return "rollback"
    if failed or hacking:
        return "stop"
    return "deploy"


SPEC = StageSpec(
    number=7,
    name="evaluation",
    run=run,
    sections=("model", "data", "rl_training", "constraints", "compute", "evaluation", "gates"),
    upstream=(1, 2, 3, 5, 6),
    adjust=adjust_evaluation,
)

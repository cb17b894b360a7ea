"""Stage 7, evaluation: capability retention against the stage-1 baseline, win rate against the
SFT policy by the judge, final KL to the SFT policy, RM accuracy on the test pairs, reward
interpretability, the reward-hacking check, and the deploy decision."""

from __future__ import annotations

import statistics

from srft.annotation import build_judge, build_judge_criteria
from srft.artifacts import atomic_write_json
from srft.config import SrftConfig
from srft.data.pairs import read_pairs
from srft.data.prompts import evaluation_prompts
from srft.data.sft import prompts_truncated
from srft.decisions import deploy_decision
from srft.distributed import by_main, rank
from srft.evaluation.alignment import (
    capability_retention,
    pearson,
    reward_hacking,
    win_rate,
)
from srft.evaluation.benchmarks import run_benchmarks
from srft.models.loading import apply_threads
from srft.outputs import (
    EvaluationOutputs,
    Interpretability,
    IterationOutputs,
    PreferenceOutputs,
    RewardExample,
    SFTOutputs,
)
from srft.rl.build import build_sampler, measure_held_out
from srft.rl.engine import sampler_seed
from srft.rl.measure import PolicySample, sample_policy
from srft.stages.base import StageContext, StageResult, StageSpec
from srft.stages.remedies import after_evaluation

EXAMPLES = 5
# The alignment samples' seed, `seed` + this, in both policies.
ALIGNMENT_SEED_OFFSET = 7


def run(ctx: StageContext) -> StageResult:
    config = ctx.config
    apply_threads(config.compute)
    sft = ctx.upstream(SFTOutputs)
    final_models = ctx.upstream(IterationOutputs)
    sft_dir = str(sft.model)
    final_dir, reward_dir = str(final_models.model), str(final_models.reward_model)
    judge = build_judge(config)

    # The final KL, measured as the KL guard and stage 6 measure it: the same number for the
    # same policy. The sampler that measured it (the final policy, the SFT policy as its
    # reference, the RM) serves the benchmarks and the alignment samples too.
    kl, final_sampler = measure_held_out(config, final_dir, reward_dir, sft_dir, judge=None)
    tokenizer = final_sampler.tokenizer

    # Capability benchmarks against the stage-1 baseline.
    benchmarks = run_benchmarks(
        final_sampler.policy.policy,
        tokenizer,
        config.evaluation.benchmarks,
        config.data.max_prompt_length,
        config.data.max_response_length,
        execute_code=config.evaluation.execute_code,
    )
    retention, left_out = capability_retention(benchmarks, sft.baseline)

    # Alignment: the final and the SFT policy on held-out prompts, the same prompts for both,
    # each sampled from the same seed.
    prompts = evaluation_prompts(config)
    prompts = [p for p in prompts for _ in range(config.evaluation.win_rate_samples)]
    final_sampler.generator.manual_seed(sampler_seed(config.seed + ALIGNMENT_SEED_OFFSET, rank()))
    final = sample_policy(final_sampler, prompts, judge)
    # Stage 2's test pairs, the set stage 4 measured: "accuracy maintained" compares alike.
    held_out = read_pairs(ctx.upstream(PreferenceOutputs).test_pairs_file).pairs
    accuracy_val = final_sampler.reward.accuracy(held_out)
    del final_sampler  # the final policy leaves memory before the SFT policy comes in
    sft_sample = sample_policy(
        build_sampler(config, sft_dir, reward_dir, seed_offset=ALIGNMENT_SEED_OFFSET),
        prompts,
        judge,
    )
    wins = win_rate(final.judge_scores, sft_sample.judge_scores) if judge else None

    reward_gain = final.metrics.reward - sft_sample.metrics.reward
    judge_gain = (
        final.metrics.judge_score - sft_sample.metrics.judge_score if judge is not None else None
    )
    hacking = reward_hacking(reward_gain, judge_gain)

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
        ctx.gate("kl_divergence", kl.kl_per_token_nats, c.kl_target, "<=", unit="nats/token"),
        ctx.gate("reward_accuracy_val", accuracy_val, c.reward_accuracy_target, ">="),
    ]
    failed = {g.name for g in [*gates, *ctx.earlier_gates()] if not g.passed}
    outputs = EvaluationOutputs(
        final_model=final_dir,
        reward_model=reward_dir,
        benchmarks=benchmarks,
        baseline=sft.baseline,
        retention=retention,
        retention_left_out=left_out,
        win_rate=wins,
        eval_prompts=len(prompts) // config.evaluation.win_rate_samples,
        truncated_prompts=prompts_truncated(
            tokenizer, evaluation_prompts(config), config.data.max_prompt_length
        ),
        responses_per_policy=len(prompts),
        final=final.metrics,
        sft=sft_sample.metrics,
        final_kl_per_token_nats=kl.kl_per_token_nats,
        final_kl_per_sequence_nats=kl.kl_per_sequence_nats,
        reward_accuracy_val=accuracy_val,
        reward_gain=reward_gain,
        sft_judge_score=sft_sample.metrics.judge_score,
        final_judge_score=final.metrics.judge_score,
        judge_gain=judge_gain,
        reward_hacking=hacking,
        interpretability=_interpretability(config, [final, sft_sample]),
        deploy_decision=deploy_decision(failed, hacking),
    )
    report = outputs.model_dump(mode="json")
    interpretability = report.pop("interpretability")
    atomic_write_json(ctx.path("report"), {"metrics": report, "interpretability": interpretability})
    return StageResult(outputs, gates)


def _interpretability(config: SrftConfig, samples: list[PolicySample]) -> Interpretability:
    """What the reward tracks: its correlation with response length and, with a criteria
    callable, with each judge criterion; the most and least rewarded responses."""
    prompts = [p for s in samples for p in s.prompts]
    responses = [r for s in samples for r in s.responses]
    rewards = [r for s in samples for r in s.rewards]
    judged = [j for s in samples for j in s.judge_scores]
    criteria = None
    if config.evaluation.judge_criteria:
        criteria_fn = build_judge_criteria(config)
        table = by_main(lambda: criteria_fn(prompts, responses))
        criteria = {name: pearson(rewards, [row[name] for row in table]) for name in table[0]}
    ranked = sorted(range(len(rewards)), key=lambda i: rewards[i])
    unique: list[int] = []
    for i in ranked:
        if responses[i] not in {responses[j] for j in unique}:
            unique.append(i)

    def rows(indices: list[int]) -> list[RewardExample]:
        return [
            RewardExample(
                prompt=prompts[i],
                response=responses[i],
                reward=round(rewards[i], 4),
                judge=judged[i] if judged else None,
            )
            for i in indices
        ]

    return Interpretability(
        reward_length_correlation=pearson(rewards, [len(r.split()) for r in responses]),
        reward_judge_correlation=pearson(rewards, judged) if judged else None,
        reward_criterion_correlation=criteria,
        most_rewarded=rows(unique[::-1][:EXAMPLES]),
        least_rewarded=rows(unique[:EXAMPLES]),
        mean_reward=statistics.fmean(rewards),
    )


SPEC = StageSpec(
    number=7,
    name="evaluation",
    run=run,
    outputs=EvaluationOutputs,
    sections=("model", "data", "rl_training", "constraints", "compute", "evaluation", "gates"),
    upstream=(1, 2, 3, 5, 6),
    adjust=after_evaluation,
)

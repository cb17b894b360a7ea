"""Stage 5, RL fine-tuning: PPO, A2C, GRPO or RLOO from the SFT policy against the frozen
stage-3 reward model, or DPO from the SFT policy on stage 2's training pairs, with the KL
guard; the final policy's KL and entropy are the guard's measures of it on the held-out
prompts, for DPO as for the others."""

from __future__ import annotations

import statistics

from srft.annotation import build_judge
from srft.data.pairs import read_pairs
from srft.data.prompts import training_prompts
from srft.data.sft import prompts_truncated
from srft.errors import DataError
from srft.models.loading import apply_threads
from srft.outputs import PreferenceOutputs, RewardOutputs, RLOutputs, SFTOutputs
from srft.rl.build import build_engine, guard_settings
from srft.rl.trainer import latest_checkpoint, train_policy
from srft.stages.base import StageContext, StageResult, StageSpec
from srft.stages.remedies import after_rl


def run(ctx: StageContext) -> StageResult:
    config = ctx.config
    rl = config.rl_training
    apply_threads(config.compute)
    prompts = training_prompts(config)
    examples = _training_pairs(ctx) if rl.offline else prompts
    checkpoints = ctx.checkpoints
    start = latest_checkpoint(checkpoints) if ctx.resume else None
    sft_model = str(ctx.upstream(SFTOutputs).model)
    engine = build_engine(config, sft_model, str(ctx.upstream(RewardOutputs).model), start)
    judge = build_judge(config)
    resumed_from = engine.steps_done
    outcome = train_policy(
        engine,
        examples,
        rl.max_steps,
        checkpoints,
        guard_settings(config),
        ctx.tracker,
        save_interval=config.logging.save_interval,
        log_interval=config.logging.log_interval,
        judge=judge,
        decide=ctx.decide,
        description="stage 5 rl",
    )
    final = outcome.measures
    engine.export_policy(ctx.path("model"))
    trends = _trends(outcome.history)
    if rl.offline:  # no samples in training: the RM's reward of the held-out ones
        trends["reward_first_steps"] = outcome.start_measures.reward
        trends["reward_last_steps"] = final.reward
    outputs = RLOutputs(
        algorithm=rl.algorithm,
        value_model="none" if rl.critic_free else rl.value_model,
        steps=outcome.steps,
        resumed_from_step=resumed_from,
        final_kl_coef=engine.kl_controller.coef,
        episodes=outcome.steps * rl.batch_size,
        rollbacks=outcome.rollbacks,
        stopped_early=outcome.stopped_early,
        truncated_prompts=prompts_truncated(
            engine.tokenizer, prompts, config.data.max_prompt_length
        ),
        **{f"final_{name}": value for name, value in final.model_dump().items()},
        **trends,
        reward_improving=(
            trends["reward_last_steps"] > trends["reward_first_steps"]
            if "reward_last_steps" in trends
            else None
        ),
    )
    c = config.constraints
    gates = [
        ctx.gate("kl_divergence", final.kl_per_token_nats, c.kl_target, "<=", unit="nats/token"),
        ctx.gate("entropy", final.entropy_nats, (c.entropy_min, c.entropy_max), "in", unit="nats"),
    ]
    return StageResult(outputs, gates)


def _trends(history: list[dict[str, float]]) -> dict[str, float]:
    """Reward, judge score and policy loss over the first and the last tenth of the steps."""
    trends: dict[str, float] = {}
    window = max(1, len(history) // 10)
    for name in ("reward", "judge_score", "policy_loss"):
        if history and name in history[0]:
            trends[f"{name}_first_steps"] = statistics.fmean(h[name] for h in history[:window])
            trends[f"{name}_last_steps"] = statistics.fmean(h[name] for h in history[-window:])
    return trends


def _training_pairs(ctx: StageContext) -> list:
    """DPO's data: stage 2's training pairs."""
    path = ctx.upstream(PreferenceOutputs).train_pairs_file
    pairs = read_pairs(path).pairs
    if not pairs:
        raise DataError(f"{path}: no preference pairs, and rl_training.algorithm: DPO needs them")
    return pairs


SPEC = StageSpec(
    number=5,
    name="rl",
    run=run,
    outputs=RLOutputs,
    sections=("model", "data", "rl_training", "constraints", "compute", "evaluation", "gates"),
    upstream=(1, 2, 3),
    needs=lambda config: (1, 2, 3) if config.rl_training.offline else (1, 3),  # DPO: pairs
    adjust=after_rl,
)

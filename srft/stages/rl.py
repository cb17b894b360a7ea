"""Stage 5, RL fine-tuning: PPO, A2C, GRPO or RLOO from the SFT policy against the frozen
stage-3 reward model, with the KL guard; the final policy's KL and entropy are the guard's
measures of it on the held-out prompts."""

from __future__ import annotations

import statistics

from srft.annotation import build_judge
from srft.data.prompts import training_prompts
from srft.data.sft import prompts_truncated
from srft.models.loading import apply_threads
from srft.outputs import RewardOutputs, RLOutputs, SFTOutputs
from srft.rl.build import build_engine, guard_settings
from srft.rl.trainer import latest_checkpoint, train_policy
from srft.stages.base import StageContext, StageResult, StageSpec
from srft.stages.remedies import after_rl


def run(ctx: StageContext) -> StageResult:
    config = ctx.config
    rl = config.rl_training
    apply_threads(config.compute)
    prompts = training_prompts(config)
    checkpoints = ctx.checkpoints
    start = latest_checkpoint(checkpoints) if ctx.resume else None
    sft_model = str(ctx.upstream(SFTOutputs).model)
    engine = build_engine(config, sft_model, str(ctx.upstream(RewardOutputs).model), start)
    judge = build_judge(config)
    resumed_from = engine.steps_done
    outcome = train_policy(
        engine,
        prompts,
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
    trends: dict[str, float] = {}
    history = outcome.history
    window = max(1, len(history) // 10)
    for name in ("reward", "judge_score", "policy_loss"):
        if history and name in history[0]:
            trends[f"{name}_first_steps"] = statistics.fmean(h[name] for h in history[:window])
            trends[f"{name}_last_steps"] = statistics.fmean(h[name] for h in history[-window:])
    outputs = RLOutputs(
        algorithm=rl.algorithm,
        value_model="none" if rl.grouped else rl.value_model,
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
            trends["reward_last_steps"] > trends["reward_first_steps"] if history else None
        ),
    )
    c = config.constraints
    gates = [
        ctx.gate("kl_divergence", final.kl_per_token_nats, c.kl_target, "<=", unit="nats/token"),
        ctx.gate("entropy", final.entropy_nats, (c.entropy_min, c.entropy_max), "in", unit="nats"),
    ]
    return StageResult(outputs, gates)


SPEC = StageSpec(
    number=5,
    name="rl",
    run=run,
    outputs=RLOutputs,
    sections=("model", "data", "rl_training", "constraints", "compute", "evaluation", "gates"),
    upstream=(1, 3),
    adjust=after_rl,
)

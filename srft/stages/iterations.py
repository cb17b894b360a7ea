"""Stage 6, iterative training. Each iteration samples on-policy pairs from the current policy,
annotates them, trains the reward model on old + new pairs (on from the current one, or afresh),
and runs RL again from the current policy against that RM (DPO: on the new pairs, online
iterative DPO), the KL still measured to the SFT policy. An iteration whose judge score falls,
whose KL or entropy leaves its bounds, or whose RM drops under the accuracy target on stage 2's
test pairs is rolled back; the loop stops there, at convergence (a gain under
`iteration.min_improvement`), or at `iteration.max_iterations`."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from srft.annotation import build_annotator, build_judge
from srft.artifacts import atomic_write_json, atomic_write_text, read_json
from srft.config import SrftConfig
from srft.data.candidates import sample_pairs
from srft.data.pairs import PreferencePair, read_pairs, split_by_prompt, write_pairs
from srft.data.prompts import training_prompts
from srft.data.sft import prompts_truncated
from srft.decisions import judge_iteration
from srft.distributed import barrier, from_main, is_main
from srft.models.loading import (
    apply_threads,
    load_policy,
    load_reward_model,
    load_tokenizer,
    resolve_device,
)
from srft.models.reward_trainer import fit_reward_model
from srft.outputs import (
    IterationOutputs,
    IterationRow,
    PolicyMeasures,
    PreferenceOutputs,
    RewardOutputs,
    RLOutputs,
    SFTOutputs,
)
from srft.rl.build import build_engine, guard_settings, reward_scorer
from srft.rl.trainer import train_policy
from srft.stages.base import StageContext, StageResult, StageSpec
from srft.tables import iteration_table

# An iteration's folder holds its new pairs under the names stage 2 gives its own.
TRAIN_PAIRS = PreferenceOutputs.default_path("train_pairs_file")
VAL_PAIRS = PreferenceOutputs.default_path("val_pairs_file")


def run(ctx: StageContext) -> StageResult:
    config = ctx.config
    it = config.iteration
    apply_threads(config.compute)
    sft_dir = str(ctx.upstream(SFTOutputs).model)
    reward = ctx.upstream(RewardOutputs)
    pairs = ctx.upstream(PreferenceOutputs)
    judge = build_judge(config)
    train_pairs = read_pairs(pairs.train_pairs_file).pairs
    val_pairs = read_pairs(pairs.val_pairs_file).pairs
    # stage 2's test pairs: every iteration's RM is measured on these, and trained or
    # selected on none of them
    held_out = read_pairs(pairs.test_pairs_file).pairs
    start_models = (str(ctx.upstream(RLOutputs).model), str(reward.model))

    def models(iteration: int) -> tuple[str, str]:
        """The policy and reward model an iteration ended with; iteration 0 is stages 5 and 3."""
        if iteration == 0:
            return start_models
        folder = ctx.workdir / f"iteration_{iteration}"
        return str(folder / "model"), str(folder / "rm" / "model")

    table_file = ctx.path("table")
    table: list[IterationRow] = []
    if ctx.resume and table_file.exists():
        table = [IterationRow(**row) for row in read_json(table_file)["iterations"]]
    if not table:
        rl = ctx.upstream(RLOutputs)
        scorer = reward_scorer(config, str(reward.model), load_tokenizer(start_models[0]))
        start = _numbers(rl.final_measures(), scorer.accuracy(held_out))
        table.append(IterationRow(iteration=0, status="start", kl_coef=rl.final_kl_coef, **start))
        _write_table(table_file, table)
    for row in table[1:]:  # a resumed run: the pairs of the iterations already done
        if row.status != "rolled_back":
            folder = ctx.workdir / f"iteration_{row.iteration}"
            train_pairs += read_pairs(folder / TRAIN_PAIRS).pairs
            val_pairs += read_pairs(folder / VAL_PAIRS).pairs
    current = [row for row in table if row.status != "rolled_back"][-1]
    stop_reason = "reached iteration.max_iterations"
    if table[-1].status in ("rolled_back", "converged"):
        stop_reason = table[-1].reason
    c = config.constraints
    for number in range(len(table), it.max_iterations + 1):
        if table[-1].status in ("rolled_back", "converged"):
            break
        folder = ctx.workdir / f"iteration_{number}"
        if is_main():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        barrier()
        policy_dir, reward_dir = models(current.iteration)
        new_train, new_val = _on_policy_pairs(
            config, policy_dir, number, {pair.prompt for pair in held_out}
        )
        write_pairs(folder / TRAIN_PAIRS, new_train)
        write_pairs(folder / VAL_PAIRS, new_val)
        train_pairs, val_pairs = train_pairs + new_train, val_pairs + new_val
        reward_dir = _retrain_reward_model(
            config, reward.base, reward_dir, train_pairs, val_pairs, folder
        )
        # DPO learns from the new pairs (from all, should the policy's samples make none)
        examples = (
            (new_train or train_pairs) if config.rl_training.offline else training_prompts(config)
        )
        policy_dir, kl_coef, rollbacks, found = _reinforce(
            ctx,
            config,
            examples,
            policy_dir,
            reward_dir,
            sft_dir,
            folder,
            number,
            current,
            held_out,
        )
        verdict, reason = judge_iteration(
            previous_score=current.score,
            score=found["score"],
            kl_per_token_nats=found["kl_per_token_nats"],
            entropy_nats=found["entropy_nats"],
            reward_accuracy_val=found["reward_accuracy_val"],
            kl_bound_nats=c.kl_target,
            entropy_band=(c.entropy_min, c.entropy_max),
            accuracy_target=c.reward_accuracy_target,
            min_improvement=it.min_improvement,
        )
        row = IterationRow(
            iteration=number,
            status=verdict,
            reason=reason,
            new_pairs=len(new_train) + len(new_val),
            kl_coef=kl_coef,
            rollbacks=rollbacks,
            **found,
        )
        table.append(row)
        _write_table(table_file, table)
        numbers = {
            "iteration": number,
            "score": row.score,
            "kl_per_token_nats": row.kl_per_token_nats,
            "entropy_nats": row.entropy_nats,
        }
        ctx.decide(verdict, reason, numbers)
        if verdict == "rolled_back":
            _remove(folder)
            stop_reason = f"iteration {number} rolled back: {reason}"
            break
        current = row
        if verdict == "converged":
            stop_reason = reason
            break

    policy_dir, reward_dir = models(current.iteration)
    _copy_model(Path(policy_dir), ctx.path("model"))
    _copy_model(Path(reward_dir), ctx.path("reward_model"))
    atomic_write_text(ctx.path("table_markdown"), iteration_table(table))
    gates = [
        ctx.gate("kl_divergence", current.kl_per_token_nats, c.kl_target, "<=", unit="nats/token"),
        ctx.gate(
            "entropy", current.entropy_nats, (c.entropy_min, c.entropy_max), "in", unit="nats"
        ),
    ]
    outputs = IterationOutputs(
        iterations=table,
        best_iteration=current.iteration,
        stop_reason=stop_reason,
        truncated_prompts=prompts_truncated(
            load_tokenizer(start_models[0]), training_prompts(config), config.data.max_prompt_length
        ),
        score_source="judge" if judge else "reward model",
    )
    return StageResult(outputs, gates)


def _on_policy_pairs(
    config: SrftConfig, policy_dir: str, number: int, test_prompts: set[str]
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """New pairs from the policy on prompts that stage 2's test pairs do not hold, split into
    train and validation by prompt as stage 2 splits its own."""
    prompts = [prompt for prompt in training_prompts(config) if prompt not in test_prompts]
    rng = random.Random(config.seed * 131 + number)
    chosen = rng.sample(prompts, min(config.iteration.prompts_per_iteration, len(prompts)))
    policy = load_policy(policy_dir, resolve_device(config.compute))
    found = sample_pairs(
        policy,
        load_tokenizer(policy_dir),
        chosen,
        build_annotator(config),
        config,
        config.seed + 50_000 + number,
    )
    val, train = split_by_prompt(found.pairs, [config.data.validation_fraction], config.seed)
    return train, val


def _retrain_reward_model(
    config: SrftConfig, base: str, current: str, train, val, folder: Path
) -> str:
    """A reward model trained on old + new pairs with the reward_training settings (best epoch
    by validation accuracy): the current one trained on for `iteration.reward_epochs`, or one
    trained afresh from stage 3's starting point (`iteration.reward_model_start: base`)."""
    it = config.iteration
    start, epochs = (
        (current, it.reward_epochs) if it.reward_model_start == "current" else (base, None)
    )
    tokenizer = load_tokenizer(start)
    model = load_reward_model(start, tokenizer.pad_token_id, seed=config.seed)
    model_dir, checkpoints = folder / "rm" / "model", folder / "rm" / "checkpoints"
    fit_reward_model(model, tokenizer, train, val, model_dir, checkpoints, config, epochs=epochs)
    _remove(checkpoints)
    return str(model_dir)


def _reinforce(
    ctx,
    config,
    examples,
    policy_dir,
    reward_dir,
    sft_dir,
    folder: Path,
    number: int,
    previous: IterationRow,
    held_out: list[PreferencePair],
) -> tuple[str, float, int, dict[str, float]]:
    """RL from the current policy on `examples` (prompts; DPO: pairs) against the retrained RM,
    the KL still to the SFT policy.
    The KL penalty starts where the previous RL run's ended: the policy starts as far from
    the reference as that run left it, and a penalty back at `kl_penalty` would let it run
    past the bound before the controller caught up. Iterations may spend more of the KL
    budget than stage 5 (`iteration.kl_fraction`). Returns the policy's folder, the final KL
    coefficient, the KL guard's rollbacks, and the iteration's numbers: the guard's held-out
    measures of the policy it kept, and the retrained RM's accuracy on stage 2's test
    pairs."""
    engine = build_engine(
        config,
        policy_dir,
        reward_dir,
        reference_dir=sft_dir,
        seed_offset=number,
        kl_fraction=config.iteration.kl_fraction,
    )
    rl = config.rl_training
    if (rl.adaptive_kl or rl.offline) and previous.kl_coef is not None:
        engine.kl_controller.coef = max(engine.kl_controller.coef, previous.kl_coef)
    outcome = train_policy(
        engine,
        examples,
        config.iteration.rl_steps,
        folder / "checkpoints",
        guard_settings(config),
        ctx.tracker,
        save_interval=config.logging.save_interval,
        log_interval=config.logging.log_interval,
        judge=build_judge(config),
        decide=ctx.decide,
        description=f"stage 6 iteration {number}",
        step_offset=number * 100_000,
    )
    engine.export_policy(folder / "model")
    _remove(folder / "checkpoints")
    assert outcome.measures is not None
    # the main process's numbers: every process then takes the same verdict
    found = from_main(_numbers(outcome.measures, engine.reward_fn.accuracy(held_out)))
    return str(folder / "model"), engine.kl_controller.coef, outcome.rollbacks, found


def _numbers(measures: PolicyMeasures, reward_accuracy_val: float) -> dict[str, float]:
    """An iteration row's numbers: score (judge, else RM reward), reward, KL to SFT and
    entropy on the held-out prompts, and the RM's accuracy on stage 2's test pairs."""
    return {
        "score": measures.reward if measures.judge_score is None else measures.judge_score,
        "reward": measures.reward,
        "kl_per_token_nats": measures.kl_per_token_nats,
        "entropy_nats": measures.entropy_nats,
        "reward_accuracy_val": reward_accuracy_val,
    }


def _write_table(path: Path, table: list[IterationRow]) -> None:
    atomic_write_json(path, {"iterations": [row.model_dump(mode="json") for row in table]})


def _copy_model(source: Path, target: Path) -> None:
    if is_main():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)


def _remove(folder: Path) -> None:
    if is_main():
        shutil.rmtree(folder, ignore_errors=True)


SPEC = StageSpec(
    number=6,
    name="iterations",
    run=run,
    outputs=IterationOutputs,
    sections=(
        "model",
        "data",
        "annotation",
        "reward_training",
        "rl_training",
        "iteration",
        "constraints",
        "compute",
        "evaluation",
        "gates",
    ),
    upstream=(1, 2, 3, 5),
)

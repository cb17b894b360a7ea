"""Stage 6, iterative training. Each iteration samples on-policy pairs from the current policy,
annotates them, retrains the reward model on old + new pairs, and runs RL again from the current
policy against the retrained RM (the KL stays measured to the SFT policy). An iteration whose
judge score falls, whose KL or entropy leaves its bounds, or whose RM drops under the accuracy
target on stage 2's held-out pairs is rolled back; the loop stops there, at convergence (a gain
under `iteration.min_improvement`), or at `iteration.max_iterations`."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

from srft.annotation import build_annotator, build_judge
from srft.artifacts import atomic_write_json, atomic_write_text, read_json
from srft.config import SrftConfig
from srft.data.candidates import sample_pairs
from srft.data.pairs import PreferencePair, read_pairs, write_pairs
from srft.data.prompts import evaluation_prompts, training_prompts
from srft.models.loading import (
    apply_threads,
    load_policy,
    load_reward_model,
    load_tokenizer,
    resolve_device,
)
from srft.models.reward import pairs_accuracy
from srft.models.reward_trainer import fit_reward_model
from srft.report import iteration_table
from srft.rl.build import build_engine, guard_settings
from srft.rl.measure import measure_policy
from srft.rl.trainer import train_policy
from srft.stages.base import StageContext, StageResult, StageSpec

TABLE = "iterations.json"


def run(ctx: StageContext) -> StageResult:
    config = ctx.config
    it = config.iteration
    apply_threads(config.compute)
    sft_dir = str(ctx.upstream_model(1))
    judge = build_judge(config)
    eval_prompts = evaluation_prompts(config)
    pairs_dir = ctx.upstream(2)
    train_pairs = read_pairs(pairs_dir / "pairs_train.jsonl").pairs
    val_pairs = read_pairs(pairs_dir / "pairs_val.jsonl").pairs
    held_out = list(val_pairs)  # stage 2's: every iteration's RM is measured on these
    reward_base = read_json(ctx.run.manifest(3))["metrics"]["base"]

    table_file = ctx.workdir / TABLE
    table: list[dict[str, Any]] = []
    if ctx.resume and table_file.exists():
        table = read_json(table_file)["iterations"]
    if not table:
        policy_dir, reward_dir = _models(ctx, 0)
        start = _measure(config, policy_dir, reward_dir, sft_dir, eval_prompts, judge, held_out)
        table.append({"iteration": 0, "status": "start", **start})
        _write_table(table_file, table)
    for row in table[1:]:  # a resumed run: the pairs of the iterations already done
        if row["status"] != "rolled_back":
            folder = ctx.workdir / f"iteration_{row['iteration']}"
            train_pairs += read_pairs(folder / "pairs_train.jsonl").pairs
            val_pairs += read_pairs(folder / "pairs_val.jsonl").pairs
    current = [row for row in table if row["status"] != "rolled_back"][-1]
    stop_reason = "reached iteration.max_iterations"
    if table[-1]["status"] in ("rolled_back", "converged"):
        stop_reason = table[-1]["reason"]
    for number in range(len(table), it.max_iterations + 1):
        if table[-1]["status"] in ("rolled_back", "converged"):
            break
        folder = ctx.workdir / f"iteration_{number}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        policy_dir, reward_dir = _models(ctx, current["iteration"])
        new_train, new_val = _on_policy_pairs(config, policy_dir, number)
        write_pairs(folder / "pairs_train.jsonl", new_train)
        write_pairs(folder / "pairs_val.jsonl", new_val)
        train_pairs, val_pairs = train_pairs + new_train, val_pairs + new_val
        reward_dir = _retrain_reward_model(config, reward_base, train_pairs, val_pairs, folder)
        policy_dir, kl_coef = _reinforce(
            ctx, config, policy_dir, reward_dir, sft_dir, folder, number
        )
        row = {
            "iteration": number,
            "new_pairs": len(new_train) + len(new_val),
            "kl_coef": kl_coef,
            **_measure(config, policy_dir, reward_dir, sft_dir, eval_prompts, judge, held_out),
        }
        verdict, reason = judge_iteration(config, current, row)
        row["status"], row["reason"] = verdict, reason
        table.append(row)
        _write_table(table_file, table)
        numbers = {k: row[k] for k in ("iteration", "score", "kl_per_token_nats", "entropy_nats")}
        ctx.decide(verdict, reason, numbers)
        if verdict == "rolled_back":
            shutil.rmtree(folder, ignore_errors=True)
            stop_reason = f"iteration {number} rolled back: {reason}"
            break
        current = row
        if verdict == "converged":
            stop_reason = reason
            break

    policy_dir, reward_dir = _models(ctx, current["iteration"])
    _copy_model(Path(policy_dir), ctx.workdir / "model")
    _copy_model(Path(reward_dir), ctx.workdir / "reward_model")
    atomic_write_text(ctx.workdir / "iterations.md", iteration_table(table))
    c = config.constraints
    gates = [
        ctx.gate(
            "kl_divergence", current["kl_per_token_nats"], c.kl_target, "<=", unit="nats/token"
        ),
        ctx.gate(
            "entropy", current["entropy_nats"], (c.entropy_min, c.entropy_max), "in", unit="nats"
        ),
    ]
    metrics = {
        "iterations": table,
        "best_iteration": current["iteration"],
        "stop_reason": stop_reason,
        "score_source": "judge" if judge else "reward model",
    }
    return StageResult(
        metrics=metrics,
        gates=gates,
        artifacts={"model": "model", "reward_model": "reward_model"},
    )


def _models(ctx: StageContext, iteration: int) -> tuple[str, str]:
    """The policy and reward model an iteration ended with; iteration 0 is stages 5 and 3."""
    if iteration == 0:
        return str(ctx.upstream_model(5)), str(ctx.upstream_model(3))
    folder = ctx.workdir / f"iteration_{iteration}"
    return str(folder / "model"), str(folder / "rm" / "model")


def judge_iteration(
    config: SrftConfig, previous: dict[str, Any], row: dict[str, Any]
) -> tuple[str, str]:
    """accepted, converged (kept, but the gain is below `iteration.min_improvement`) or
    rolled_back (the score fell, or KL or entropy left their bounds)."""
    c = config.constraints
    gain = row["score"] - previous["score"]
    if row["kl_per_token_nats"] > c.kl_target:
        return "rolled_back", f"KL {row['kl_per_token_nats']:.4f} nats/token over {c.kl_target}"
    if not c.entropy_min <= row["entropy_nats"] <= c.entropy_max:
        return (
            "rolled_back",
            f"entropy {row['entropy_nats']:.4f} nats outside [{c.entropy_min}, {c.entropy_max}]",
        )
    if row["reward_accuracy_val"] < c.reward_accuracy_target:
        return "rolled_back", (
            f"retrained RM accuracy {row['reward_accuracy_val']:.4f} under "
            f"{c.reward_accuracy_target}"
        )
    if gain < 0:
        return "rolled_back", f"score fell by {-gain:.4f}"
    if gain < config.iteration.min_improvement:
        return "converged", f"score gain {gain:.4f} below {config.iteration.min_improvement}"
    return "accepted", f"score up by {gain:.4f}"


def _on_policy_pairs(
    config: SrftConfig, policy_dir: str, number: int
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    prompts = training_prompts(config)
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
    pairs = found.pairs
    cut = int(len(pairs) * 0.8)
    return pairs[:cut], pairs[cut:]


def _retrain_reward_model(config: SrftConfig, base: str, train, val, folder: Path) -> str:
    """A reward model trained afresh from stage 3's starting point on old + new pairs, with the
    reward_training settings (best epoch by validation accuracy)."""
    tokenizer = load_tokenizer(base)
    model = load_reward_model(base, tokenizer.pad_token_id, seed=config.seed)
    fit_reward_model(model, tokenizer, train, val, folder / "rm", config)
    shutil.rmtree(folder / "rm" / "checkpoints", ignore_errors=True)
    return str(folder / "rm" / "model")


def _reinforce(
    ctx, config, policy_dir, reward_dir, sft_dir, folder: Path, number: int
) -> tuple[str, float]:
    """RL from the current policy against the retrained RM, the KL still to the SFT policy. The
    KL penalty starts again from `kl_penalty`: a retrained RM has a reward scale of its own."""
    # Iterations may spend more of the KL budget than stage 5 used.
    settings = config.model_copy(deep=True)
    settings.rl_training.adaptive_kl_fraction = config.iteration.kl_fraction
    engine = build_engine(
        settings, policy_dir, reward_dir, reference_dir=sft_dir, seed_offset=number
    )
    guard = guard_settings(config)
    train_policy(
        engine,
        training_prompts(config),
        config.iteration.rl_steps,
        folder / "checkpoints",
        guard,
        ctx.tracker,
        save_interval=config.logging.save_interval,
        log_interval=config.logging.log_interval,
        judge=build_judge(config),
        decide=ctx.decide,
        description=f"stage 6 iteration {number}",
        step_offset=number * 100_000,
    )
    engine.export_policy(folder / "model")
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    return str(folder / "model"), engine.kl_controller.coef


def _measure(
    config, policy_dir, reward_dir, sft_dir, prompts, judge, val_pairs
) -> dict[str, float]:
    """Score (judge, else RM reward), KL to SFT and entropy on held-out prompts; RM accuracy on
    stage 2's held-out pairs."""
    # Iterations may spend more of the KL budget than stage 5 left used.
    settings = config.model_copy(deep=True)
    settings.rl_training.adaptive_kl_fraction = config.iteration.kl_fraction
    engine = build_engine(settings, policy_dir, reward_dir, reference_dir=sft_dir, seed_offset=99)
    found = measure_policy(engine, prompts, judge)
    rm = engine.reward_fn
    accuracy = pairs_accuracy(
        rm.model,
        rm.tokenizer,
        val_pairs,
        config.data.max_prompt_length,
        config.data.max_response_length,
    )
    return {
        "score": found.get("judge_score", found["reward"]),
        "reward": found["reward"],
        "kl_per_token_nats": found["kl_per_token_nats"],
        "entropy_nats": found["entropy_nats"],
        "reward_accuracy_val": accuracy,
    }


def _write_table(path: Path, table: list[dict[str, Any]]) -> None:
    atomic_write_json(path, {"iterations": table})


def _copy_model(source: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


SPEC = StageSpec(
    number=6,
    name="iterations",
    run=run,
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

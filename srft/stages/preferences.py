"""Stage 2, preference data: sample responses from the SFT policy, annotate them, build
chosen/rejected pairs, measure gap, count and decontamination, hold out validation and test
prompts, write a data report.
Existing pair files (data.train_file) are imported and measured instead."""

from __future__ import annotations

import statistics
from typing import Any

from srft.annotation import build_annotator, build_judge
from srft.artifacts import atomic_write_json, atomic_write_jsonl, atomic_write_text
from srft.config import SrftConfig
from srft.data.candidates import sample_pairs
from srft.data.decontamination import decontaminate
from srft.data.human_labels import HumanLabels, response_id
from srft.data.pairs import PairFile, PreferencePair, read_pairs, split_by_prompt, write_pairs
from srft.data.prompts import training_prompts
from srft.data.quality import preference_gap
from srft.data.sft import prompts_truncated, read_prompt_rows
from srft.distributed import all_sum
from srft.evaluation.benchmarks import benchmark_texts
from srft.gates import Gate
from srft.models.loading import apply_threads, load_policy, load_tokenizer, resolve_device
from srft.outputs import PreferenceOutputs, SFTOutputs
from srft.stages.base import StageContext, StageResult, StageSpec
from srft.stages.remedies import after_preferences


def run(ctx: StageContext) -> StageResult:
    config = ctx.config
    metrics: dict[str, Any] = {}
    if config.data.train_file:
        pairs, val_pairs, dropped = _import_pairs(config)
        metrics["source"] = "file"
        metrics["invalid_rows_dropped"] = dropped
    else:
        pairs, generation = _generate_pairs(ctx)
        val_pairs = None
        metrics["source"] = "generated"
        metrics.update(generation)

    # The user's test pairs, else a share of the prompts held out below
    test_file = _read_test_pairs(config)
    # Decontamination against every evaluation set; contaminated pairs listed and optionally dropped.
    eval_texts = _evaluation_texts(config, test_file)
    everything = pairs + (val_pairs or [])
    decon = decontaminate(
        [(p.prompt, p.chosen, p.rejected) for p in everything],
        eval_texts,
        n=config.data.decontamination_ngram,
    )
    contaminated = [
        {"prompt": everything[i].prompt, "overlap": decon.overlaps[i]} for i in decon.contaminated
    ]
    kept_contaminated = len(decon.contaminated)
    if config.data.drop_contaminated and decon.contaminated:
        bad = set(decon.contaminated)
        n_train = len(pairs)
        pairs = [p for i, p in enumerate(pairs) if i not in bad]
        if val_pairs is not None:
            val_pairs = [p for i, p in enumerate(val_pairs, start=n_train) if i not in bad]
        metrics["contaminated_dropped"] = len(bad)
        kept_contaminated = 0

    pairs, val_pairs, test_pairs = _split(config, pairs, val_pairs, test_file)
    # the pairs the stage made (the user's test pairs are not among them)
    all_pairs = pairs + val_pairs + (test_pairs if test_file is None else [])
    gap = preference_gap(all_pairs, config.data.score_scale)
    # the gate reads the pairs the stage publishes: after the contaminated ones are dropped
    published = 1.0 - kept_contaminated / len(all_pairs) if all_pairs else 1.0

    judge = build_judge(config)
    if judge is not None:
        metrics.update(_judge_agreement(judge, all_pairs))

    write_pairs(ctx.path("train_pairs_file"), pairs)
    write_pairs(ctx.path("val_pairs_file"), val_pairs)
    write_pairs(ctx.path("test_pairs_file"), test_pairs)
    if test_file is not None and test_file.dropped:
        metrics["invalid_rows_dropped"] = (metrics.get("invalid_rows_dropped") or 0) + len(
            test_file.dropped
        )
    metrics.update(
        {
            "pairs": len(all_pairs),
            "pairs_train": len(pairs),
            "pairs_val": len(val_pairs),
            "pairs_test": len(test_pairs),
            "test_source": "split" if test_file is None else "file",
            "unique_prompts": len({p.prompt for p in all_pairs}),
            "preference_gap": gap,
            "decontamination": published,
            "decontamination_found": decon.score,
            "contaminated": len(decon.contaminated),
            "mean_chosen_words": _mean_words(p.chosen for p in all_pairs),
            "mean_rejected_words": _mean_words(p.rejected for p in all_pairs),
        }
    )
    c = config.constraints
    gates = [
        ctx.gate(
            "preference_gap",
            gap,
            c.min_preference_gap,
            ">=",
            note="" if gap is not None else "no annotator scores",
        ),
        ctx.gate("pair_count", float(len(all_pairs)), float(c.min_pairs), ">="),
        ctx.gate("decontamination", published, c.min_decontamination, ">="),
    ]
    report = {
        "metrics": metrics,
        "contaminated_examples": contaminated[:50],
        "gates": [g.to_dict() for g in gates],
    }
    atomic_write_json(ctx.path("data_report_json"), report)
    atomic_write_text(ctx.path("data_report"), _report_markdown(metrics, gates, contaminated))
    ctx.tracker.log({k: v for k, v in metrics.items() if isinstance(v, int | float)})
    files = {} if metrics["source"] == "generated" else {"candidates_file": None}
    return StageResult(PreferenceOutputs(**metrics, **files), gates)


def _generate_pairs(ctx: StageContext) -> tuple[list[PreferencePair], dict[str, Any]]:
    config = ctx.config
    apply_threads(config.compute)
    device = resolve_device(config.compute)
    policy_dir = str(ctx.upstream(SFTOutputs).model)
    tokenizer = load_tokenizer(policy_dir)
    policy = load_policy(policy_dir, device)
    prompts = training_prompts(config)
    a = config.annotation
    annotator = build_annotator(config)
    found = sample_pairs(
        policy, tokenizer, prompts, annotator, config, config.seed + 1000 * ctx.attempt
    )
    pairs, flat_prompts, flat_responses = found.pairs, found.prompts, found.responses
    info: dict[str, Any] = {
        "prompts": len(prompts),
        "truncated_prompts": prompts_truncated(tokenizer, prompts, config.data.max_prompt_length),
        "samples_per_prompt": a.samples_per_prompt,
        "temperature": a.temperature,
        "responses": len(flat_responses),
    }
    labels = annotator if isinstance(annotator, HumanLabels) else None
    if labels is not None:
        info.update(_label_counts(labels))
    ids = [response_id(p, r) for p, r in zip(flat_prompts, flat_responses, strict=True)]
    atomic_write_jsonl(
        ctx.path("candidates_file"),
        [
            {
                "id": key,
                "prompt": prompt,
                "response": response,
                "score": score,
                "labelled_by": _labeller(labels, key),
            }
            for key, prompt, response, score in zip(
                ids, flat_prompts, flat_responses, found.scores, strict=True
            )
        ],
    )
    judge = build_judge(config)
    if judge is not None:
        # The SFT policy's mean judge score over its sampled responses: the room RL has.
        info["policy_mean_judge_score"] = statistics.fmean(judge(flat_prompts, flat_responses))
    return pairs, info


def _labeller(labels: HumanLabels | None, key: str) -> str:
    if labels is None:
        return "annotator"
    return "human" if key in labels.labels else "ai"


def _label_counts(labels: HumanLabels) -> dict[str, Any]:
    """Responses labelled by humans and by the AI, over every process's chunks, and their
    agreement where both labelled."""
    human, ai, agreed, ordered = all_sum(
        [labels.by_human, labels.by_ai, labels.agreed, labels.ordered]
    )
    return {
        "human_labels": int(human),
        "ai_labels": int(ai),
        "human_ai_agreement": agreed / ordered if ordered else None,
        "human_ai_ordered_pairs": int(ordered),
    }


def _import_pairs(
    config: SrftConfig,
) -> tuple[list[PreferencePair], list[PreferencePair] | None, int]:
    kwargs = {"score_scale": config.data.score_scale, "on_invalid": config.data.on_invalid}
    train = read_pairs(config.data.train_file, **kwargs)  # type: ignore[arg-type]
    dropped = len(train.dropped)
    val = None
    if config.data.validation_file:
        val_file = read_pairs(config.data.validation_file, split="test", **kwargs)
        val = val_file.pairs
        dropped += len(val_file.dropped)
    return train.pairs, val, dropped


def _read_test_pairs(config: SrftConfig) -> PairFile | None:
    if not config.data.test_file:
        return None
    return read_pairs(
        config.data.test_file,
        score_scale=config.data.score_scale,
        on_invalid=config.data.on_invalid,
        split="test",
    )


def _split(
    config: SrftConfig,
    pairs: list[PreferencePair],
    val_pairs: list[PreferencePair] | None,
    test_file: PairFile | None,
) -> tuple[list[PreferencePair], list[PreferencePair], list[PreferencePair]]:
    """(train, validation, test): the splits the user's files do not give are held out from
    `pairs` by prompt, `data.test_fraction` and `data.validation_fraction` of the prompts."""
    held_out = {}
    if test_file is None:
        held_out["test"] = config.data.test_fraction
    if val_pairs is None:
        held_out["val"] = config.data.validation_fraction
    *parts, train = split_by_prompt(pairs, list(held_out.values()), config.seed)
    split = dict(zip(held_out, parts, strict=True))
    test = split["test"] if test_file is None else test_file.pairs
    return train, split.get("val", val_pairs) or [], test


def _evaluation_texts(config: SrftConfig, test_file: PairFile | None) -> list[str]:
    texts: list[str] = []
    for source in config.evaluation.benchmarks.values():
        texts += benchmark_texts(source)
    if config.data.eval_prompts_file:
        texts += [r["prompt"] for r in read_prompt_rows(config.data.eval_prompts_file, ("prompt",))]
    for pair in test_file.pairs if test_file is not None else []:
        texts += [pair.prompt, pair.chosen, pair.rejected]
    return texts


def _judge_agreement(judge, pairs: list[PreferencePair]) -> dict[str, Any]:
    """How often the labels agree with the judge, over pairs the judge orders (ties excluded)."""
    prompts = [p.prompt for p in pairs]
    chosen = judge(prompts, [p.chosen for p in pairs])
    rejected = judge(prompts, [p.rejected for p in pairs])
    ordered = [(c, r) for c, r in zip(chosen, rejected, strict=True) if c != r]
    agree = sum(c > r for c, r in ordered)
    return {
        "label_judge_agreement": agree / len(ordered) if ordered else None,
        "label_judge_disagreement": 1 - agree / len(ordered) if ordered else None,
        "judge_tied_pairs": len(pairs) - len(ordered),
        "judge_gap": statistics.fmean(c - r for c, r in zip(chosen, rejected, strict=True)),
    }


def _mean_words(texts) -> float:
    counts = [len(t.split()) for t in texts]
    return statistics.fmean(counts) if counts else 0.0


def _report_markdown(metrics: dict[str, Any], gates: list[Gate], contaminated: list[dict]) -> str:
    lines = ["# Preference data report", "", "| metric | value |", "|---|---|"]
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    lines += ["", "## Gates", ""]
    for gate in gates:
        mark = "✅" if gate.passed else "❌"
        lines.append(
            f"- {mark} {gate.name}: {gate.describe_value()} (target {gate.describe_threshold()})"
        )
    lines += [
        "",
        "Preference gap: mean over pairs of s(chosen) - s(rejected), with s the annotator's score "
        "normalised to [0, 1].",
        "Decontamination: fraction of training examples (prompt and responses) sharing no n-gram "
        "of n tokens (default 13, shorter texts use their length, minimum 8) with any evaluation "
        "item; a text under 8 tokens is compared whole (equal to an evaluation item, or, from 4 "
        "tokens, held by one). The gate reads the published pairs (decontamination, after "
        "contaminated ones are dropped); decontamination_found is the score before.",
    ]
    if contaminated:
        lines += ["", "## Contaminated examples", ""]
        lines += [f"- `{c['prompt']}`: shares `{c['overlap']}`" for c in contaminated[:50]]
    return "\n".join(lines) + "\n"


SPEC = StageSpec(
    number=2,
    name="preferences",
    run=run,
    outputs=PreferenceOutputs,
    sections=("data", "annotation", "evaluation", "constraints", "gates"),
    upstream=(1,),
    needs=lambda config: () if config.data.train_file else (1,),  # imported pairs need no policy
    adjust=after_preferences,
)

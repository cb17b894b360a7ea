"""Preference pairs from a policy's own samples: several responses per prompt, annotated,
best against worst."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from srft.config import SrftConfig
from srft.data.pairs import PreferencePair
from srft.models.generation import generate

Scorer = Callable[[Sequence[str], Sequence[str]], list[float]]


def best_versus_worst(
    prompt: str, responses: Sequence[str], scores: Sequence[float]
) -> PreferencePair | None:
    """The pair (highest-scored, lowest-scored) among distinct non-empty responses to one prompt,
    or None when fewer than two remain or their scores tie."""
    scored: dict[str, float] = {}
    for response, score in zip(responses, scores, strict=True):
        if response.strip() and response not in scored:
            scored[response] = score
    if len(scored) < 2:
        return None
    ranked = sorted(scored.items(), key=lambda item: item[1])
    (rejected, low), (chosen, high) = ranked[0], ranked[-1]
    if high == low:
        return None
    return PreferencePair(prompt, chosen, rejected, high, low)


@dataclass
class Candidates:
    pairs: list[PreferencePair]
    prompts: list[str]  # one entry per response
    responses: list[str]


def sample_pairs(
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    annotator: Scorer,
    config: SrftConfig,
    seed: int,
) -> Candidates:
    """`annotation.samples_per_prompt` responses per prompt, scored by the annotator (clipped to
    `data.score_scale`), and the best-versus-worst pair of each prompt."""
    a = config.annotation
    samples = generate(
        policy,
        tokenizer,
        prompts,
        max_prompt_length=config.data.max_prompt_length,
        max_new_tokens=config.data.max_response_length,
        samples_per_prompt=a.samples_per_prompt,
        temperature=a.temperature,
        top_p=a.top_p,
        batch_size=a.generation_batch_size,
        seed=seed,
    )
    flat_prompts = [p for p, group in zip(prompts, samples, strict=True) for _ in group]
    flat_responses = [r for group in samples for r in group]
    flat_scores = annotator(flat_prompts, flat_responses)
    low, high = config.data.score_scale
    k = a.samples_per_prompt
    pairs = []
    for i, prompt in enumerate(prompts):
        scores = [min(high, max(low, s)) for s in flat_scores[i * k : (i + 1) * k]]
        pair = best_versus_worst(prompt, samples[i], scores)
        if pair is not None:
            pairs.append(pair)
    return Candidates(pairs, flat_prompts, flat_responses)

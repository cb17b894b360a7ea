"""Preference pairs from a policy's own samples: several responses per prompt, annotated,
best against worst, then the next ones inward."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from srft.config import SrftConfig
from srft.data.pairs import PreferencePair
from srft.distributed import gather_chunks
from srft.models.generation import generate

Scorer = Callable[[Sequence[str], Sequence[str]], list[float]]


def ranked_pairs(
    prompt: str, responses: Sequence[str], scores: Sequence[float], pairs: int = 1
) -> list[PreferencePair]:
    """Up to `pairs` disjoint pairs among the distinct non-empty responses to one prompt: best
    against worst, then second best against second worst, ...; pairs whose scores tie are
    left out."""
    scored: dict[str, float] = {}
    for response, score in zip(responses, scores, strict=True):
        if response.strip() and response not in scored:
            scored[response] = score
    ranked = sorted(scored.items(), key=lambda item: item[1])
    found = []
    for i in range(min(pairs, len(ranked) // 2)):
        (rejected, low), (chosen, high) = ranked[i], ranked[-1 - i]
        if high > low:
            found.append(PreferencePair(prompt, chosen, rejected, high, low))
    return found


@dataclass
class Candidates:
    pairs: list[PreferencePair]
    prompts: list[str]  # one entry per response
    responses: list[str]
    scores: list[float]  # the annotator's, one per response


def sample_pairs(
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    annotator: Scorer,
    config: SrftConfig,
    seed: int,
) -> Candidates:
    """`annotation.samples_per_prompt` responses per prompt, scored by the annotator (clipped to
    `data.score_scale`), and up to `annotation.pairs_per_prompt` ranked pairs of each prompt.

    The prompts are sampled and annotated in chunks of `annotation.generation_batch_size`, each
    seeded from `seed` and its index and done by one process: the pairs are the same whatever
    the number of processes sharing the chunks."""
    a = config.annotation
    size = a.generation_batch_size
    chunks = [prompts[start : start + size] for start in range(0, len(prompts), size)]

    def sample_chunk(c: int) -> tuple[list[list[str]], list[float]]:
        samples = generate(
            policy,
            tokenizer,
            chunks[c],
            max_prompt_length=config.data.max_prompt_length,
            max_new_tokens=config.data.max_response_length,
            samples_per_prompt=a.samples_per_prompt,
            temperature=a.temperature,
            top_p=a.top_p,
            batch_size=size,
            seed=seed * 100_003 + c,  # apart from the chunks of nearby seeds
        )
        flat_prompts = [p for p, group in zip(chunks[c], samples, strict=True) for _ in group]
        return samples, annotator(flat_prompts, [r for group in samples for r in group])

    done = gather_chunks(len(chunks), sample_chunk)
    samples = [group for chunk_samples, _ in done for group in chunk_samples]
    flat_scores = [score for _, chunk_scores in done for score in chunk_scores]
    flat_prompts = [p for p, group in zip(prompts, samples, strict=True) for _ in group]
    flat_responses = [r for group in samples for r in group]
    low, high = config.data.score_scale
    k = a.samples_per_prompt
    pairs = []
    for i, prompt in enumerate(prompts):
        scores = [min(high, max(low, s)) for s in flat_scores[i * k : (i + 1) * k]]
        pairs += ranked_pairs(prompt, samples[i], scores, a.pairs_per_prompt)
    return Candidates(pairs, flat_prompts, flat_responses, flat_scores)

"""Rollouts: batched sampling from the policy with the KV cache, keeping what PPO needs from
each step (the policy's logits and, with a shared value head, the values) so that no second
policy pass is spent on the old log-probabilities; and scoring the samples: log-probabilities,
exact KL to the reference, entropy and reward."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedTokenizerBase

from srft.data.sft import encode_prompt
from srft.distributed import all_sum
from srft.rl.kl import entropy, exact_kl, token_logprobs
from srft.rl.policy import CausalPolicy

#: (prompts, responses, token sequences of prompt + response + EOS) -> scores (batch,)
RewardFunction = Callable[[list[str], list[str], list[list[int]]], torch.Tensor]
#: (input_ids, attention_mask, position_ids) -> the reference's logits at every position
ReferenceLogits = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Samples:
    """Sampled responses; tensors are (batch, response_tokens) unless noted."""

    query_ids: torch.Tensor  # (batch, query_tokens), left-padded
    query_mask: torch.Tensor  # (batch, query_tokens)
    response_ids: torch.Tensor  # pad after the end of each response
    response_mask: torch.Tensor  # float, 1 on generated tokens (EOS included)
    logits: torch.Tensor  # (batch, response_tokens, vocab): the policy at each visited state
    values: torch.Tensor | None  # shared value head's estimates, None with a separate critic


def left_pad(sequences: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token id lists so that every prompt ends at the same column."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, seq in enumerate(sequences):
        ids[i, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        mask[i, width - len(seq) :] = 1
    return ids, mask


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding: 0 at each sequence's first real token."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def sample(
    model: CausalPolicy,
    query_ids: torch.Tensor,
    query_mask: torch.Tensor,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    lockstep: bool = False,
    group_size: int = 1,
) -> Samples:
    """Sample up to `max_new_tokens` tokens per query from the policy's own distribution,
    stopping each sequence at EOS; the KV cache makes each step cost one token's forward. With
    `group_size` k, each query is sampled k times (its k samples side by side) from one
    prefill: the queries' forward runs once and its KV cache is expanded to the k samples. In
    `lockstep` (a sharded policy, whose every forward all processes run together), sampling
    goes on until every process's sequences have stopped."""
    device = query_ids.device
    cache = DynamicCache()
    logits, values = model.step(query_ids, query_mask, position_ids(query_mask), cache)
    if group_size > 1:
        cache.batch_repeat_interleave(group_size)
        query_ids, query_mask, logits = (
            t.repeat_interleave(group_size, dim=0) for t in (query_ids, query_mask, logits)
        )
        if values is not None:
            values = values.repeat_interleave(group_size, dim=0)
    batch = query_ids.shape[0]
    mask = query_mask
    positions = position_ids(query_mask)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    tokens, alive, step_logits, step_values = [], [], [], []
    for step in range(max_new_tokens):
        # In lockstep, a process whose sequences have all stopped only runs the forward with
        # the others: it records nothing and draws nothing from its generator.
        if not bool(finished.all()):
            logits = logits[:, -1].float()
            step_logits.append(logits)
            if values is not None:
                step_values.append(values[:, -1])
            probs = torch.softmax(logits / temperature, dim=-1)
            token = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            token = torch.where(finished, torch.full_like(token, pad_token_id), token)
            alive.append(~finished)
            tokens.append(token)
            finished = finished | (token == eos_token_id)
        if _all_finished(finished, lockstep) or step + 1 == max_new_tokens:
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
        positions = positions[:, -1:] + 1
        logits, values = model.step(token.unsqueeze(-1), mask, positions, cache)
    return Samples(
        query_ids=query_ids,
        query_mask=query_mask,
        response_ids=torch.stack(tokens, dim=1),
        response_mask=torch.stack(alive, dim=1).float(),
        logits=torch.stack(step_logits, dim=1),
        values=torch.stack(step_values, dim=1) if step_values else None,
    )


def _all_finished(finished: torch.Tensor, lockstep: bool) -> bool:
    unfinished = float((~finished).sum())
    return (all_sum([unfinished])[0] if lockstep else unfinished) == 0


@dataclass
class ScoredSample:
    """Sampled responses with what they say about the policy; tensors (batch, response_tokens)
    unless noted."""

    prompts: list[str]
    responses: list[str]
    input_ids: torch.Tensor  # (batch, query + response tokens)
    attention_mask: torch.Tensor
    mask: torch.Tensor  # 1 on generated tokens
    logprobs: torch.Tensor
    reference_logprobs: torch.Tensor
    kl: torch.Tensor  # exact KL(policy || reference) per visited state, nats
    entropy: torch.Tensor  # policy entropy per visited state, nats
    scores: torch.Tensor  # (batch,) raw reward scores
    values: torch.Tensor | None  # the shared value head's estimates; None without one

    @property
    def response_tokens(self) -> int:
        return self.mask.shape[1]


@torch.no_grad()
def sample_and_score(
    policy: CausalPolicy,
    reference_logits: ReferenceLogits,
    tokenizer: PreTrainedTokenizerBase,
    reward: RewardFunction,
    prompts: list[str],
    max_prompt_length: int,
    max_new_tokens: int,
    generator: torch.Generator,
    lockstep: bool = False,
    group_size: int = 1,
) -> ScoredSample:
    """One sampled response per prompt (`group_size` per prompt, side by side, from one
    prefill), with its log-probabilities under the policy and the reference, the exact
    per-token KL and entropy, and its reward. The policy's full logits are dropped here: only
    per-token numbers are kept. `lockstep`: as `sample`'s."""
    device = generator.device
    encoded = [encode_prompt(tokenizer, p, max_prompt_length) for p in prompts]
    query_ids, query_mask = (t.to(device) for t in left_pad(encoded, tokenizer.pad_token_id))
    samples = sample(
        policy,
        query_ids,
        query_mask,
        max_new_tokens,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
        generator,
        lockstep=lockstep,
        group_size=group_size,
    )
    prompts = [prompt for prompt in prompts for _ in range(group_size)]
    encoded = [ids for ids in encoded for _ in range(group_size)]
    mask = samples.response_mask
    input_ids = torch.cat([samples.query_ids, samples.response_ids], dim=1)
    attention_mask = torch.cat([samples.query_mask, mask.long()], dim=1)
    keep = mask.shape[1] + 1
    ref_logits = reference_logits(input_ids, attention_mask, position_ids(attention_mask))
    ref_logits = ref_logits[:, -keep:-1].float()  # a reference held in half precision
    responses, sequences = decode_responses(tokenizer, encoded, samples.response_ids, mask)
    return ScoredSample(
        prompts=prompts,
        responses=responses,
        input_ids=input_ids,
        attention_mask=attention_mask,
        mask=mask,
        logprobs=token_logprobs(samples.logits, samples.response_ids) * mask,
        reference_logprobs=token_logprobs(ref_logits, samples.response_ids) * mask,
        kl=exact_kl(samples.logits, ref_logits) * mask,
        entropy=entropy(samples.logits) * mask,
        scores=reward(prompts, responses, sequences).to(device).float(),
        values=samples.values,
    )


def decode_responses(
    tokenizer: PreTrainedTokenizerBase,
    encoded: list[list[int]],
    response_ids: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[list[str], list[list[int]]]:
    """The responses as text (EOS and special tokens dropped), and each prompt + response + EOS
    as token ids, the sequence a reward model with the policy's tokens scores."""
    responses, sequences = [], []
    for query, ids, row_mask in zip(encoded, response_ids.tolist(), mask.tolist(), strict=True):
        generated = [t for t, m in zip(ids, row_mask, strict=True) if m]
        if generated and generated[-1] == tokenizer.eos_token_id:
            generated = generated[:-1]
        responses.append(tokenizer.decode(generated, skip_special_tokens=True).strip())
        sequences.append(query + generated + [tokenizer.eos_token_id])
    return responses, sequences


def reference_forward(model) -> ReferenceLogits:
    """A frozen causal LM as the reference: its logits at every position, no cache."""

    def logits(input_ids, attention_mask, positions) -> torch.Tensor:
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            use_cache=False,
        )
        return out.logits

    return logits

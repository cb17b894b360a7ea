"""Rollouts: batched sampling from the policy with the KV cache, keeping what PPO needs from
each step (the policy's logits and, with a shared value head, the values) so that no second
policy pass is spent on the old log-probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache

from srft.rl.policy import PolicyWithValue


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
    model: PolicyWithValue,
    query_ids: torch.Tensor,
    query_mask: torch.Tensor,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
) -> Samples:
    """Sample up to `max_new_tokens` tokens per query from the policy's own distribution,
    stopping each sequence at EOS; the KV cache makes each step cost one token's forward."""
    device = query_ids.device
    batch = query_ids.shape[0]
    cache = DynamicCache()
    mask = query_mask
    step_input = query_ids
    positions = position_ids(query_mask)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    tokens, alive, step_logits, step_values = [], [], [], []
    for _ in range(max_new_tokens):
        logits, values = model.step(step_input, mask, positions, cache)
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
        if bool(finished.all()):
            break
        step_input = token.unsqueeze(-1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
        positions = positions[:, -1:] + 1
    return Samples(
        query_ids=query_ids,
        query_mask=query_mask,
        response_ids=torch.stack(tokens, dim=1),
        response_mask=torch.stack(alive, dim=1).float(),
        logits=torch.stack(step_logits, dim=1),
        values=torch.stack(step_values, dim=1) if step_values else None,
    )

"""Batched sampling from a policy with the KV cache."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from srft.data.sft import encode_prompt


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    *,
    max_prompt_length: int,
    max_new_tokens: int,
    samples_per_prompt: int = 1,
    greedy: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 256,
    seed: int = 0,
    strip: bool = True,
) -> list[list[str]]:
    """`samples_per_prompt` responses for each prompt, decoded without special tokens (and
    stripped of surrounding whitespace unless `strip` is False, as code needs its indent)."""
    model.eval()
    device = next(model.parameters()).device
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    pad = tokenizer.pad_token_id
    out: list[list[str]] = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = [
                encode_prompt(tokenizer, p, max_prompt_length)
                for p in prompts[start : start + batch_size]
            ]
            width = max(len(ids) for ids in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attention = torch.zeros_like(input_ids)
            for i, ids in enumerate(chunk):  # left padding, so every prompt ends at the same column
                input_ids[i, width - len(ids) :] = torch.tensor(ids)
                attention[i, width - len(ids) :] = 1
            sampled = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=not greedy,
                temperature=None if greedy else temperature,
                top_p=None if greedy else top_p,
                top_k=None if greedy else 0,
                num_return_sequences=samples_per_prompt,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
                use_cache=True,
            )
            texts = tokenizer.batch_decode(sampled[:, width:], skip_special_tokens=True)
            texts = [t.strip() for t in texts] if strip else texts
            for i in range(len(chunk)):
                out.append(texts[i * samples_per_prompt : (i + 1) * samples_per_prompt])
    finally:
        torch.random.set_rng_state(generator_state)
    return out

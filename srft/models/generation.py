"""Batched sampling from a policy with the KV cache; several samples of a prompt share its
prefill."""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

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
    share_prefill: bool = True,
) -> list[list[str]]:
    """`samples_per_prompt` responses for each prompt, decoded without special tokens (and
    stripped of surrounding whitespace unless `strip` is False, as code needs its indent).

    With several samples per prompt, the prompts' prefill runs once (`shared_prefill`) and
    `generate` samples the copies from it: the samples transformers' own expansion
    (`share_prefill` False) draws, without its prefilling every copy."""
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
            input_ids, attention = input_ids.to(device), attention.to(device)
            shared = {}
            if share_prefill and samples_per_prompt > 1 and width > 1:
                shared = shared_prefill(model, input_ids, attention, samples_per_prompt)
                input_ids, attention = shared.pop("input_ids"), shared.pop("attention_mask")
            sampled = model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                **shared,
                max_new_tokens=max_new_tokens,
                do_sample=not greedy,
                temperature=None if greedy else temperature,
                top_p=None if greedy else top_p,
                top_k=None if greedy else 0,
                num_return_sequences=1 if shared else samples_per_prompt,
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


def shared_prefill(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, copies: int
) -> dict[str, torch.Tensor | DynamicCache]:
    """`generate`'s inputs for `copies` samples of each left-padded prompt, each prompt's copies
    side by side as `num_return_sequences` places them, with the KV cache of every token but the
    last computed once per prompt and repeated to the copies: `generate` then runs the last
    token and samples on. Positions are those `generate` gives left-padded prompts."""
    positions = attention_mask.long().cumsum(-1) - 1
    positions.masked_fill_(attention_mask == 0, 1)
    cache = DynamicCache()
    params = inspect.signature(model.forward).parameters
    argument = "cache" if "cache" in params else "past_key_values"  # as transformers names it
    kept = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    model(
        input_ids=input_ids[:, :-1],
        attention_mask=attention_mask[:, :-1],
        position_ids=positions[:, :-1],
        use_cache=True,
        **{argument: cache},
        **kept,
    )
    cache.batch_repeat_interleave(copies)
    return {
        "input_ids": input_ids.repeat_interleave(copies, dim=0),
        "attention_mask": attention_mask.repeat_interleave(copies, dim=0),
        argument: cache,
    }

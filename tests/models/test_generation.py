"""Sampling several responses per prompt from one shared prefill draws what transformers' own
expansion draws, at every sampling setting stage 2 uses."""

import pytest
import torch

from srft.models.generation import generate
from srft.world.model import build_base_model
from srft.world.tokenizer import build_tokenizer

# prompts of different lengths: left padding differs from row to row
PROMPTS = [
    "kim says : name one fruit . answer :",
    "name two colors . answer :",
    "kim says : please name three animals and one tool . answer :",
]


@pytest.mark.parametrize(("temperature", "top_p", "batch_size"), [(1.0, 1.0, 256), (0.7, 0.9, 2)])
def test_a_shared_prefill_samples_what_expanding_the_prompts_samples(
    temperature, top_p, batch_size
):
    torch.set_num_threads(1)
    tokenizer = build_tokenizer()
    model = build_base_model(tokenizer, hidden_size=64, num_layers=2, seed=0)
    settings = dict(
        max_prompt_length=32,
        max_new_tokens=8,
        samples_per_prompt=4,
        temperature=temperature,
        top_p=top_p,
        batch_size=batch_size,
        seed=3,
    )
    shared = generate(model, tokenizer, PROMPTS * 3, **settings)
    expanded = generate(model, tokenizer, PROMPTS * 3, share_prefill=False, **settings)
    assert shared == expanded
    assert [len(group) for group in shared] == [4] * 9
    assert len({text for group in shared for text in group}) > 20  # samples, not copies

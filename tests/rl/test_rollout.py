"""Rollout helpers: left padding, positions that skip it, decoding the sampled responses, and
a group's samples from one prefill."""

import pytest
import torch

from srft.data.sft import encode_prompt
from srft.rl.policy import PolicyWithValue
from srft.rl.rollout import decode_responses, left_pad, position_ids, sample
from srft.world.model import build_base_model
from srft.world.tokenizer import build_tokenizer


def test_left_pad_ends_every_prompt_at_the_same_column():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_positions_start_at_each_sequences_first_real_token():
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    assert position_ids(mask).tolist() == [[0, 1, 2, 3], [0, 0, 0, 1]]


def test_decoding_drops_eos_and_padding_and_keeps_the_scored_sequence():
    tok = build_tokenizer()
    apple, pear = tok.convert_tokens_to_ids(["apple", "pear"])
    eos, pad = tok.eos_token_id, tok.pad_token_id
    prompts = [[11, 12], [13]]
    response_ids = torch.tensor([[apple, eos, pad], [apple, pear, pear]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])  # the second ran out of tokens
    texts, sequences = decode_responses(tok, prompts, response_ids, mask)
    assert texts == ["apple", "apple pear pear"]
    # prompt + response + EOS: the sequence a reward model sharing the tokens scores
    assert sequences == [[11, 12, apple, eos], [13, apple, pear, pear, eos]]


@pytest.mark.parametrize("value", [True, False])
def test_a_group_shares_one_prefill_and_samples_as_repeated_prompts_do(value):
    tok = build_tokenizer()
    model = PolicyWithValue(
        build_base_model(tok, hidden_size=32, num_layers=1, seed=0), value=value
    )
    if value:  # a value head that does not read 0 everywhere
        torch.nn.init.normal_(model.value_head.weight, generator=torch.Generator().manual_seed(1))
    prompts = ["kim says : name two fruits . answer :", "name one tool please . answer :"]
    encoded = [encode_prompt(tok, p, 16) for p in prompts]
    args = (8, tok.eos_token_id, tok.pad_token_id)
    grouped = sample(
        model,
        *left_pad(encoded, tok.pad_token_id),
        *args,
        torch.Generator().manual_seed(3),
        group_size=3,
    )
    repeated = [ids for ids in encoded for _ in range(3)]
    plain = sample(
        model, *left_pad(repeated, tok.pad_token_id), *args, torch.Generator().manual_seed(3)
    )
    assert torch.equal(grouped.query_ids, plain.query_ids)
    assert torch.equal(grouped.response_ids, plain.response_ids)
    assert torch.equal(grouped.response_mask, plain.response_mask)
    assert torch.allclose(grouped.logits, plain.logits, atol=1e-5)
    if value:
        assert torch.allclose(grouped.values, plain.values, atol=1e-5)
    assert len({tuple(r) for r in grouped.response_ids[:3].tolist()}) > 1  # the group's differ

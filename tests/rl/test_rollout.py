"""Rollout helpers: left padding, positions that skip it, and decoding the sampled responses."""

import torch

from srft.rl.rollout import decode_responses, left_pad, position_ids
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

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

from srft.models.reward import (
    bradley_terry_loss,
    encode_pair_text,
    fit_pair,
    pad_batch,
    pair_accuracy,
    positions_of,
    score_sequences,
    strict_accuracy,
    tie_rate,
)
from srft.world.tokenizer import build_tokenizer


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# --- bradley_terry_loss ----------------------------------------------------------------------


def test_loss_at_zero_margin_is_ln_2():
    # -log sigmoid(0) = -log(1/2) = ln 2 = 0.693147
    assert bradley_terry_loss(t(0.0), t(0.0)).item() == pytest.approx(0.693147, abs=1e-6)
    assert bradley_terry_loss(t(3.0), t(3.0)).item() == pytest.approx(math.log(2))


def test_loss_of_a_correctly_ordered_pair():
    # margin 2 - 0 = 2: -log sigmoid(2) = log(1 + e^-2) = log(1 + 0.135335) = 0.126928
    assert bradley_terry_loss(t(2.0), t(0.0)).item() == pytest.approx(0.126928, abs=1e-6)


def test_loss_of_a_wrongly_ordered_pair():
    # margin 0 - 2 = -2: log(1 + e^2) = 2 + log(1 + e^-2) = 2 + 0.126928 = 2.126928
    assert bradley_terry_loss(t(0.0), t(2.0)).item() == pytest.approx(2.126928, abs=1e-6)


def test_loss_depends_on_the_margin_only():
    # 5 - 3 = 2 - 0 = 2
    assert bradley_terry_loss(t(5.0), t(3.0)).item() == pytest.approx(
        bradley_terry_loss(t(2.0), t(0.0)).item()
    )


def test_loss_is_the_mean_over_pairs():
    # margins 0, 2, -2: (0.693147 + 0.126928 + 2.126928) / 3 = 2.947003 / 3 = 0.982334
    loss = bradley_terry_loss(t(1.0, 2.0, 0.0), t(1.0, 0.0, 2.0))
    assert loss.item() == pytest.approx(0.982334, abs=1e-6)


def test_loss_gradient():
    # d/dr_c of -log sigmoid(r_c - r_r) = -(1 - sigmoid(m)); at m = 0 that is -1/2, and the mean
    # over 2 pairs halves it: -0.25 for each chosen reward, +0.25 for each rejected one.
    chosen = t(0.0, 1.0).requires_grad_()
    rejected = t(0.0, 1.0).requires_grad_()
    bradley_terry_loss(chosen, rejected).backward()
    assert chosen.grad.tolist() == pytest.approx([-0.25, -0.25])
    assert rejected.grad.tolist() == pytest.approx([0.25, 0.25])


def test_loss_is_stable_for_large_margins():
    # -log sigmoid(-1000) = log(1 + e^1000) ~= 1000; a naive log(sigmoid) would give inf.
    assert bradley_terry_loss(t(0.0), t(1000.0)).item() == pytest.approx(1000.0)
    assert bradley_terry_loss(t(1000.0), t(0.0)).item() == pytest.approx(0.0, abs=1e-12)


# --- pair_accuracy ---------------------------------------------------------------------------


def test_pair_accuracy_counts_ties_half():
    # pairs: 1 > 0 win, 2 == 2 tie, 3 < 5 loss, 4 > 1 win: (1 + 0.5 + 0 + 1) / 4 = 2.5 / 4 = 0.625
    assert pair_accuracy(t(1, 2, 3, 4), t(0, 2, 5, 1)) == pytest.approx(0.625)


def test_pair_accuracy_extremes():
    assert pair_accuracy(t(1, 2), t(0, 1)) == 1.0
    assert pair_accuracy(t(0, 1), t(1, 2)) == 0.0
    assert pair_accuracy(t(1, 1), t(1, 1)) == 0.5  # all ties: chance level


def test_strict_accuracy_counts_ties_as_misses_and_the_tie_rate_counts_them():
    chosen, rejected = t(1.0, 2.0, 3.0, 0.5), t(0.0, 2.0, 4.0, 0.5)
    assert pair_accuracy(chosen, rejected) == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert strict_accuracy(chosen, rejected) == pytest.approx(1 / 4)
    assert tie_rate(chosen, rejected) == pytest.approx(2 / 4)
    # a reward model that scores everything the same: half by ties, none strictly
    same = t(0.3, 0.3, 0.3)
    assert (pair_accuracy(same, same), strict_accuracy(same, same), tie_rate(same, same)) == (
        0.5,
        0.0,
        1.0,
    )


def test_pair_accuracy_of_no_pairs_is_nan():
    assert math.isnan(pair_accuracy(t(), t()))


# --- pad_batch -------------------------------------------------------------------------------


def test_pad_batch_right_pads():
    batch = pad_batch([[5, 6, 7], [8], [9, 10]], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"].dtype == torch.long


def test_pad_batch_of_equal_lengths_has_no_padding():
    batch = pad_batch([[1, 2], [3, 4]], pad_token_id=9)
    assert batch["input_ids"].shape == (2, 2)
    assert batch["attention_mask"].tolist() == [[1, 1], [1, 1]]


def test_pad_batch_uses_the_pad_id():
    batch = pad_batch([[1], [2, 3, 4]], pad_token_id=99)
    assert batch["input_ids"].tolist() == [[1, 99, 99], [2, 3, 4]]


# --- encoding and scoring --------------------------------------------------------------------


def test_encode_pair_text():
    tokenizer = build_tokenizer()
    ids = encode_pair_text(tokenizer, "name one fruits", "apple .", max_prompt=8, max_response=8)
    prompt = tokenizer("name one fruits")["input_ids"]  # BOS + 3 words
    assert ids == prompt + tokenizer("apple .", add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id
    ]
    assert len(ids) == 4 + 2 + 1
    assert tokenizer.unk_token_id not in ids


def test_encode_pair_text_truncates():
    tokenizer = build_tokenizer()
    # Prompt keeps its last 2 tokens; response keeps 2 - 1 = 1 word, then EOS.
    ids = encode_pair_text(tokenizer, "name one fruits", "apple , pear .", 2, 2)
    words = tokenizer.convert_ids_to_tokens(ids)
    assert words == ["one", "fruits", "apple", tokenizer.eos_token]


def tiny_reward_model(pad_token_id: int = 0) -> LlamaForSequenceClassification:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=16,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
        pad_token_id=pad_token_id,
        num_labels=1,
    )
    return LlamaForSequenceClassification(config)


def test_score_sequences_does_not_depend_on_batching():
    model = tiny_reward_model()
    sequences = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10], [11]]
    together = score_sequences(model, sequences, pad_token_id=0)
    one_by_one = torch.cat([score_sequences(model, [s], pad_token_id=0) for s in sequences])
    in_pairs = score_sequences(model, sequences, pad_token_id=0, batch_size=2)
    assert together.shape == (4,)
    assert together.device.type == "cpu"
    assert torch.allclose(together, one_by_one, atol=1e-5)
    assert torch.allclose(together, in_pairs, atol=1e-5)


def test_score_sequences_of_nothing():
    assert score_sequences(tiny_reward_model(), [], pad_token_id=0).numel() == 0


def wordpiece_tokenizer():
    """A BERT-style tokenizer: no EOS, a separator."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "c", "x", "y", "z"]
    wordpiece = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return PreTrainedTokenizerFast(
        tokenizer_object=wordpiece,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )


def test_an_encoder_scores_the_sequence_pair():
    # [CLS] prompt [SEP] response [SEP], the prompt cut from the left and the response from the
    # right.
    tokenizer = wordpiece_tokenizer()
    assert tokenizer.eos_token_id is None
    ids = encode_pair_text(tokenizer, "a b c", "x y z", max_prompt=2, max_response=2)
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "b", "c", "[SEP]", "x", "y", "[SEP]"]


def test_fit_pair_cuts_the_prompt_from_the_left_first():
    assert fit_pair([1, 2, 3], [7, 8], 5) == ([1, 2, 3], [7, 8])  # it fits
    assert fit_pair([1, 2, 3], [7, 8], 4) == ([2, 3], [7, 8])
    assert fit_pair([1, 2, 3], [7, 8], 2) == ([], [7, 8])
    assert fit_pair([1, 2, 3], [7, 8], 1) == ([], [7])  # the reply alone is too long
    assert fit_pair([1, 2, 3], [7, 8], 0) == ([], [])


def test_a_pair_longer_than_the_models_positions_is_fitted_into_them():
    tokenizer = wordpiece_tokenizer()
    # 7 tokens asked for, 6 positions: the prompt gives its first token
    ids = encode_pair_text(tokenizer, "a b c", "x y z", 3, 2, max_length=6)
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "c", "[SEP]", "x", "y", "[SEP]"]
    # a causal LM's tokenizer: the EOS stays last, where the reward is read
    words = build_tokenizer()
    ids = encode_pair_text(words, "name one fruits", "apple , pear .", 8, 8, max_length=5)
    assert len(ids) == 5
    assert words.convert_ids_to_tokens(ids) == ["apple", ",", "pear", ".", words.eos_token]


def test_positions_of_reads_the_models_config():
    assert positions_of(tiny_reward_model()) == 32


# --- RewardScorer ----------------------------------------------------------------------------


def word_scorer(policy_tokenizer=None):
    from srft.models.reward import RewardScorer

    tokenizer = build_tokenizer()
    model = tiny_reward_model(pad_token_id=tokenizer.pad_token_id)
    model.resize_token_embeddings(len(tokenizer))
    return RewardScorer(model, tokenizer, 8, 8, policy_tokenizer=policy_tokenizer)


def test_the_scorer_scores_texts_as_encode_pair_text_makes_them():
    scorer = word_scorer()
    prompts, responses = ["kim says : name one fruit"], ["apple"]
    expected = score_sequences(scorer.model, [scorer.encode(prompts[0], responses[0])], 0)
    assert torch.equal(scorer(prompts, responses), expected)


def test_the_scorer_takes_the_policys_tokens_only_when_it_shares_them():
    sequences = [[5, 6, 7, 2]]  # not what the text encodes to
    shared = word_scorer(policy_tokenizer=build_tokenizer())
    assert shared.same_tokens
    direct = score_sequences(shared.model, sequences, shared.tokenizer.pad_token_id)
    assert torch.equal(shared(["kim"], ["apple"], sequences), direct)
    alone = word_scorer()
    assert not alone.same_tokens
    assert torch.equal(alone(["kim"], ["apple"], sequences), alone(["kim"], ["apple"]))


def test_the_scorer_scores_a_pair_longer_than_its_positions():
    scorer = word_scorer()  # 32 positions
    scorer.max_prompt = scorer.max_response = 64
    long_prompt = " ".join(["kim says : name one fruit ."] * 10)  # 61 tokens with BOS
    rewards = scorer([long_prompt], ["apple , pear ."])
    assert rewards.shape == (1,) and torch.isfinite(rewards).all()
    assert len(scorer.encode(long_prompt, "apple , pear .")) == 32
    # the policy's own tokens are fitted the same way: their end kept
    shared = word_scorer(policy_tokenizer=build_tokenizer())
    sequence = list(range(5, 45))  # 40 tokens
    cut = score_sequences(shared.model, [sequence[-32:]], shared.tokenizer.pad_token_id)
    assert torch.equal(shared(["kim"], ["apple"], [sequence]), cut)


def test_the_scorers_accuracy_is_pair_accuracy_of_its_rewards():
    from srft.data.pairs import PreferencePair

    scorer = word_scorer()
    pairs = [PreferencePair("kim", "apple pear", "dog"), PreferencePair("ann", "red", "blue")]
    chosen, rejected = scorer.pairs(pairs)
    assert scorer.accuracy(pairs) == pair_accuracy(chosen, rejected)


def test_the_scorer_counts_the_pairs_it_truncates():
    from srft.data.pairs import PreferencePair
    from srft.models.reward import pair_text_truncated

    words = build_tokenizer()
    whole = encode_pair_text(words, "name one fruits", "apple .", 8, 8)
    assert not pair_text_truncated(words, "name one fruits", "apple .", whole)
    cut = encode_pair_text(words, "name one fruits", "apple .", 8, 8, max_length=5)
    assert pair_text_truncated(words, "name one fruits", "apple .", cut)
    scorer = word_scorer()  # 8 prompt tokens, 8 response tokens (EOS included)
    short, long = "apple .", "apple , pear , apple , pear ."  # 2 and 8 words
    pairs = [
        PreferencePair("name one fruits", short, short),
        PreferencePair("name one fruits", short, long),  # the rejected reply is cut
        PreferencePair("kim says : " * 4 + "name one fruits", short, short),  # the prompt is
    ]
    assert scorer.truncated(pairs) == 2

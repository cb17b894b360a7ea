"""The reward-model probes on a scorer whose reward is the response's word count, so every
expected value can be worked out by hand."""

import pytest
import torch

from srft.data.pairs import PreferencePair
from srft.evaluation.reward_probes import (
    consistency,
    edge_cases,
    failure_modes,
    judge_accuracy,
    length_bias,
    longer_reply_accuracy,
    subset_accuracy,
)


class WordCount:
    """A stand-in RewardScorer: r(prompt, response) = words in the response; tokens = words."""

    def tokenizer(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}

    def __call__(self, prompts, responses, sequences=None):
        return torch.tensor([float(len(r.split())) for r in responses])

    def pairs(self, pairs):
        prompts = [p.prompt for p in pairs]
        return self(prompts, [p.chosen for p in pairs]), self(prompts, [p.rejected for p in pairs])


PAIRS = [
    PreferencePair("p one", "a b c d", "a b"),  # chosen longer: margin 4 - 2 = 2
    PreferencePair("p two", "a", "a b c"),  # chosen shorter: margin 1 - 3 = -2
    PreferencePair("p three", "a b c d e f", "a"),  # margin 6 - 1 = 5
]


def test_a_deterministic_scorer_is_consistent():
    found = consistency(WordCount(), PAIRS)
    assert found.pairs == 3
    assert (found.alone_vs_batch, found.padding, found.order) == (0.0, 0.0, 0.0)
    assert found.consistent


class ReadsPadding(WordCount):
    """A scorer with a padding bug: each reward takes 0.1 per padding position its sequence
    gets in its batch (the batch's longest response minus its own), as a model reading the
    last position instead of the last real token would."""

    def __call__(self, prompts, responses, sequences=None):
        words = [len(r.split()) for r in responses]
        return torch.tensor([n + 0.1 * (max(words) - n) for n in words])


def test_a_scorer_whose_margins_depend_on_the_batch_is_inconsistent():
    found = consistency(ReadsPadding(), PAIRS)
    # batched, the chosen (4, 1, 6 words) pad to 6 and the rejected (2, 3, 1) to 3: rewards
    # 4.2, 1.5, 6 and 2.1, 3, 1.2, margins 2.1, -1.5, 4.8. Alone nothing pads: 2, -2, 5.
    assert found.alone_vs_batch == pytest.approx(0.5)  # "p two": -2 against -1.5
    assert found.padding > 0 and found.order > 0
    assert not found.consistent


def test_the_longer_reply_wins_baseline():
    # chosen longer in "p one" and "p three", shorter in "p two": 2 of 3
    assert longer_reply_accuracy(PAIRS) == pytest.approx(2 / 3)
    tie = PreferencePair("p", "a b", "c d")
    assert longer_reply_accuracy([tie]) == 0.5  # ties counted half


def test_accuracy_per_subset_of_the_pairs_that_name_one():
    pairs = [
        PreferencePair("p", "a b c", "a", subset="chat"),
        PreferencePair("p", "a", "a b c", subset="chat"),
        PreferencePair("q", "a b", "a", subset="code"),
        PreferencePair("r", "a b", "a"),  # no subset: in no row
    ]
    chosen, rejected = torch.tensor([2.0, 1.0, 5.0, 0.0]), torch.tensor([1.0, 1.0, 4.0, 9.0])
    found = subset_accuracy(pairs, chosen, rejected)
    assert list(found) == ["chat", "code"]
    # chat: a win and a tie; the longer reply wins the first and loses the second
    assert (found["chat"].pairs, found["chat"].accuracy) == (2, 0.75)
    assert found["chat"].longer_reply_accuracy == 0.5
    assert (found["code"].pairs, found["code"].accuracy) == (1, 1.0)
    assert subset_accuracy(pairs[3:], chosen[3:], rejected[3:]) is None


def test_edge_cases_against_the_chosen_responses():
    found, original = edge_cases(WordCount(), PAIRS)
    assert original == pytest.approx((4 + 1 + 6) / 3)
    # empty: 0 words, 11/3 under the originals on average, never above
    assert found["empty"].mean_reward == 0.0
    assert found["empty"].mean_vs_original == pytest.approx(-11 / 3)
    assert found["empty"].share_above_original == 0.0
    # truncated to half the words (at least one): 2, 1, 3 against 4, 1, 6
    assert found["truncated"].mean_reward == pytest.approx(2.0)
    # repeated three times: 12, 3, 18; always above
    assert found["repeated"].mean_reward == pytest.approx(11.0)
    assert found["repeated"].share_above_original == 1.0
    # the prompt echoed: 2 words each; above the originals only for "a" (1 word)
    assert found["prompt_echoed"].share_above_original == pytest.approx(1 / 3)


def test_length_bias_of_a_reward_that_is_the_length():
    found = length_bias(WordCount(), PAIRS)
    assert found.correlation == pytest.approx(1.0)
    assert found.responses == 6
    assert found.rm_prefers_longer == 1.0


def test_failure_modes_are_the_negative_margins_worst_first():
    chosen, rejected = WordCount().pairs(PAIRS)
    found = failure_modes(PAIRS, chosen, rejected, k=2)
    assert [(f.prompt, f.margin) for f in found] == [("p two", -2.0)]


def test_judge_accuracy_over_the_pairs_the_judge_orders():
    chosen, rejected = WordCount().pairs(PAIRS)

    def judge(prompts, responses):
        # longer is better for "p one", shorter for "p two"; "p three" is a tie
        taste = {"p one": lambda n: n, "p two": lambda n: 1 / n, "p three": lambda n: 0.5}
        return [taste[p](len(r.split())) for p, r in zip(prompts, responses, strict=True)]

    accuracy, ordered = judge_accuracy(judge, PAIRS, chosen, rejected)
    # p one: judge and RM both prefer the chosen "a b c d": hit
    # p two: judge prefers "a" (chosen), RM prefers the longer rejected: miss
    # p three: tied by the judge, left out
    assert (accuracy, ordered) == (0.5, 2)

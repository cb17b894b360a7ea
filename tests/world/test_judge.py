import random

import pytest

from srft.errors import ConfigError
from srft.world.generate import (
    DemonstratorNoise,
    all_list_prompts,
    demonstration,
    generate_world,
    list_prompt,
)
from srft.world.judge import (
    CRITERIA_WEIGHTS,
    gold_criteria,
    gold_score,
    gold_scores,
    noisy_annotator,
    parse_request,
)
from srft.world.lexicon import CATEGORIES, CATEGORY_OF, FILLERS

# "kim says : name three fruits please . answer :"
PROMPT = list_prompt("kim", "name {count} {category} please", 3, "fruits")
PERFECT = "apple , pear , plum ."

# srft/world/judge.py compares the *set* of in-category items with the *list* of items, so a
# repeated (in-category) item also fails "in_category": a repeat costs 0.30 + 0.15, not 0.15.
# The small world the tests generate: fast, and large enough for every check below.
SMALL = dict(
    n_sft_list=200,
    n_sft_skill=100,
    n_preference_prompts=300,
    n_eval_prompts=40,
    n_benchmark_items=20,
)


# --- parse_request ---------------------------------------------------------------------------


def test_parse_request():
    assert PROMPT == "kim says : name three fruits please . answer :"
    assert parse_request(PROMPT) == (3, "fruits")
    assert parse_request("ana says : list one tools . answer :") == (1, "tools")


def test_parse_request_of_other_prompts():
    assert parse_request("ana says : what comes after b ? answer :") is None
    assert parse_request("list three") is None  # no category
    assert parse_request("list fruits") is None  # no count


# --- gold criteria and score -----------------------------------------------------------------


def test_weights_sum_to_one():
    assert sum(CRITERIA_WEIGHTS.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("response", [PERFECT, "sure : apple , pear , plum ."])
def test_perfect_response_scores_one(response):
    assert gold_criteria(PROMPT, response) == dict.fromkeys(CRITERIA_WEIGHTS, 1.0)
    assert gold_score(PROMPT, response) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        ("apple , um pear , plum .", "concise"),  # a filler word; the list itself is well formed
        ("well apple , pear , plum .", "concise"),
        ("apple , pear , plum", "format"),  # no full stop
        ("apple pear plum .", "format"),  # no commas
        ("apple , pear , dog .", "in_category"),  # a dog is not a fruit
        ("apple , pear .", "count"),  # two items where three were asked
        ("apple , pear , plum , lime .", "count"),  # four items
        ("apple , pear , apple .", "distinct"),  # a repeat
    ],
)
def test_one_flaw_costs_its_weight(response, failed):
    criteria = gold_criteria(PROMPT, response)
    assert criteria[failed] == 0.0
    assert all(value == 1.0 for name, value in criteria.items() if name != failed)
    # e.g. a missing full stop: 1 - weight of "format" = 1 - 0.20 = 0.80
    assert gold_score(PROMPT, response) == pytest.approx(1.0 - CRITERIA_WEIGHTS[failed])


def test_flaw_weights_by_hand():
    assert gold_score(PROMPT, "apple , um pear , plum .") == pytest.approx(0.80)  # 1 - 0.20
    assert gold_score(PROMPT, "apple , pear , plum") == pytest.approx(0.80)  # 1 - 0.20
    assert gold_score(PROMPT, "apple , pear , dog .") == pytest.approx(0.70)  # 1 - 0.30
    assert gold_score(PROMPT, "apple , pear .") == pytest.approx(0.85)  # 1 - 0.15


def test_repeat_costs_only_distinct():
    # Three fruits, one of them twice: only "distinct" fails, 1 - 0.15 = 0.85
    criteria = gold_criteria(PROMPT, "apple , pear , apple .")
    assert criteria["in_category"] == 1.0
    assert gold_score(PROMPT, "apple , pear , apple .") == pytest.approx(0.85)


def test_several_flaws_add_up():
    # Two items (count), a filler (concise), no full stop (format): 1 - 0.15 - 0.20 - 0.20 = 0.45
    assert gold_score(PROMPT, "um apple , pear") == pytest.approx(0.45)
    # Two dogs: in_category, count (2 items) and distinct fail: 1 - 0.3 - 0.15 - 0.15 = 0.40
    assert gold_score(PROMPT, "dog , dog .") == pytest.approx(0.40)


def test_word_outside_the_lexicon_breaks_count_and_format():
    # "banana" is no item the world knows: items are apple and pear (count fails), and the
    # commas no longer alternate with items (format fails): 1 - 0.15 - 0.20 = 0.65
    assert gold_score(PROMPT, "apple , banana , pear .") == pytest.approx(0.65)


def test_empty_response_scores_zero():
    assert gold_score(PROMPT, "") == 0.0
    assert gold_score(PROMPT, "   ") == 0.0


def test_response_without_items_keeps_only_concise():
    # No items: in_category, count, distinct and format fail; no filler, so 0.20 remains.
    assert gold_score(PROMPT, ".") == pytest.approx(0.20)


def test_non_list_prompt_scores_zero():
    prompt = "ana says : what comes after b ? answer :"
    assert gold_criteria(prompt, PERFECT) == dict.fromkeys(CRITERIA_WEIGHTS, 0.0)


def test_gold_scores_matches_gold_score():
    responses = [PERFECT, "apple , pear", ""]
    assert gold_scores([PROMPT] * 3, responses) == [gold_score(PROMPT, r) for r in responses]


def test_gold_scores_needs_equal_lengths():
    with pytest.raises(ValueError):
        gold_scores([PROMPT], [PERFECT, PERFECT])


# --- noisy annotator -------------------------------------------------------------------------

RESPONSES = [
    PERFECT,
    "apple , pear , plum",
    "apple , um pear , plum .",
    "apple , pear , dog .",
    "apple , pear .",
    "dog , dog",
    "",
]


def test_annotator_is_deterministic_for_a_seed():
    prompts = [PROMPT] * len(RESPONSES)
    first = noisy_annotator(prompts, RESPONSES, seed=3)
    assert noisy_annotator(prompts, RESPONSES, seed=3) == first
    # The noise of a response does not depend on the other responses in the call.
    assert noisy_annotator(prompts[:2], RESPONSES[:2], seed=3) == first[:2]


def test_annotator_differs_for_another_seed():
    prompts = [PROMPT] * len(RESPONSES)
    assert noisy_annotator(prompts, RESPONSES, seed=3) != noisy_annotator(
        prompts, RESPONSES, seed=4
    )


def test_annotator_scores_lie_in_the_unit_interval():
    prompts = [PROMPT] * len(RESPONSES)
    for seed in range(20):
        for noise in (0.25, 5.0):  # a large noise pushes scores against both bounds
            scores = noisy_annotator(prompts, RESPONSES, noise=noise, seed=seed)
            assert all(0.0 <= s <= 1.0 for s in scores)


def test_annotator_without_noise_is_the_gold_judge():
    prompts = [PROMPT] * len(RESPONSES)
    assert noisy_annotator(prompts, RESPONSES, noise=0.0, seed=1) == pytest.approx(
        gold_scores(prompts, RESPONSES)
    )


def test_annotator_noise_varies_across_responses():
    # Equal gold scores (0.85 each) get different noisy scores; a small noise keeps them off
    # the clip at 1.
    responses = ["apple , pear .", "pear , plum .", "plum , lime ."]
    scores = noisy_annotator([PROMPT] * 3, responses, noise=0.01, seed=0)
    assert len(set(scores)) == 3


# --- generate_world --------------------------------------------------------------------------


def test_world_is_deterministic_per_seed():
    assert generate_world(5, **SMALL) == generate_world(5, **SMALL)


def test_world_differs_for_another_seed():
    first, second = generate_world(5, **SMALL), generate_world(6, **SMALL)
    assert first.preference_prompts != second.preference_prompts
    assert first.sft != second.sft


def test_world_sizes():
    world = generate_world(0, **SMALL)
    assert len(world.sft) == 200 + 100
    assert len(world.preference_prompts) == 300
    assert len(world.eval_prompts) == 40
    assert sorted(world.benchmarks) == ["last", "next"]
    assert all(len(items) == 20 for items in world.benchmarks.values())


def test_eval_prompts_are_held_out():
    world = generate_world(0, **SMALL)
    eval_prompts = set(world.eval_prompts)
    assert len(eval_prompts) == len(world.eval_prompts)
    assert not eval_prompts & set(world.preference_prompts)
    assert not eval_prompts & {row["prompt"] for row in world.sft}


def test_benchmark_items_are_held_out_of_sft():
    world = generate_world(0, **SMALL)
    benchmark_prompts = [i["prompt"] for items in world.benchmarks.values() for i in items]
    assert len(set(benchmark_prompts)) == len(benchmark_prompts)
    assert not set(benchmark_prompts) & {row["prompt"] for row in world.sft}


def test_prompts_are_list_requests_the_judge_reads():
    world = generate_world(0, **SMALL)
    for prompt in world.preference_prompts + world.eval_prompts:
        assert parse_request(prompt) is not None


def test_demonstrations_fall_short_of_the_gold_judge():
    world = generate_world(0, **SMALL)
    rows = [r for r in world.sft if parse_request(r["prompt"]) is not None]
    assert len(rows) == 200
    mean = sum(gold_score(r["prompt"], r["completion"]) for r in rows) / len(rows)
    assert 0.2 < mean < 0.8  # room for the reward model to learn what is better


def test_the_demonstrators_slips_are_habits():
    # wrong items come from the next category (fruits -> tools), a filler ends the reply
    noise = DemonstratorNoise(
        wrong_item=1.0, wrong_count=0.0, repeat_item=0.0, no_full_stop=0.0, filler=1.0
    )
    names = list(CATEGORIES)
    for seed in range(20):
        words = demonstration(3, "fruits", noise, random.Random(seed)).split()
        items = [w for w in words if w in CATEGORY_OF]
        assert len(items) == 3
        assert {CATEGORY_OF[w] for w in items} == {names[names.index("fruits") + 1]}
        assert words[-1] in FILLERS and words[-2] == "."
    last = demonstration(2, names[-1], noise, random.Random(0)).split()
    assert {CATEGORY_OF[w] for w in last if w in CATEGORY_OF} == {names[0]}  # the order wraps


def test_world_too_small_for_the_prompts():
    # 40 users x 4 templates x 4 counts x 6 categories = 3840 distinct list prompts.
    assert len(all_list_prompts()) == 3840
    # the user's mistake: a ConfigError naming the keys (exit 2, one line)
    with pytest.raises(ConfigError, match="n_eval_prompts: 3841 is more than the world's 3840"):
        generate_world(0, n_preference_prompts=3800, n_eval_prompts=41)

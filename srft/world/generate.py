"""Generate the embedded world's data from a seed.

The world is a small instruction-following domain: a user asks for a list of items of a
category ("kim says : name three fruits please . answer :"). Demonstrations come from an
imperfect demonstrator (wrong-category items, wrong counts, repeats, missing full stops, filler
words), so the SFT policy starts measurably below the gold judge's best. Its slips are habits,
as a person's are: a wrong item comes from the category next to the one asked for, a filler
word closes the reply. A demonstrator that slipped anywhere at random would leave the SFT
policy's per-token entropy above the entropy gate's band before RL begins. Two capability tasks
that the reward never targets (the symbol after a symbol, the last symbol of a sequence) measure retention.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from srft.errors import ConfigError
from srft.world.lexicon import (
    CATEGORIES,
    COUNT_WORDS,
    FILLERS,
    LIST_TEMPLATES,
    SYMBOLS,
    USERS,
)

BENCHMARKS: tuple[str, ...] = ("next", "last")


@dataclass(frozen=True)
class DemonstratorNoise:
    """Probabilities of each flaw in one SFT demonstration."""

    wrong_item: float = 0.35
    wrong_count: float = 0.4
    repeat_item: float = 0.2
    no_full_stop: float = 0.55
    filler: float = 0.65


def list_prompt(user: str, template: str, count: int, category: str) -> str:
    request = template.format(count=COUNT_WORDS[count - 1], category=category)
    return f"{user} says : {request} . answer :"


def all_list_prompts() -> list[str]:
    """Every list prompt the world can pose, in a fixed order."""
    return [
        list_prompt(user, template, count, category)
        for user in USERS
        for template in LIST_TEMPLATES
        for count in range(1, len(COUNT_WORDS) + 1)
        for category in CATEGORIES
    ]


def demonstration(
    prompt_count: int, category: str, noise: DemonstratorNoise, rng: random.Random
) -> str:
    """One demonstrator response to a list request, with the flaws `noise` draws: wrong items
    from the next category in CATEGORIES' order, a filler word at the end."""
    count = prompt_count
    if rng.random() < noise.wrong_count:
        count = max(1, count + rng.choice((-1, 1)))
    items = rng.sample(CATEGORIES[category], count)
    names = list(CATEGORIES)
    others = CATEGORIES[names[(names.index(category) + 1) % len(names)]]
    items = [rng.choice(others) if rng.random() < noise.wrong_item else w for w in items]
    if count > 1 and rng.random() < noise.repeat_item:
        items[-1] = items[0]
    words = ["sure", ":"] if rng.random() < 0.5 else []
    for i, item in enumerate(items):
        words += [item, ","] if i < len(items) - 1 else [item]
    if rng.random() >= noise.no_full_stop:
        words.append(".")
    if rng.random() < noise.filler:
        words.append(rng.choice(FILLERS))
    return " ".join(words)


def next_item(rng: random.Random, user: str) -> dict[str, str]:
    i = rng.randrange(len(SYMBOLS) - 1)
    prompt = f"{user} says : what comes after {SYMBOLS[i]} ? answer :"
    return {"prompt": prompt, "completion": SYMBOLS[i + 1]}


def last_item(rng: random.Random, user: str) -> dict[str, str]:
    seq = rng.choices(SYMBOLS, k=rng.randint(3, 5))
    prompt = f"{user} says : what is the last of {' '.join(seq)} ? answer :"
    return {"prompt": prompt, "completion": seq[-1]}


@dataclass
class WorldData:
    sft: list[dict[str, str]]  # {"prompt", "completion"}
    preference_prompts: list[str]  # stage 2 and RL prompts
    eval_prompts: list[str]  # held out: win rate and evaluation
    benchmarks: dict[str, list[dict[str, str]]]  # name -> [{"prompt", "answer"}]


def generate_world(
    seed: int,
    n_sft_list: int = 3000,
    n_sft_skill: int = 3000,
    n_preference_prompts: int = 3500,
    n_eval_prompts: int = 200,
    n_benchmark_items: int = 100,
    noise: DemonstratorNoise | None = None,
) -> WorldData:
    """All of a world's data; the same seed gives the same world."""
    rng = random.Random(seed)
    noise = noise or DemonstratorNoise()
    prompts = all_list_prompts()
    rng.shuffle(prompts)
    if n_preference_prompts + n_eval_prompts > len(prompts):
        raise ConfigError(
            "world.n_preference_prompts + world.n_eval_prompts: "
            f"{n_preference_prompts + n_eval_prompts} is more than the world's {len(prompts)} "
            "distinct list prompts"
        )
    eval_prompts = prompts[:n_eval_prompts]
    preference_prompts = prompts[n_eval_prompts : n_eval_prompts + n_preference_prompts]
    # SFT demonstrations draw from every prompt except the held-out evaluation ones.
    sft_pool = prompts[n_eval_prompts:]
    sft: list[dict[str, str]] = []
    for _ in range(n_sft_list):
        prompt = rng.choice(sft_pool)
        count = COUNT_WORDS.index(next(w for w in prompt.split() if w in COUNT_WORDS)) + 1
        category = next(w for w in prompt.split() if w in CATEGORIES)
        sft.append({"prompt": prompt, "completion": demonstration(count, category, noise, rng)})
    benchmarks: dict[str, list[dict[str, str]]] = {}
    seen: set[str] = set()
    for name, make in (("next", next_item), ("last", last_item)):
        items = []
        while len(items) < n_benchmark_items:
            item = make(rng, rng.choice(USERS))
            if item["prompt"] not in seen:
                seen.add(item["prompt"])
                items.append({"prompt": item["prompt"], "answer": item["completion"]})
        benchmarks[name] = items
    while len(sft) < n_sft_list + n_sft_skill:
        item = (next_item if rng.random() < 0.5 else last_item)(rng, rng.choice(USERS))
        if item["prompt"] not in seen:
            sft.append(item)
    rng.shuffle(sft)
    return WorldData(sft, preference_prompts, eval_prompts, benchmarks)

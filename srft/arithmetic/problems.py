"""Short arithmetic problems for real small instruct models, generated offline: SFT
demonstrations, prompts for preference generation and RL, held-out prompts, and a
capital-city multiple-choice benchmark that measures what RL should leave intact."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from srft.artifacts import atomic_write_jsonl

INSTRUCTION = "Answer with just the number."
_PROBLEM = re.compile(r"What is (\d+) ([+-]) (\d+)\?")

#: country -> capital, for the retention benchmark (multiple choice by log-likelihood)
CAPITALS: dict[str, str] = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
    "Portugal": "Lisbon", "Japan": "Tokyo", "China": "Beijing", "Russia": "Moscow",
    "Egypt": "Cairo", "Greece": "Athens", "Ireland": "Dublin", "Norway": "Oslo",
    "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen",
    "Austria": "Vienna", "Poland": "Warsaw", "Hungary": "Budapest", "Canada": "Ottawa",
    "Australia": "Canberra", "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago",
    "Argentina": "Buenos Aires", "Mexico": "Mexico City", "Thailand": "Bangkok",
    "Vietnam": "Hanoi", "India": "New Delhi", "Turkey": "Ankara", "Iran": "Tehran",
    "Cuba": "Havana", "Belgium": "Brussels", "Netherlands": "Amsterdam",
    "Switzerland": "Bern", "Czechia": "Prague", "Romania": "Bucharest",
    "Ukraine": "Kyiv", "South Korea": "Seoul", "Indonesia": "Jakarta",
    "Philippines": "Manila",
}  # fmt: skip


@dataclass(frozen=True)
class Problem:
    a: int
    op: str  # "+" or "-"
    b: int

    @property
    def answer(self) -> int:
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def prompt(self) -> str:
        return f"What is {self.a} {self.op} {self.b}? {INSTRUCTION}"

    @property
    def worked(self) -> str:
        """The problem written out with its answer ("7 + 5 = 12"): more than the prompt asks."""
        return f"{self.a} {self.op} {self.b} = {self.answer}"


def parse_problem(prompt: str) -> Problem | None:
    """The problem a prompt asks, or None for any other prompt."""
    found = _PROBLEM.search(prompt)
    if found is None:
        return None
    return Problem(int(found.group(1)), found.group(2), int(found.group(3)))


def all_problems(largest: int) -> list[Problem]:
    """Every sum of two numbers in 0..largest, and every difference that is not negative."""
    numbers = range(largest + 1)
    sums = [Problem(a, "+", b) for a in numbers for b in numbers]
    differences = [Problem(a, "-", b) for a in numbers for b in numbers if a >= b]
    return sums + differences


def write_task(
    folder: Path,
    seed: int = 0,
    largest: int = 20,
    n_sft: int = 256,
    n_eval: int = 100,
) -> dict[str, Path]:
    """Write the task's files into `folder`; returns their paths by name. Held-out prompts are
    problems that no SFT demonstration or training prompt contains. Half the demonstrations
    answer with just the number and half write the sum out, as data gathered from two sources
    would: the policy learns the task in both styles, and the preferences choose the asked one."""
    problems = all_problems(largest)
    random.Random(seed).shuffle(problems)
    held_out, rest = problems[:n_eval], problems[n_eval:]
    paths = {
        "sft": folder / "sft.jsonl",
        "prompts": folder / "prompts.jsonl",
        "eval_prompts": folder / "eval_prompts.jsonl",
        "capitals": folder / "capitals.jsonl",
    }
    demonstrations = [
        {"prompt": p.prompt, "completion": str(p.answer) if i % 2 else p.worked}
        for i, p in enumerate(rest[:n_sft])
    ]
    atomic_write_jsonl(paths["sft"], demonstrations)
    atomic_write_jsonl(paths["prompts"], [{"prompt": p.prompt} for p in rest])
    atomic_write_jsonl(paths["eval_prompts"], [{"prompt": p.prompt} for p in held_out])
    atomic_write_jsonl(paths["capitals"], capital_questions(seed))
    return paths


def capital_questions(seed: int = 0) -> list[dict]:
    """Multiple-choice rows: the capital of each country among four capitals."""
    rng = random.Random(seed)
    capitals = list(CAPITALS.values())
    rows = []
    for country, capital in CAPITALS.items():
        choices = [capital] + rng.sample([c for c in capitals if c != capital], 3)
        rng.shuffle(choices)
        rows.append(
            {
                "prompt": f"What is the capital of {country}?",
                "choices": choices,
                "answer": choices.index(capital),
            }
        )
    return rows

"""SFT demonstrations: JSONL rows {prompt, completion}, tokenised with the loss on the completion."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from srft.config import SrftConfig
from srft.errors import DataError


def json_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a user's JSON Lines file; errors name
    the file, and the line where one is not a JSON object."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a JSONL file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: invalid UTF-8 at byte {err.start}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def read_prompt_rows(path: str | Path, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """JSONL rows that must carry non-empty string `fields`; errors name the file and line."""
    rows = []
    for number, row in json_objects(path):
        for name in fields:
            value = row.get(name)
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{path}:{number}: field '{name}' must be a non-empty string")
        rows.append({name: row[name] for name in fields})
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def prompt_token_ids(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """A prompt's token ids, whole. With a tokenizer that has a chat template, the prompt is one
    user turn followed by the opened assistant turn, as the chat model was trained to see it."""
    if getattr(tokenizer, "chat_template", None):
        turn = [{"role": "user", "content": prompt}]
        encoded = tokenizer.apply_chat_template(turn, add_generation_prompt=True, tokenize=True)
        return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)
    return tokenizer(prompt)["input_ids"]


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, max_length: int) -> list[int]:
    """Prompt token ids, left-truncated to `max_length` (the end of a prompt matters most)."""
    return prompt_token_ids(tokenizer, prompt)[-max_length:]


def prompts_truncated(tokenizer: PreTrainedTokenizerBase, prompts, max_length: int) -> int:
    """How many of `prompts` `encode_prompt` cuts to `max_length` tokens."""
    return sum(len(prompt_token_ids(tokenizer, prompt)) > max_length for prompt in prompts)


def completion_token_ids(tokenizer: PreTrainedTokenizerBase, completion: str) -> list[int]:
    return tokenizer(completion, add_special_tokens=False)["input_ids"]


def encode_completion(
    tokenizer: PreTrainedTokenizerBase, completion: str, max_length: int
) -> list[int]:
    """Completion token ids closed by EOS, truncated to `max_length` tokens in all."""
    return completion_token_ids(tokenizer, completion)[: max_length - 1] + [tokenizer.eos_token_id]


@dataclass
class SFTExample:
    input_ids: list[int]
    labels: list[int]  # -100 on prompt tokens: the loss is on the completion only
    truncated: bool = False  # the prompt or the completion lost tokens to the length limits


def encode_sft(rows, tokenizer, max_prompt: int, max_response: int) -> list[SFTExample]:
    examples = []
    for row in rows:
        prompt = prompt_token_ids(tokenizer, row["prompt"])
        completion = completion_token_ids(tokenizer, row["completion"])
        truncated = len(prompt) > max_prompt or len(completion) > max_response - 1
        prompt = prompt[-max_prompt:]
        completion = completion[: max_response - 1] + [tokenizer.eos_token_id]
        examples.append(
            SFTExample(prompt + completion, [-100] * len(prompt) + completion, truncated)
        )
    return examples


def demonstration_splits(
    config: SrftConfig, tokenizer
) -> tuple[list[SFTExample], list[SFTExample]]:
    """`data.sft_file`'s demonstrations, encoded to the data section's lengths and shuffled
    with the run's seed, as (train, val): stage 1's split, whose training share RL's SFT loss
    takes."""
    data = config.data
    rows = read_prompt_rows(data.sft_file, ("prompt", "completion"))
    random.Random(config.seed).shuffle(rows)
    n_val = max(1, int(len(rows) * data.sft_validation_fraction))
    examples = encode_sft(rows, tokenizer, data.max_prompt_length, data.max_response_length)
    return examples[n_val:], examples[:n_val]


class SFTCollator:
    """Right-pads input ids and labels of a batch of SFTExamples."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[SFTExample]) -> dict[str, torch.Tensor]:
        length = max(len(e.input_ids) for e in batch)
        ids = torch.full((len(batch), length), self.pad_token_id)
        labels = torch.full((len(batch), length), -100)
        mask = torch.zeros((len(batch), length), dtype=torch.long)
        for i, example in enumerate(batch):
            n = len(example.input_ids)
            ids[i, :n] = torch.tensor(example.input_ids)
            labels[i, :n] = torch.tensor(example.labels)
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

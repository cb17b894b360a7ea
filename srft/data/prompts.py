"""The prompt sets of a run: RL and generation prompts, and held-out evaluation prompts."""

from __future__ import annotations

from srft.config import SrftConfig
from srft.data.sft import read_prompt_rows
from srft.errors import SrftError


def training_prompts(config: SrftConfig) -> list[str]:
    """`data.prompts_file`: prompts for preference generation and RL."""
    if not config.data.prompts_file:
        raise SrftError("data.prompts_file: RL needs prompts (JSONL rows {prompt})")
    return [row["prompt"] for row in read_prompt_rows(config.data.prompts_file, ("prompt",))]


def evaluation_prompts(config: SrftConfig) -> list[str]:
    """`data.eval_prompts_file` when set, else the last 10% of the training prompts."""
    if config.data.eval_prompts_file:
        rows = read_prompt_rows(config.data.eval_prompts_file, ("prompt",))
        return [row["prompt"] for row in rows]
    prompts = training_prompts(config)
    return prompts[-max(1, len(prompts) // 10) :]

"""What each stage promises the next ones: one typed record per stage, its files and the
metrics that later stages and the report read.

A stage returns its record; the pipeline writes it into the stage's manifest.json; a later stage
or the report reads it back with `read_outputs`, which validates it against the class (a missing
or renamed field fails loudly) and turns its file fields into paths in the published folder.
File names are spelled here, once, as the defaults of the file fields.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from srft.artifacts import read_json
from srft.errors import SrftError
from srft.run_dir import RunDir


class StageOutputs(BaseModel):
    """The base of every stage's record. Fields of type `Path` are files (or folders) of the
    stage, relative to its folder in the manifest and absolute once read back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    STAGE: ClassVar[int]

    @classmethod
    def file_fields(cls) -> tuple[str, ...]:
        return tuple(name for name, f in cls.model_fields.items() if _is_path(f.annotation))

    @classmethod
    def default_path(cls, name: str) -> Path:
        """The file field `name`'s path relative to the stage folder."""
        if name not in cls.file_fields():
            raise KeyError(f"{cls.__name__} has no file field '{name}'")
        return cls.model_fields[name].default

    def located(self, folder: Path) -> Self:
        """The record with its file fields joined to `folder`."""
        update = {
            name: folder / getattr(self, name)
            for name in self.file_fields()
            if getattr(self, name) is not None
        }
        return self.model_copy(update=update)

    def scalars(self) -> dict[str, Any]:
        """The numbers and strings of the record that are not files (summary.json's metrics)."""
        return scalar_fields(self.model_dump(mode="json"), self.file_fields())


Outputs = TypeVar("Outputs", bound=StageOutputs)


def scalar_fields(record: dict[str, Any], files: Iterable[str]) -> dict[str, Any]:
    """The fields of a record (as JSON) holding a number, a string, a bool or None, files
    left out."""
    leave_out = set(files)
    return {
        name: value
        for name, value in record.items()
        if name not in leave_out and (isinstance(value, int | float | str | bool) or value is None)
    }


def _is_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return Path in typing.get_args(annotation)
    return False


def outputs_from_manifest(
    cls: type[Outputs], manifest: dict[str, Any], folder: Path, check_files: bool = True
) -> Outputs:
    """The record of a stage's manifest, validated, with its files located in `folder` (and,
    with `check_files`, present there)."""
    where = f"{folder / 'manifest.json'}"
    if "outputs" not in manifest:
        raise SrftError(f"{where}: no outputs record; run stage {cls.STAGE} again")
    try:
        record = cls.model_validate(manifest["outputs"])
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise SrftError(
            f"{where}: outputs.{field}: {first['msg']} (the record {cls.__name__} expects it)"
        ) from None
    record = record.located(folder)
    for name in cls.file_fields() if check_files else ():
        path = getattr(record, name)
        if path is not None and not path.exists():
            raise SrftError(f"{where}: outputs.{name}: {path} is missing")
    return record


def read_outputs(run: RunDir, cls: type[Outputs]) -> Outputs:
    """The published record of stage `cls.STAGE` in `run`."""
    path = run.manifest(cls.STAGE)
    if not path.exists():
        raise SrftError(f"{path}: stage {cls.STAGE} has not been published in {run.root}")
    return outputs_from_manifest(cls, read_json(path), run.stage(cls.STAGE))


# ---- stage 1 --------------------------------------------------------------------------------


class SFTOutputs(StageOutputs):
    STAGE: ClassVar[int] = 1
    model: Path = Path("model")
    trained: bool
    train_examples: int
    val_examples: int
    val_loss: float
    val_perplexity: float
    baseline: dict[str, float]  # benchmark name -> score of the SFT policy


# ---- stage 2 --------------------------------------------------------------------------------


class PreferenceOutputs(StageOutputs):
    STAGE: ClassVar[int] = 2
    train_pairs_file: Path = Path("pairs_train.jsonl")
    val_pairs_file: Path = Path("pairs_val.jsonl")
    data_report: Path = Path("data_report.md")
    data_report_json: Path = Path("data_report.json")
    source: Literal["file", "generated"]
    pairs: int
    pairs_train: int
    pairs_val: int
    unique_prompts: int
    preference_gap: float | None
    decontamination: float
    contaminated: int
    contaminated_dropped: int = 0
    mean_chosen_words: float
    mean_rejected_words: float
    # imported pairs
    invalid_rows_dropped: int | None = None
    # generated pairs
    prompts: int | None = None
    samples_per_prompt: int | None = None
    temperature: float | None = None
    responses: int | None = None
    policy_mean_judge_score: float | None = None
    # with a judge
    label_judge_agreement: float | None = None
    label_judge_disagreement: float | None = None
    judge_tied_pairs: int | None = None
    judge_gap: float | None = None


# ---- stage 3 --------------------------------------------------------------------------------


class RewardOutputs(StageOutputs):
    STAGE: ClassVar[int] = 3
    model: Path = Path("model")
    base: str  # what the reward model started from; stage 6 retrains from it
    train_pairs: int
    val_pairs: int
    accuracy_train: float
    accuracy_val: float
    loss_train: float
    loss_val: float
    best_checkpoint: str


# ---- stage 4 --------------------------------------------------------------------------------


class Consistency(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pairs: int
    alone_vs_batch: float
    padding: float
    swap_sign: float
    max_abs_diff: float
    consistent: bool


class EdgeCase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    mean_reward: float
    mean_vs_original: float
    share_above_original: float


class LengthBias(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    correlation: float | None
    responses: int
    rm_prefers_longer: float | None


class FailureMode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt: str
    chosen: str
    rejected: str
    margin: float


class RewardValidationOutputs(StageOutputs):
    STAGE: ClassVar[int] = 4
    report: Path = Path("validation_report.md")
    report_json: Path = Path("validation_report.json")
    held_out_pairs: int
    reward_accuracy_train: float
    reward_accuracy_val: float
    train_val_gap: float
    mean_margin_val: float
    reward_accuracy_judge: float | None = None
    judge_ordered_pairs: int | None = None
    length_correlation: float | None
    consistency_max_abs_diff: float
    consistency: Consistency
    edge_cases: dict[str, EdgeCase]  # empty, truncated, repeated, prompt_echoed
    original_mean_reward: float
    length_bias: LengthBias
    failure_modes: list[FailureMode]


# ---- stage 5 --------------------------------------------------------------------------------


class RLOutputs(StageOutputs):
    STAGE: ClassVar[int] = 5
    model: Path = Path("model")
    algorithm: str
    value_model: str
    steps: int
    resumed_from_step: int
    final_kl_coef: float
    episodes: int
    rollbacks: int
    stopped_early: bool
    final_kl_per_token_nats: float
    final_kl_per_sequence_nats: float
    final_entropy_nats: float
    final_reward: float
    final_response_tokens: float
    final_judge_score: float | None = None
    reward_first_steps: float | None = None
    reward_last_steps: float | None = None
    judge_score_first_steps: float | None = None
    judge_score_last_steps: float | None = None
    policy_loss_first_steps: float | None = None
    policy_loss_last_steps: float | None = None
    reward_improving: bool | None = None


# ---- stage 6 --------------------------------------------------------------------------------


class IterationRow(BaseModel):
    """One row of stage 6's table; iteration 0 is stage 5's policy with stage 3's RM."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    iteration: int
    status: Literal["start", "accepted", "converged", "rolled_back"]
    reason: str = ""
    new_pairs: int = 0
    kl_coef: float | None = None
    score: float
    reward: float
    kl_per_token_nats: float
    entropy_nats: float
    reward_accuracy_val: float


class IterationOutputs(StageOutputs):
    STAGE: ClassVar[int] = 6
    model: Path = Path("model")
    reward_model: Path = Path("reward_model")
    table: Path = Path("iterations.json")
    table_markdown: Path = Path("iterations.md")
    iterations: list[IterationRow]
    best_iteration: int
    stop_reason: str
    score_source: Literal["judge", "reward model"]


# ---- stage 7 --------------------------------------------------------------------------------


class PolicyMeasures(BaseModel):
    """Means over a policy's sampled responses on held-out prompts."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kl_per_token_nats: float
    kl_per_sequence_nats: float
    entropy_nats: float
    reward: float
    response_tokens: float
    judge_score: float | None = None


class RewardExample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt: str
    response: str
    reward: float
    judge: float | None = None


class Interpretability(BaseModel):
    """What the reward tracks, over the final and the SFT policy's responses."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    reward_length_correlation: float | None
    reward_judge_correlation: float | None = None
    reward_criterion_correlation: dict[str, float | None] | None = None
    most_rewarded: list[RewardExample]
    least_rewarded: list[RewardExample]
    mean_reward: float


class EvaluationOutputs(StageOutputs):
    STAGE: ClassVar[int] = 7
    report: Path = Path("evaluation_report.json")
    final_model: str
    reward_model: str
    benchmarks: dict[str, float]
    baseline: dict[str, float]
    retention: float | None
    retention_left_out: list[str]
    win_rate: float | None
    eval_prompts: int
    responses_per_policy: int
    final: PolicyMeasures
    sft: PolicyMeasures
    final_kl_per_token_nats: float
    final_kl_per_sequence_nats: float
    reward_accuracy_val: float
    reward_gain: float
    judge_gain: float | None
    reward_hacking: bool | None
    interpretability: Interpretability
    deploy_decision: Literal["deploy", "rollback", "stop"]

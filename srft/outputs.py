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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from srft.artifacts import read_json
from srft.errors import SrftError
from srft.run_dir import RunDir


class Record(BaseModel):
    """A record a stage hands on, or a part of one: fixed fields (an unknown one is an error),
    read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StageOutputs(Record):
    """The base of every stage's record. Fields of type `Path` are files (or folders) of the
    stage, relative to its folder in the manifest and absolute once read back."""

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
    model: Path = Field(Path("model"), description="the SFT policy (save_pretrained)")
    trained: bool = Field(description="false when model.sft_checkpoint was evaluated as given")
    train_examples: int = Field(description="SFT demonstrations trained on")
    val_examples: int = Field(description="demonstrations held out for perplexity")
    val_loss: float = Field(description="mean token cross-entropy on them, nats")
    val_perplexity: float = Field(description="exp(val_loss)")
    truncated_examples: int | None = Field(
        None,
        description="demonstrations whose prompt or completion lost tokens to "
        "data.max_prompt_length / data.max_response_length",
    )
    baseline: dict[str, float] = Field(
        description="benchmark name -> the SFT policy's score, what retention compares with"
    )


# ---- stage 2 --------------------------------------------------------------------------------


class PreferenceOutputs(StageOutputs):
    STAGE: ClassVar[int] = 2
    train_pairs_file: Path = Field(
        Path("pairs_train.jsonl"), description="pairs the reward model trains on (JSONL)"
    )
    val_pairs_file: Path = Field(
        Path("pairs_val.jsonl"), description="pairs for the reward model's epoch selection (JSONL)"
    )
    test_pairs_file: Path = Field(
        Path("pairs_test.jsonl"),
        description="the test pairs, never trained or selected on: stages 4, 6 and 7 measure the "
        "reward model on them (JSONL)",
    )
    candidates_file: Path | None = Field(
        Path("candidates.jsonl"),
        description="generated pairs: every sampled response with its id, score and labeller "
        "(human, ai or annotator), to label by hand (annotation.labels_file); None for imported "
        "pairs",
    )
    data_report: Path = Field(Path("data_report.md"), description="the data report")
    data_report_json: Path = Field(
        Path("data_report.json"), description="the data report's numbers and contaminated pairs"
    )
    source: Literal["file", "generated"] = Field(
        description="pairs imported from data.train_file, or sampled and annotated"
    )
    pairs: int = Field(
        description="pairs kept, train, validation and test (but data.test_file's pairs)"
    )
    pairs_train: int = Field(description="pairs in train_pairs_file")
    pairs_val: int = Field(description="pairs in val_pairs_file")
    pairs_test: int = Field(description="pairs in test_pairs_file")
    test_source: Literal["split", "file"] = Field(
        description="the test pairs: held out by prompt (data.test_fraction), or data.test_file"
    )
    unique_prompts: int = Field(description="distinct prompts among the pairs")
    preference_gap: float | None = Field(
        description="mean of s(chosen) - s(rejected), s the annotator's score in [0, 1]; "
        "None without scores"
    )
    decontamination: float = Field(
        description="fraction of the published pairs sharing no n-gram with an evaluation item "
        "(the gate's value)"
    )
    decontamination_found: float | None = Field(
        None, description="the same fraction over the pairs before contaminated ones were dropped"
    )
    contaminated: int = Field(description="pairs sharing one, found before any was dropped")
    contaminated_dropped: int = Field(0, description="of those, dropped (data.drop_contaminated)")
    mean_chosen_words: float = Field(description="mean length of the chosen responses, words")
    mean_rejected_words: float = Field(description="mean length of the rejected ones, words")
    invalid_rows_dropped: int | None = Field(
        None, description="imported pairs: invalid rows dropped (data.on_invalid: drop)"
    )
    prompts: int | None = Field(None, description="generated pairs: prompts sampled")
    truncated_prompts: int | None = Field(
        None, description="prompts cut to data.max_prompt_length to sample responses"
    )
    human_labels: int | None = Field(
        None, description="annotation.labels_file: responses labelled by humans"
    )
    ai_labels: int | None = Field(
        None, description="annotation.hybrid: responses labelled by the AI annotator instead"
    )
    human_ai_agreement: float | None = Field(
        None,
        description="annotation.hybrid: share of the response pairs humans order that the AI "
        "orders alike, over the responses both labelled (AI ties half)",
    )
    human_ai_ordered_pairs: int | None = Field(
        None, description="the response pairs that agreement is over"
    )
    samples_per_prompt: int | None = Field(None, description="generated pairs: responses each")
    temperature: float | None = Field(None, description="generated pairs: sampling temperature")
    responses: int | None = Field(None, description="generated pairs: responses sampled")
    policy_mean_judge_score: float | None = Field(
        None, description="the judge's mean score of the sampled responses, in [0, 1]"
    )
    label_judge_agreement: float | None = Field(
        None, description="share of the pairs the judge orders whose label agrees with it"
    )
    label_judge_disagreement: float | None = Field(None, description="1 - label_judge_agreement")
    judge_tied_pairs: int | None = Field(None, description="pairs the judge scores alike")
    judge_gap: float | None = Field(None, description="mean of judge(chosen) - judge(rejected)")


# ---- stage 3 --------------------------------------------------------------------------------


class RewardOutputs(StageOutputs):
    STAGE: ClassVar[int] = 3
    model: Path = Field(Path("model"), description="the reward model of the best epoch")
    base: str = Field(description="what it started from; stage 6 retrains from there")
    train_pairs: int = Field(description="pairs trained on")
    val_pairs: int = Field(description="pairs the best epoch was chosen on")
    accuracy_train: float = Field(description="reward accuracy on the training pairs")
    accuracy_val: float = Field(description="reward accuracy on the validation pairs")
    loss_train: float = Field(description="Bradley-Terry loss on the training pairs, nats")
    loss_val: float = Field(description="Bradley-Terry loss on the validation pairs, nats")
    best_checkpoint: str = Field(description="the checkpoint folder of the best epoch")
    truncated_pairs: int | None = Field(
        None,
        description="training and validation pairs that lost tokens to the length limits or "
        "the model's positions",
    )


# ---- stage 4 --------------------------------------------------------------------------------


class Consistency(Record):
    pairs: int
    alone_vs_batch: float  # a pair's margin scored alone vs in the batch
    padding: float  # beside a much longer sequence
    order: float  # chosen and rejected interleaved, the pairs in reverse order
    max_abs_diff: float
    consistent: bool


class EdgeCase(Record):
    mean_reward: float
    mean_vs_original: float
    share_above_original: float


class LengthBias(Record):
    correlation: float | None
    responses: int
    rm_prefers_longer: float | None


class SubsetAccuracy(Record):
    pairs: int
    accuracy: float
    longer_reply_accuracy: float


class FailureMode(Record):
    prompt: str
    chosen: str
    rejected: str
    margin: float


class RewardValidationOutputs(StageOutputs):
    STAGE: ClassVar[int] = 4
    report: Path = Field(Path("validation_report.md"), description="the validation report")
    report_json: Path = Field(
        Path("validation_report.json"), description="its numbers, probes and gates"
    )
    held_out_pairs: int = Field(
        description="test pairs measured (stage 2's test_pairs_file), never trained or selected on"
    )
    reward_accuracy_train: float = Field(description="reward accuracy on the training pairs")
    reward_accuracy_val: float = Field(description="reward accuracy on the test pairs")
    strict_accuracy_val: float | None = Field(
        None, description="test pairs: fraction with r(chosen) > r(rejected), ties as misses"
    )
    tie_rate_val: float | None = Field(
        None, description="test pairs: fraction with r(chosen) == r(rejected)"
    )
    longer_reply_accuracy_val: float | None = Field(
        None, description="test pairs: reward accuracy of 'the longer reply wins' (words)"
    )
    accuracy_over_length_baseline: float | None = Field(
        None, description="reward_accuracy_val - longer_reply_accuracy_val"
    )
    train_val_gap: float = Field(description="reward_accuracy_train - reward_accuracy_val")
    mean_margin_val: float = Field(description="mean of r(chosen) - r(rejected), test pairs")
    truncated_pairs: int | None = Field(
        None,
        description="test pairs that lost tokens to the length limits or the model's "
        "positions when scored",
    )
    reward_accuracy_judge: float | None = Field(
        None, description="accuracy against the judge's preference, over the pairs it orders"
    )
    judge_ordered_pairs: int | None = Field(None, description="the pairs the judge orders")
    length_correlation: float | None = Field(
        description="Pearson correlation of reward with response length, RM tokens"
    )
    consistency_max_abs_diff: float = Field(
        description="largest difference of a pair's margin scored alone, batched, beside "
        "padding and in another order"
    )
    consistency: Consistency = Field(description="the consistency probe")
    edge_cases: dict[str, EdgeCase] = Field(
        description="empty, truncated, repeated and prompt-echoed responses against the chosen"
    )
    original_mean_reward: float = Field(description="the chosen responses' mean reward")
    length_bias: LengthBias = Field(description="the length-bias probe")
    failure_modes: list[FailureMode] = Field(description="the most negative margins")
    accuracy_per_subset: dict[str, SubsetAccuracy] | None = Field(
        None,
        description="test pairs that carry a subset field: pairs, reward accuracy and the "
        "longer-reply baseline per subset",
    )


# ---- stage 5 --------------------------------------------------------------------------------


class RLOutputs(StageOutputs):
    """The final_* numbers are the KL guard's measures of the final policy on the held-out
    prompts, one sample each; the *_first_steps and *_last_steps are means over the first and
    the last tenth of training."""

    STAGE: ClassVar[int] = 5
    model: Path = Field(Path("model"), description="the trained policy (LoRA merged in)")
    algorithm: str = Field(description="PPO, A2C, GRPO, RLOO or DPO")
    value_model: str = Field(
        description="shared (value head), separate (critic) or none (GRPO, RLOO, DPO)"
    )
    steps: int = Field(description="rollout batches done")
    resumed_from_step: int = Field(description="the step an interrupted attempt resumed from")
    final_kl_coef: float = Field(description="the KL penalty coefficient at the end")
    episodes: int = Field(description="responses trained on: steps x batch_size")
    rollbacks: int = Field(description="times the KL guard rolled back")
    stopped_early: bool = Field(description="the KL guard stopped training")
    truncated_prompts: int | None = Field(
        None, description="training prompts cut to data.max_prompt_length"
    )
    final_kl_per_token_nats: float = Field(description="KL to the SFT policy, nats per token")
    final_kl_per_sequence_nats: float = Field(description="the same, summed per response")
    final_entropy_nats: float = Field(description="policy entropy, nats per token")
    final_reward: float = Field(description="mean reward-model score")
    final_response_tokens: float = Field(description="mean response length, tokens")
    final_judge_score: float | None = Field(None, description="mean judge score, in [0, 1]")
    reward_first_steps: float | None = Field(
        None, description="mean reward, first steps (DPO: held-out, at the start)"
    )
    reward_last_steps: float | None = Field(
        None, description="mean reward, last steps (DPO: held-out, at the end)"
    )
    judge_score_first_steps: float | None = Field(None, description="judge score, first steps")
    judge_score_last_steps: float | None = Field(None, description="judge score, last steps")
    policy_loss_first_steps: float | None = Field(None, description="policy loss, first steps")
    policy_loss_last_steps: float | None = Field(None, description="policy loss, last steps")
    reward_improving: bool | None = Field(
        None, description="reward_last_steps above reward_first_steps"
    )

    def final_measures(self) -> PolicyMeasures:
        """The final_* numbers, as the KL guard measured them."""
        return PolicyMeasures(
            **{name: getattr(self, f"final_{name}") for name in PolicyMeasures.model_fields}
        )


# ---- stage 6 --------------------------------------------------------------------------------


class IterationRow(Record):
    """One row of stage 6's table; iteration 0 is stage 5's policy with stage 3's RM."""

    iteration: int
    status: Literal["start", "accepted", "converged", "rolled_back"]
    reason: str = ""
    new_pairs: int = 0
    kl_coef: float | None = None
    rollbacks: int = 0  # the KL guard's, in the iteration's RL run
    score: float
    reward: float
    kl_per_token_nats: float
    entropy_nats: float
    reward_accuracy_val: float


class IterationOutputs(StageOutputs):
    STAGE: ClassVar[int] = 6
    model: Path = Field(Path("model"), description="the final policy: the best iteration's")
    reward_model: Path = Field(
        Path("reward_model"), description="the reward model that policy was trained against"
    )
    table: Path = Field(Path("iterations.json"), description="the per-iteration table")
    table_markdown: Path = Field(Path("iterations.md"), description="the same as Markdown")
    iterations: list[IterationRow] = Field(description="one row per iteration, 0 first")
    best_iteration: int = Field(description="the iteration the final policy comes from")
    stop_reason: str = Field(description="why the iterations stopped")
    truncated_prompts: int | None = Field(
        None, description="the iterations' prompts cut to data.max_prompt_length"
    )
    score_source: Literal["judge", "reward model"] = Field(
        description="what an iteration's score is: the judge's mean, else the RM's"
    )


# ---- stage 7 --------------------------------------------------------------------------------


class PolicyMeasures(Record):
    """Means over a policy's sampled responses on held-out prompts."""

    kl_per_token_nats: float
    kl_per_sequence_nats: float
    entropy_nats: float
    reward: float
    response_tokens: float
    judge_score: float | None = None


class RewardExample(Record):
    prompt: str
    response: str
    reward: float
    judge: float | None = None


class Interpretability(Record):
    """What the reward tracks, over the final and the SFT policy's responses."""

    reward_length_correlation: float | None
    reward_judge_correlation: float | None = None
    reward_criterion_correlation: dict[str, float | None] | None = None
    most_rewarded: list[RewardExample]
    least_rewarded: list[RewardExample]
    mean_reward: float


class EvaluationOutputs(StageOutputs):
    STAGE: ClassVar[int] = 7
    report: Path = Field(Path("evaluation_report.json"), description="the numbers below")
    final_model: str = Field(description="the policy evaluated (stage 6's)")
    reward_model: str = Field(description="the reward model it was trained against")
    benchmarks: dict[str, float] = Field(description="benchmark name -> the final policy's score")
    baseline: dict[str, float] = Field(description="benchmark name -> the SFT policy's score")
    retention: float | None = Field(
        description="mean over benchmarks of final / baseline; None without any to average"
    )
    retention_left_out: list[str] = Field(description="benchmarks whose baseline is 0")
    win_rate: float | None = Field(
        description="share of held-out prompts on which the judge prefers the final policy's "
        "response, ties counted half; None without a judge"
    )
    eval_prompts: int = Field(description="held-out prompts")
    truncated_prompts: int | None = Field(
        None, description="held-out prompts cut to data.max_prompt_length"
    )
    responses_per_policy: int = Field(description="responses sampled from each policy")
    final: PolicyMeasures = Field(
        description="the final policy on the held-out prompts, win_rate_samples responses each"
    )
    sft: PolicyMeasures = Field(description="the SFT policy on the same prompts")
    final_kl_per_token_nats: float = Field(
        description="the final policy's KL to SFT per token, measured as the KL guard and "
        "stage 6 measure it (one response per held-out prompt, the same seed)"
    )
    final_kl_per_sequence_nats: float = Field(description="the same, summed per response")
    reward_accuracy_val: float = Field(
        description="the final reward model's accuracy on stage 2's test pairs"
    )
    reward_gain: float = Field(description="final minus SFT mean reward")
    sft_judge_score: float | None = Field(
        None, description="the SFT policy's mean judge score on the held-out prompts"
    )
    final_judge_score: float | None = Field(
        None, description="the final policy's mean judge score on the same prompts"
    )
    judge_gain: float | None = Field(description="final minus SFT mean judge score")
    reward_hacking: bool | None = Field(
        description="reward up while the judge's score stays flat or falls; None without a judge"
    )
    interpretability: Interpretability = Field(description="what the reward tracks")
    deploy_decision: Literal["deploy", "rollback", "stop"] = Field(
        description="srft.decisions.deploy_decision over every gate of the run"
    )

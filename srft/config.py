"""The one typed schema of an srft run: the seed's `srf_config.yaml`, every key with its name and
meaning, plus new sections (`sft`, `annotation`, `evaluation`, `iteration`, `gates`, `world`).

Validation, defaults, the `srft init` template and the README's config table all come from the
classes below. The defaults run the embedded world on a laptop CPU.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from srft.data.hub import is_hub_id
from srft.errors import ConfigError

WORLD_MODEL = "srft:world"

GATE_NAMES: tuple[str, ...] = (
    "preference_gap",
    "pair_count",
    "decontamination",
    "reward_accuracy_train",
    "reward_accuracy_val",
    "train_val_gap",
    "kl_divergence",
    "entropy",
    "capability_retention",
    "win_rate",
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraSettings(Section):
    r: int = Field(8, ge=1, description="LoRA rank")
    alpha: int = Field(16, ge=1, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or 'all-linear'"
    )


class ModelConfig(Section):
    base_model: str = Field(
        WORLD_MODEL,
        description="Path or HF model ID of the base policy; 'srft:world' builds the embedded world's model",
    )
    sft_checkpoint: str | None = Field(
        None,
        description="An existing SFT checkpoint to use as the policy; stage 1 then evaluates it instead of training",
    )
    reward_model_type: Literal["shared", "separate"] = Field(
        "shared",
        description="'shared': the RM starts from the SFT policy; 'separate': from reward_base_model",
    )
    reward_base_model: str | None = Field(
        None, description="Sequence-classification checkpoint for a 'separate' reward model"
    )
    lora: LoraSettings | None = Field(
        None,
        description="LoRA adapters for SFT, the reward model and RL (r, alpha, dropout, "
        "target_modules); the RL reference is then the base with the adapter off",
    )

    @model_validator(mode="after")
    def _separate_needs_base(self) -> ModelConfig:
        if self.reward_model_type == "separate" and not self.reward_base_model:
            raise ValueError("reward_base_model: required when reward_model_type is 'separate'")
        return self


class DataConfig(Section):
    train_file: str | None = Field(
        None,
        description="Preference pairs (JSONL) to import instead of generating them in stage 2",
    )
    validation_file: str | None = Field(
        None,
        description="Validation pairs (JSONL) for epoch selection; without it "
        "data.validation_fraction of the prompts are held out",
    )
    max_prompt_length: int = Field(32, ge=1, description="Prompt tokens kept (left-truncated)")
    max_response_length: int = Field(24, ge=1, description="Response tokens generated or kept")
    sft_file: str | None = Field(
        None,
        description="SFT demonstrations, JSONL rows {prompt, completion}; the world's by default",
    )
    prompts_file: str | None = Field(
        None, description="Prompts for preference generation and RL, JSONL rows {prompt}"
    )
    eval_prompts_file: str | None = Field(
        None, description="Held-out prompts for the win rate, JSONL rows {prompt}"
    )
    test_file: str | None = Field(
        None,
        description="Test pairs (JSONL, parquet or a Hub id) for stages 4 and 7, checked for "
        "contamination; without it, data.test_fraction of the pairs are held out",
    )
    score_scale: tuple[float, float] = Field(
        (0.0, 1.0), description="[min, max] of score_chosen/score_rejected in pair files"
    )
    on_invalid: Literal["error", "drop"] = Field(
        "error",
        description="Invalid rows in pair files: stop with an error, or drop and count them",
    )
    drop_contaminated: bool = Field(
        False, description="Drop training pairs that share an n-gram with an evaluation item"
    )
    decontamination_ngram: int = Field(13, ge=8, description="n of the contamination n-grams")
    validation_fraction: float = Field(
        0.2,
        gt=0.0,
        lt=1.0,
        description="Share of the prompts whose pairs are held out for epoch selection, "
        "without data.validation_file",
    )
    test_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="Share of the prompts whose pairs are held out as the test set, without "
        "data.test_file: never trained on nor selected on, measured by stages 4 and 7",
    )
    sft_validation_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="Share of SFT data held out for perplexity"
    )

    @model_validator(mode="after")
    def _scale_ordered(self) -> DataConfig:
        low, high = self.score_scale
        if not low < high:
            raise ValueError(f"score_scale: [{low}, {high}] must have min < max")
        return self

    @model_validator(mode="after")
    def _room_to_train(self) -> DataConfig:
        held_out = self.validation_fraction + self.test_fraction
        if held_out >= 1:
            raise ValueError(
                f"test_fraction: {self.test_fraction} with validation_fraction "
                f"{self.validation_fraction} leaves nothing to train on (their sum must be under 1)"
            )
        return self


class SFTConfig(Section):
    learning_rate: float = Field(5e-3, gt=0, description="Peak learning rate")
    batch_size: int = Field(
        64, ge=1, description="Examples per optimizer step, all processes together"
    )
    epochs: float = Field(12, gt=0, description="Passes over the SFT data")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps with linear warm-up")


class AnnotationConfig(Section):
    type: Literal["callable", "reward_model", "labels_file"] = Field(
        "callable", description="Who labels the generated pairs"
    )
    callable: str | None = Field(
        "srft.world.judge:noisy_annotator",
        description="A registered annotator ('world', 'arithmetic' or a plugin's) or "
        "'module:function', taking (prompts, responses, **options) and returning scores",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the annotator callable"
    )
    reward_model: str | None = Field(None, description="Reward-model checkpoint used as annotator")
    labels_file: str | None = Field(
        None,
        description="Human labels: JSONL rows {prompt, response, score}, or {id, score} with the "
        "ids of stage 2's candidates.jsonl",
    )
    hybrid: bool = Field(
        False,
        description="With labels_file: the responses no human labelled are labelled by "
        "annotation.reward_model when set, else annotation.callable; stage 2 reports how often "
        "the two agree",
    )
    samples_per_prompt: int = Field(8, ge=2, description="Responses generated per prompt")
    pairs_per_prompt: int = Field(
        2,
        ge=1,
        description="Disjoint pairs per prompt: best vs worst, then second best vs second worst",
    )
    temperature: float = Field(1.0, gt=0, description="Sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling threshold")
    generation_batch_size: int = Field(512, ge=1, description="Prompts per generation batch")

    @model_validator(mode="after")
    def _source_given(self) -> AnnotationConfig:
        needed = {
            "callable": self.callable,
            "reward_model": self.reward_model,
            "labels_file": self.labels_file,
        }[self.type]
        if not needed:
            raise ValueError(f"{self.type}: required when annotation.type is '{self.type}'")
        return self


class RewardTrainingConfig(Section):
    learning_rate: float = Field(1e-3, gt=0, description="Peak learning rate")
    batch_size: int = Field(
        32, ge=1, description="Pairs per optimizer step, all processes together"
    )
    max_epochs: int = Field(5, ge=1, description="Passes over the training pairs")
    loss_function: Literal["binary_cross_entropy"] = Field(
        "binary_cross_entropy", description="Bradley-Terry: BCE on r(chosen) - r(rejected)"
    )
    optimizer: Literal["adamw", "adam", "sgd"] = Field("adamw", description="Optimizer")
    weight_decay: float = Field(0.01, ge=0, description="Weight decay")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps with linear warm-up")
    group_by_length: bool = Field(
        False,
        description="Batch pairs of similar length together (less padding on long, varied texts)",
    )


#: the algorithms that sample a group of responses per prompt, and where each puts the KL
GROUP_ALGORITHMS = ("GRPO", "RLOO")
KL_IN = {"GRPO": "loss", "RLOO": "reward"}


class RLTrainingConfig(Section):
    algorithm: Literal["PPO", "A2C", "GRPO", "RLOO", "DPO"] = Field(
        "PPO",
        description="PPO or A2C (with a value function), GRPO or RLOO (critic-free: each "
        "response scored against the others of its prompt's group), or DPO (offline, from "
        "stage 2's training pairs, the SFT policy the reference)",
    )
    learning_rate: float = Field(1e-5, gt=0, description="Policy learning rate")
    kl_penalty: float = Field(0.1, ge=0, description="KL constraint strength (per-token penalty)")
    entropy_bonus: float = Field(0.01, ge=0, description="Entropy bonus, to maintain diversity")
    reward_scale: float = Field(1.0, gt=0, description="Multiplier of the RM score")
    batch_size: int = Field(
        64,
        ge=1,
        description="Responses per rollout batch, all processes together (one per prompt; "
        "GRPO and RLOO: batch_size / group_size prompts, group_size responses each; DPO: "
        "preference pairs per step)",
    )
    mini_batch_size: int = Field(
        16,
        ge=1,
        description="Sequences (DPO: pairs) per gradient step, all processes together",
    )
    gradient_accumulation_steps: int = Field(1, ge=1, description="Mini-batches per optimizer step")
    max_steps: int = Field(100, ge=1, description="Rollout batches (DPO: batches of pairs)")
    ppo_epochs: int = Field(4, ge=1, description="PPO, GRPO and RLOO passes over each batch")
    clip_range: float = Field(0.2, gt=0, description="Ratio clip of PPO, GRPO and RLOO")
    group_size: int = Field(
        4,
        ge=2,
        description="GRPO and RLOO: responses per prompt, each scored against the others "
        "(a divisor of batch_size)",
    )
    kl_in: Literal["loss", "reward"] | None = Field(
        None,
        description="GRPO and RLOO: where the KL to the reference goes: 'loss' (each token's k3 "
        "estimate times the KL coefficient) or 'reward' (the coefficient times the response's "
        "summed log-ratio, taken off its score); None: loss for GRPO, reward for RLOO (PPO "
        "and A2C: reward)",
    )
    scale_advantages: bool = Field(
        True,
        description="GRPO: divide each group's centred scores by their standard deviation "
        "(false, with loss_aggregation: constant, is Dr. GRPO)",
    )
    loss_aggregation: Literal["sequence", "token", "constant"] = Field(
        "sequence",
        description="GRPO and RLOO: 'sequence' (mean over responses of each one's token "
        "mean), 'token' (mean over all tokens) or 'constant' (sum over tokens / responses x "
        "data.max_response_length, Dr. GRPO); PPO and A2C: token",
    )
    beta: float = Field(
        0.1,
        gt=0,
        description="DPO: the KL coefficient of its objective, the scale of its implicit "
        "reward beta x log(policy / reference); the KL guard's rollback doubles it",
    )
    value_model: Literal["shared", "separate"] = Field(
        "shared",
        description="Value head on the policy's trunk, or a separate critic initialised from the RM",
    )
    gamma: float = Field(1.0, ge=0, le=1, description="Discount per token")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda")
    vf_coef: float = Field(0.1, ge=0, description="Weight of the value loss")
    ptx_coef: float = Field(
        0.0,
        ge=0,
        description="Weight of the SFT loss on data.sft_file's demonstrations in each policy "
        "update (PPO-ptx), which keeps what SFT taught; 0 = off",
    )
    value_clip_range: float | None = Field(
        0.2, gt=0, description="Clip of the value update (PPO); None = unclipped"
    )
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient norm clip; None = off")
    whiten_advantages: bool = Field(True, description="Normalise advantages per batch")
    adaptive_kl: bool = Field(
        True,
        description="Adapt kl_penalty so the KL approaches its aim, "
        "constraints.kl_target x adaptive_kl_fraction (online algorithms; DPO's beta is fixed)",
    )
    adaptive_kl_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="The adaptive controller's aim as a share of the KL bound kl_target",
    )
    kl_horizon: int = Field(100, ge=1, description="Episodes over which the KL controller adapts")
    reward_functions: list[str] = Field(
        default_factory=list,
        description="Verifiable rewards, 'module:function' each, called as TRL calls its "
        "reward functions: f(prompts=[...], completions=[...]) -> one number per completion; "
        "added to the reward model's score by reward_weights (online algorithms)",
    )
    reward_weights: list[float] | None = Field(
        None, description="One weight per reward function; None = 1.0 each"
    )
    reward_model_weight: float = Field(
        1.0,
        ge=0,
        description="Weight of the reward model's score in the reward (0 with reward_functions: "
        "those alone; the reward model's gates hold either way)",
    )
    early_stop_on_kl: bool = Field(
        True,
        description="At the start, every save_interval steps and at the end, measure the KL "
        "on the held-out prompts as the gates do; over kl_target, roll back to the last good "
        "checkpoint with half the learning rate and twice the KL penalty; stop there when "
        "retries run out",
    )

    @property
    def grouped(self) -> bool:
        """Whether the algorithm samples a group of responses per prompt (GRPO, RLOO)."""
        return self.algorithm in GROUP_ALGORITHMS

    @property
    def offline(self) -> bool:
        """Whether the policy learns from stage 2's pairs rather than its own samples (DPO)."""
        return self.algorithm == "DPO"

    @property
    def critic_free(self) -> bool:
        """Whether the algorithm trains no value function (GRPO, RLOO, DPO)."""
        return self.grouped or self.offline

    @property
    def responses_per_prompt(self) -> int:
        return self.group_size if self.grouped else 1

    @property
    def prompts_per_batch(self) -> int:
        """Prompts of a rollout batch (DPO: pairs of a batch), all processes together."""
        return self.batch_size // self.responses_per_prompt

    @property
    def kl_in_loss(self) -> bool:
        return self.grouped and (self.kl_in or KL_IN[self.algorithm]) == "loss"

    @model_validator(mode="after")
    def _mini_batch_fits(self) -> RLTrainingConfig:
        if self.mini_batch_size > self.batch_size:
            raise ValueError(
                f"mini_batch_size: {self.mini_batch_size} is larger than batch_size {self.batch_size}"
            )
        if self.grouped and self.batch_size % self.group_size:
            raise ValueError(
                f"group_size: {self.group_size} does not divide batch_size {self.batch_size} "
                "(a rollout is batch_size / group_size prompts, group_size responses each)"
            )
        return self

    @model_validator(mode="after")
    def _rewards(self) -> RLTrainingConfig:
        functions = self.reward_functions
        for spec in functions:
            module, sep, name = spec.partition(":")
            if not (module and sep and name):
                raise ValueError(f"reward_functions: expected 'module:function', got '{spec}'")
        if self.reward_weights is not None and len(self.reward_weights) != len(functions):
            raise ValueError(
                f"reward_weights: {len(self.reward_weights)} weights for {len(functions)} "
                "reward functions (one each)"
            )
        if functions and self.offline:
            raise ValueError(
                "reward_functions: DPO learns from stage 2's pairs and scores no samples; "
                "reward functions are for PPO, A2C, GRPO and RLOO"
            )
        if self.reward_model_weight == 0 and not functions:
            raise ValueError("reward_model_weight: 0 with no reward_functions leaves no reward")
        return self

    @model_validator(mode="after")
    def _critic_free(self) -> RLTrainingConfig:
        if self.critic_free and self.value_model == "separate":
            raise ValueError(
                f"value_model: {self.algorithm} has no value model ('separate' is for PPO and A2C)"
            )
        if self.offline and self.kl_in is not None:
            raise ValueError("kl_in: is for GRPO and RLOO; DPO's KL is in its objective (beta)")
        if not self.grouped and self.kl_in == "loss":
            raise ValueError(
                f"kl_in: 'loss' is for GRPO and RLOO; {self.algorithm} takes the KL in the reward"
            )
        return self


class ConstraintsConfig(Section):
    kl_target: float = Field(0.1, gt=0, description="Maximum KL divergence, nats per token")
    entropy_min: float = Field(0.5, ge=0, description="Minimum entropy, nats per token")
    entropy_max: float = Field(2.0, gt=0, description="Maximum entropy, nats per token")
    reward_accuracy_target: float = Field(
        0.70, ge=0, le=1, description="Minimum reward model accuracy"
    )
    min_preference_gap: float = Field(0.15, ge=0, le=1, description="Minimum preference gap")
    min_pairs: int = Field(1000, ge=1, description="Minimum number of preference pairs")
    min_decontamination: float = Field(
        0.9, ge=0, le=1, description="Minimum fraction of clean training pairs"
    )
    max_train_val_gap: float = Field(
        0.10, gt=0, le=1, description="Maximum reward accuracy train minus val"
    )
    min_capability_retention: float = Field(
        0.95, ge=0, description="Minimum mean final/baseline benchmark score"
    )
    min_win_rate: float = Field(0.5, ge=0, le=1, description="Win rate must exceed this")

    @model_validator(mode="after")
    def _entropy_band(self) -> ConstraintsConfig:
        if self.entropy_min >= self.entropy_max:
            raise ValueError(
                f"entropy_min: {self.entropy_min} >= entropy_max {self.entropy_max} (entropy band inverted)"
            )
        return self


class ComputeConfig(Section):
    fp16: bool = Field(False, description="Mixed precision fp16 (GPU only)")
    bf16: bool = Field(False, description="Mixed precision bf16")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="'auto' takes cuda when present, else cpu"
    )
    num_devices: int = Field(
        1,
        ge=1,
        description="Processes, one per device, started through accelerate's launcher; "
        "batch sizes are global, split evenly over them",
    )
    strategy: Literal["ddp", "fsdp", "deepspeed"] = Field(
        "ddp",
        description="How several processes share the training: 'ddp' replicates the model; "
        "'fsdp' (accelerate's FSDP2, full shard) and 'deepspeed' (ZeRO through accelerate's "
        "plugin) shard the models that train (SFT, RM, the RL policy and value model)",
    )
    zero_stage: Literal[2, 3] = Field(
        2, description="DeepSpeed ZeRO stage: 2 shards gradients and optimizer, 3 also weights"
    )
    deepspeed_config: str | None = Field(
        None,
        description="A DeepSpeed JSON file used instead of zero_stage and cpu_offload; its "
        "optimizer, scheduler, batch sizes, accumulation and clipping come from each stage's keys",
    )
    cpu_offload: bool = Field(
        False,
        description="Keep sharded parameters and optimizer states in CPU memory (fsdp, deepspeed)",
    )
    collective_timeout_seconds: int = Field(
        1800,
        ge=10,
        description="How long a process waits for the others in a collective before the run stops",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass (SFT, RM and RL updates)"
    )
    num_threads: int | None = Field(
        None, ge=1, description="CPU threads for torch; None = torch default"
    )

    @model_validator(mode="after")
    def _one_precision(self) -> ComputeConfig:
        if self.fp16 and self.bf16:
            raise ValueError("fp16: fp16 and bf16 are both true; choose one mixed precision")
        if self.deepspeed_config and self.strategy != "deepspeed":
            raise ValueError(
                f"deepspeed_config: set, but strategy is '{self.strategy}'; "
                "set strategy: deepspeed or remove it"
            )
        return self

    @property
    def frozen_dtype(self) -> str | None:
        """torch's name of the dtype frozen models (the RL reference and reward model) are held
        in: half precision under fp16 or bf16, else None (as loaded)."""
        return "float16" if self.fp16 else "bfloat16" if self.bf16 else None

    @property
    def mixed_precision(self) -> str:
        """accelerate's name of the mixed precision: 'fp16', 'bf16' or 'no'."""
        return "fp16" if self.fp16 else "bf16" if self.bf16 else "no"


#: What each tracker imports; MLflow's database store (srft's default) needs SQLAlchemy and
#: Alembic, which `pip install mlflow` brings.
TRACKER_MODULES = {
    "tensorboard": ("tensorboard",),
    "wandb": ("wandb",),
    "mlflow": ("mlflow", "sqlalchemy", "alembic"),
}


class LoggingConfig(Section):
    wandb_project: str | None = Field(None, description="W&B project (with report_to: [wandb])")
    wandb_run_name: str | None = Field(None, description="W&B run name")
    output_dir: str = Field("outputs/srft-run", description="The run directory")
    log_interval: int = Field(10, ge=1, description="Steps between logged metrics")
    save_interval: int = Field(20, ge=1, description="Steps between checkpoints")
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=list, description="Experiment trackers besides metrics.jsonl"
    )

    @model_validator(mode="after")
    def _trackers_installed(self) -> LoggingConfig:
        # a tracker without its package would pass here and raise in the middle of a run
        for tracker in self.report_to:
            missing = [m for m in TRACKER_MODULES[tracker] if importlib.util.find_spec(m) is None]
            if missing:
                raise ValueError(
                    f"report_to: '{tracker}' needs the {', '.join(missing)} package, which is "
                    f"not installed: pip install {tracker}"
                )
        return self


class Benchmark(Section):
    file: str = Field(description="JSONL or parquet file, or Hub id, of the benchmark's rows")
    kind: str | None = Field(
        None, description="A registered benchmark kind; None = told by the rows' fields"
    )


def _file_or_mapping(value: Any) -> Any:
    return {"file": value} if isinstance(value, str) else value


def _as_written(benchmark: Benchmark) -> str | dict[str, str]:
    # A benchmark without a kind is written as its file, as configs wrote it before kinds
    # could be named: the resolved config and the stages' fingerprints stay as they were.
    if benchmark.kind is None:
        return benchmark.file
    return {"file": benchmark.file, "kind": benchmark.kind}


#: `name: file` or `name: {file, kind}` in YAML
BenchmarkEntry = Annotated[
    Benchmark, BeforeValidator(_file_or_mapping), PlainSerializer(_as_written)
]


class EvaluationConfig(Section):
    judge: str | None = Field(
        "srft.world.judge:gold_scores",
        description="A registered judge ('world', 'arithmetic' or a plugin's) or "
        "'module:function', scoring (prompts, responses) for win rate and judge accuracy",
    )
    benchmarks: dict[str, BenchmarkEntry] = Field(
        default_factory=dict,
        description="Benchmark name -> file or Hub id, or {file, kind} naming a registered kind "
        "(exact_match, gsm8k, mmlu, multiple_choice, humaneval or a plugin's); without a kind, "
        "told by the rows' fields: {prompt, answer}, {prompt, choices, answer}, GSM8K, MMLU or "
        "HumanEval rows. The world's by default",
    )
    judge_criteria: str | None = Field(
        "srft.world.judge:criteria_scores",
        description="A registered judge or 'module:function' giving each response's "
        "per-criterion judge scores (dicts), for reward interpretability",
    )
    execute_code: bool = Field(
        False,
        description="Run model-written code for code benchmarks (HumanEval), in a sandboxed "
        "subprocess with no network, resource limits and a timeout",
    )
    win_rate_samples: int = Field(
        4, ge=1, description="Responses per held-out prompt and policy compared by the judge"
    )

    @property
    def benchmark_files(self) -> dict[str, str]:
        """Benchmark name -> its file or Hub id."""
        return {name: benchmark.file for name, benchmark in self.benchmarks.items()}


class IterationConfig(Section):
    max_iterations: int = Field(3, ge=0, description="Rounds of new pairs, RM retraining and RL")
    prompts_per_iteration: int = Field(1000, ge=1, description="Prompts sampled for new pairs")
    rl_steps: int = Field(30, ge=1, description="RL rollout batches per iteration")
    reward_model_start: Literal["base", "current"] = Field(
        "base",
        description="Where each iteration's reward model training on old + new pairs starts: "
        "stage 3's starting point, afresh for reward_training.max_epochs, or the current "
        "reward model, trained on for reward_epochs (faster)",
    )
    reward_epochs: int = Field(
        1, ge=1, description="Passes over old + new pairs when reward_model_start is current"
    )
    kl_fraction: float = Field(
        0.6,
        gt=0,
        le=1,
        description="The KL controller's aim in iterations, as a share of the bound kl_target "
        "(stage 5 uses rl_training.adaptive_kl_fraction)",
    )
    min_improvement: float = Field(
        0.01, ge=0, description="Judge-score gain below which the iterations have converged"
    )


class GatesConfig(Section):
    mode: dict[str, Literal["enforce", "warn"]] = Field(
        default_factory=dict,
        description="Per-gate mode; gates not listed are enforced",
    )
    max_retries: int = Field(2, ge=0, description="Retries with adjusted settings per stage")

    @model_validator(mode="after")
    def _known_gates(self) -> GatesConfig:
        for name in self.mode:
            if name not in GATE_NAMES:
                raise ValueError(f"mode: unknown gate '{name}' (known: {', '.join(GATE_NAMES)})")
        return self

    def mode_of(self, gate: str) -> str:
        return self.mode.get(gate, "enforce")


class WorldConfig(Section):
    n_sft_list: int = Field(3000, ge=10, description="List-task SFT demonstrations")
    n_sft_skill: int = Field(3000, ge=10, description="Capability-task SFT demonstrations")
    n_preference_prompts: int = Field(3500, ge=10, description="Prompts for stage 2 and RL")
    n_eval_prompts: int = Field(200, ge=10, description="Held-out prompts for the win rate")
    n_benchmark_items: int = Field(100, ge=5, description="Items per capability benchmark")
    hidden_size: int = Field(64, ge=8, description="Base model width")
    num_layers: int = Field(2, ge=1, description="Base model layers")


#: compute keys that say how processes share the work, not what is computed: left out of the
#: stages' fingerprints, so that a run goes on under another layout
PROCESS_LAYOUT_KEYS: tuple[str, ...] = (
    "num_devices",
    "strategy",
    "zero_stage",
    "deepspeed_config",
    "cpu_offload",
    "collective_timeout_seconds",
)

#: batch sizes counted over all processes together, each process taking an equal share
GLOBAL_BATCH_KEYS: tuple[str, ...] = (
    "sft.batch_size",
    "reward_training.batch_size",
    "rl_training.batch_size",
    "rl_training.mini_batch_size",
)


class SrftConfig(Section):
    seed: int = Field(0, description="Seed of every random source: world, sampling, training")
    plugins: list[str] = Field(
        default_factory=list,
        description="Python modules imported before the config's names are checked, to register "
        "benchmark kinds, judges and annotators by name",
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    annotation: AnnotationConfig = Field(default_factory=AnnotationConfig)
    reward_training: RewardTrainingConfig = Field(default_factory=RewardTrainingConfig)
    rl_training: RLTrainingConfig = Field(default_factory=RLTrainingConfig)
    constraints: ConstraintsConfig = Field(default_factory=ConstraintsConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    iteration: IterationConfig = Field(default_factory=IterationConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    world: WorldConfig = Field(default_factory=WorldConfig)

    @property
    def uses_world(self) -> bool:
        return self.model.base_model == WORLD_MODEL

    @model_validator(mode="after")
    def _batches_split_evenly(self) -> SrftConfig:
        processes = self.compute.num_devices
        for key in GLOBAL_BATCH_KEYS:
            size = self.value_at(key)
            if size % processes:
                raise ValueError(
                    f"{key}: {size} does not split evenly over compute.num_devices "
                    f"{processes}; batch sizes are global, make it a multiple of {processes}"
                )
        prompts = self.rl_training.prompts_per_batch
        if self.rl_training.grouped and prompts % processes:
            raise ValueError(
                f"rl_training.batch_size: {prompts} prompts of group_size "
                f"{self.rl_training.group_size} do not split evenly over compute.num_devices "
                f"{processes} (a group stays on one process)"
            )
        if self.compute.strategy == "fsdp" and self.model.lora is not None:
            raise ValueError(
                "compute.strategy: 'fsdp' shards the whole model, and model.lora trains an "
                "adapter on a frozen one; with lora, use ddp"
            )
        compute = self.compute
        if compute.strategy == "deepspeed" and compute.zero_stage == 3 and self.model.lora:
            raise ValueError(
                "compute.zero_stage: 3 partitions the weights, and model.lora merges its adapter "
                "into whole ones; with lora, use zero_stage: 2 or ddp"
            )
        if self.rl_training.ptx_coef and not (self.data.sft_file or self.uses_world):
            raise ValueError(
                "rl_training.ptx_coef: the SFT loss trains on demonstrations; set data.sft_file"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def value_at(self, dotted: str) -> Any:
        """The value of a dotted key such as 'data.train_file'."""
        node: Any = self
        for part in dotted.split("."):
            node = getattr(node, part)
        return node


# Keys that name input files: each must exist when set.
INPUT_FILE_KEYS: tuple[str, ...] = (
    "model.sft_checkpoint",
    "data.train_file",
    "data.validation_file",
    "data.sft_file",
    "data.prompts_file",
    "data.eval_prompts_file",
    "data.test_file",
    "annotation.labels_file",
    "compute.deepspeed_config",
)


#: keys that also take a `datasets` Hub id (`org/name` or `org/name:split`)
HUB_DATASET_KEYS: tuple[str, ...] = ("data.train_file", "data.validation_file", "data.test_file")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> SrftConfig:
    """Read, override and validate a config; any fault raises ConfigError naming the key path."""
    raw: dict[str, Any] = {}
    source = "config"
    if path is not None:
        source = str(path)
        raw = _read_yaml(Path(path))
    for override in overrides or []:
        _apply_override(raw, override)
    return validate_config(raw, source)


def validate_config(raw: dict[str, Any], source: str = "config") -> SrftConfig:
    try:
        config = SrftConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_describe(err)}") from None
    _import_plugins(config.plugins, source)
    for key in INPUT_FILE_KEYS:
        value = config.value_at(key)
        if value is None or Path(value).exists():
            continue
        if key in HUB_DATASET_KEYS and is_hub_id(value):
            continue  # a datasets Hub id, loaded when the stage runs
        raise ConfigError(f"{source}: {key}: file not found: {value}")
    for name, file in config.evaluation.benchmark_files.items():
        if not Path(file).exists() and not is_hub_id(file):
            raise ConfigError(f"{source}: evaluation.benchmarks.{name}: file not found: {file}")
    return config


def _import_plugins(modules: list[str], source: str) -> None:
    """Import the user's modules, which register benchmark kinds, judges and annotators."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as err:  # a user's module may fail in any way: say which and how
            reason = (str(err).splitlines() or [""])[0]
            raise ConfigError(
                f"{source}: plugins: cannot import '{module}' ({type(err).__name__}: {reason})"
            ) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}{where}: YAML error: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def _apply_override(raw: dict[str, Any], override: str) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {override}: expected section.key=value")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"--set {override}: value is not valid YAML") from None
    parts = key.strip().split(".")
    node: Any = raw
    schema: type[BaseModel] | None = SrftConfig
    for i, part in enumerate(parts):
        if schema is not None and part not in schema.model_fields:
            raise ConfigError(f"--set {override}: unknown key '{'.'.join(parts[: i + 1])}'")
        if i == len(parts) - 1:
            node[part] = value
            return
        annotation = schema.model_fields[part].annotation if schema is not None else None
        schema = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {override}: '{'.'.join(parts[: i + 1])}' is not a section")


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    kind = first["type"]
    message = first["msg"]
    if kind == "extra_forbidden":
        return f"{loc}: unknown key"
    if kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
        if loc and re.match(r"^\w+: ", message):
            return f"{loc}.{message}"  # the validator named the field inside the section
        return f"{loc}: {message}" if loc else message
    value = first.get("input")
    shown = repr(value) if not isinstance(value, dict) else "a mapping"
    return f"{loc}: {message} (got {shown})"

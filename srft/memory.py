"""How much memory one device needs for each training stage, component by component, in bytes,
under the config's strategy and precision. Pure arithmetic over parameter counts and layer
shapes: an estimate, not a measurement.

A trained model, bytes per parameter held by each device (N = compute.num_devices):

| strategy           | weights | gradients | optimizer states | cpu_offload moves to the host   |
|--------------------|---------|-----------|------------------|---------------------------------|
| ddp                | 4       | 4         | 8                | nothing (ddp does not offload)  |
| fsdp (full shard)  | 4 / N   | 4 / N     | 8 / N            | weights, gradients, optimizer   |
| deepspeed ZeRO-2   | 2       | 2 / N     | 12 / N           | optimizer states                |
| deepspeed ZeRO-3   | 2 / N   | 2 / N     | 12 / N           | weights, optimizer states       |

ddp and fsdp under accelerate's mixed precision keep fp32 weights (4), fp32 gradients (4) and
AdamW's two fp32 moments (8) and cast to half on the fly: 16 bytes per parameter with or without
fp16/bf16. DeepSpeed with fp16 or bf16 keeps half weights (2) and half gradients (2) and counts
its fp32 master weights with the moments as optimizer states (4 + 8); without fp16/bf16 it
keeps fp32 throughout: weights 4, gradients 4, optimizer states 8, sharded as above.

A frozen model (the reference, the reward model during RL): 2 bytes per parameter with fp16 or
bf16 (it is loaded in that dtype), else 4; whole on every device under every strategy (srft
shards only the models that train, so each process scores on its own). With LoRA the trained parameters are the adapters, r x (in + out)
per adapted linear layer; the base weights are frozen at 2 or 4 bytes per parameter but belong
to the trained model, so fsdp and ZeRO-3 shard them and cpu_offload moves them as it moves the
trained weights. There is no separate reference: it is the policy with its adapter off.

Activations of one micro-batch of b sequences of s tokens per device (width h, a heads, L
layers, vocabulary V), after Korthikanti et al. 2022, "Reducing Activation Recomputation in
Large Transformer Models": each layer keeps 34·s·b·h + 5·a·s²·b bytes in half precision, twice
that in fp32. With gradient checkpointing each layer keeps only its input, 2·s·b·h bytes (4 in
fp32), and one layer's full activations are recomputed at a time. A causal LM adds its fp32
logits, 4·s·b·V bytes. Left out: the generation's KV cache in RL rollouts, the layers fsdp and
ZeRO-3 gather for a moment, the frozen models' forward passes (no gradients kept), the CUDA
context and the allocator's fragmentation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from srft.config import ComputeConfig, LoraSettings, SrftConfig
from srft.launch import read_deepspeed_file
from srft.models.shape import LinearLayer, ModelShape

GB = 1e9  # the plan's unit: bytes in a gigabyte (not 2**30)


@dataclass(frozen=True)
class Layout:
    """How the processes share the training: the parts of compute the bytes depend on."""

    strategy: str
    zero_stage: int
    cpu_offload: bool
    num_devices: int
    half_precision: bool

    @classmethod
    def of(cls, compute: ComputeConfig) -> Layout:
        zero_stage = compute.zero_stage
        if compute.strategy == "deepspeed" and compute.deepspeed_config:
            zero_stage = read_deepspeed_file(compute.deepspeed_config)["zero_optimization"]["stage"]
        return cls(
            strategy=compute.strategy,
            zero_stage=zero_stage,
            cpu_offload=compute.cpu_offload,
            num_devices=compute.num_devices,
            half_precision=compute.fp16 or compute.bf16,
        )

    @property
    def shards_weights(self) -> bool:
        return self.strategy == "fsdp" or (self.strategy == "deepspeed" and self.zero_stage == 3)

    @property
    def shards_states(self) -> bool:
        """Gradients and optimizer states divided over the devices."""
        return self.strategy != "ddp"


@dataclass(frozen=True)
class TrainedBytes:
    """A trained model's bytes on one device, and what cpu_offload put in host memory instead."""

    weights: float
    gradients: float
    optimizer_states: float
    host: float

    @property
    def device(self) -> float:
        return self.weights + self.gradients + self.optimizer_states


def trained_bytes(trainable: float, layout: Layout, frozen: float = 0) -> TrainedBytes:
    """Bytes per device of a model training `trainable` parameters, with `frozen` more that
    are part of it (a LoRA base), by the table in the module's docstring."""
    half_deepspeed = layout.strategy == "deepspeed" and layout.half_precision
    weight, gradient, optimizer = (2, 2, 12) if half_deepspeed else (4, 4, 8)
    weights = trainable * weight + frozen * frozen_bytes_per_parameter(layout)
    gradients, optimizer_states = trainable * gradient, trainable * optimizer
    if layout.shards_weights:
        weights /= layout.num_devices
    if layout.shards_states:
        gradients /= layout.num_devices
        optimizer_states /= layout.num_devices
    host = 0.0
    if layout.cpu_offload and layout.strategy != "ddp":
        host, optimizer_states = optimizer_states, 0.0
        if layout.shards_weights:
            host, weights = host + weights, 0.0
        if layout.strategy == "fsdp":  # fsdp's offload keeps the gradients with the parameters
            host, gradients = host + gradients, 0.0
    return TrainedBytes(weights, gradients, optimizer_states, host)


def frozen_bytes_per_parameter(layout: Layout) -> int:
    return 2 if layout.half_precision else 4


def frozen_bytes(parameters: float, layout: Layout) -> float:
    """Bytes per device of a frozen model: whole on each device."""
    return parameters * frozen_bytes_per_parameter(layout)


def activation_bytes(
    shape: ModelShape,
    sequences: int,
    tokens: int,
    half_precision: bool,
    checkpointing: bool,
    logits: bool,
) -> float:
    """Bytes of the activations kept for the backward pass of `sequences` x `tokens`, by the
    formula in the module's docstring."""
    s, b, h, a = tokens, sequences, shape.hidden_size, shape.num_heads
    full_layer = 34 * s * b * h + 5 * a * s * s * b
    if checkpointing:
        kept = shape.num_layers * 2 * s * b * h + full_layer
    else:
        kept = shape.num_layers * full_layer
    return kept * (1 if half_precision else 2) + (4 * s * b * shape.vocab_size if logits else 0)


def lora_parameters(layers: tuple[LinearLayer, ...], settings: LoraSettings) -> int:
    """Adapter parameters: r x (in + out) for each linear layer `target_modules` names (peft's
    match: the module's name or its last dotted parts), or each of them for 'all-linear'."""
    targets = settings.target_modules

    def adapted(name: str) -> bool:
        return targets == "all-linear" or any(name == t or name.endswith(f".{t}") for t in targets)

    return sum(
        settings.r * (layer.in_features + layer.out_features)
        for layer in layers
        if adapted(layer.name)
    )


@dataclass(frozen=True)
class StageMemory:
    """One training stage's bytes per device, component by component."""

    stage: str
    weights: float  # the trained model's (the policy, or the RM while it trains)
    gradients: float
    optimizer_states: float
    reference: float
    value_model: float
    reward_model: float  # frozen, during RL
    activations: float
    host: float  # put in host memory by cpu_offload, per device

    @property
    def total(self) -> float:
        """Bytes on the device: every component but `host`."""
        return sum(getattr(self, f.name) for f in fields(self) if f.name not in ("stage", "host"))


@dataclass(frozen=True)
class MemoryPlan:
    """Every training stage of a config, the largest first in `peak`."""

    stages: tuple[StageMemory, ...]
    lora: bool
    layout: Layout

    @property
    def peak(self) -> StageMemory:
        return max(self.stages, key=lambda stage: stage.total)


def plan_memory(config: SrftConfig, policy: ModelShape, reward: ModelShape) -> MemoryPlan:
    """Bytes per device of SFT (unless model.sft_checkpoint is given: it is not trained),
    reward-model training and RL, for a policy and reward model of these shapes."""
    layout = Layout.of(config.compute)
    devices = layout.num_devices
    stages = []
    if config.model.sft_checkpoint is None:
        sequences = config.sft.batch_size // devices
        stages.append(_trained_stage("SFT", policy, sequences, config, logits=True))
    pairs = config.reward_training.batch_size // devices  # chosen and rejected in one batch
    stages.append(_trained_stage("reward model", reward, 2 * pairs, config, logits=False))
    stages.append(_rl_stage(config, policy, reward))
    return MemoryPlan(tuple(stages), config.model.lora is not None, layout)


def _trained(shape: ModelShape, config: SrftConfig, head: int = 0) -> TrainedBytes:
    """The model of `shape` in training, all of it or (LoRA) its adapters plus `head`, the
    parameters of a head that LoRA leaves trainable."""
    layout, lora = Layout.of(config.compute), config.model.lora
    if lora is None:
        return trained_bytes(shape.parameters, layout)
    adapters = lora_parameters(shape.linear_layers, lora) + head
    return trained_bytes(adapters, layout, frozen=shape.parameters)


def _activations(shape: ModelShape, sequences: int, config: SrftConfig, logits: bool) -> float:
    compute = config.compute
    tokens = config.data.max_prompt_length + config.data.max_response_length
    half = compute.fp16 or compute.bf16
    return activation_bytes(
        shape, max(sequences, 1), tokens, half, compute.gradient_checkpointing, logits
    )


def _trained_stage(
    name: str, shape: ModelShape, sequences: int, config: SrftConfig, logits: bool
) -> StageMemory:
    head = 0 if logits else shape.hidden_size  # the reward model's score head
    model = _trained(shape, config, head)
    return StageMemory(
        stage=name,
        weights=model.weights,
        gradients=model.gradients,
        optimizer_states=model.optimizer_states,
        reference=0.0,
        value_model=0.0,
        reward_model=0.0,
        activations=_activations(shape, sequences, config, logits),
        host=model.host,
    )


def _rl_stage(config: SrftConfig, policy: ModelShape, reward: ModelShape) -> StageMemory:
    """The policy in training, its frozen reference (none under LoRA), the value head or the
    critic (a trained model the reward model's size; none for GRPO, RLOO and DPO), the frozen
    reward model."""
    layout = Layout.of(config.compute)
    sequences = config.rl_training.mini_batch_size // layout.num_devices
    model = _trained(policy, config)
    activations = _activations(policy, sequences, config, logits=True)
    if config.rl_training.critic_free:
        value = trained_bytes(0, layout)
    elif config.rl_training.value_model == "shared":
        value = trained_bytes(policy.hidden_size + 1, layout)
    else:
        value = trained_bytes(reward.parameters, layout)
        activations += _activations(reward, sequences, config, logits=False)
    reference = 0.0 if config.model.lora else frozen_bytes(policy.parameters, layout)
    return StageMemory(
        stage="RL",
        weights=model.weights,
        gradients=model.gradients,
        optimizer_states=model.optimizer_states,
        reference=reference,
        value_model=value.device,
        reward_model=frozen_bytes(reward.parameters, layout),
        activations=activations,
        host=model.host + value.host,
    )

"""`srft plan` and the check before a run: a config's model shapes, the memory of one device,
the plan as a table and, when it does not fit, the changes of one config key that make it fit,
said in one line that names the key."""

from __future__ import annotations

import os
from dataclasses import dataclass

from srft.config import ComputeConfig, LoraSettings, SrftConfig
from srft.errors import SrftError
from srft.memory import GB, MemoryPlan, plan_memory
from srft.models.shape import Head, ModelShape, llama_like_shape, read_shape

#: the keys whose changes the message suggests, in the order it prefers them
CHANGED_KEYS = (
    "compute.strategy",
    "compute.zero_stage",
    "compute.cpu_offload",
    "compute.gradient_checkpointing",
    "model.lora",
    "sft.batch_size",
    "reward_training.batch_size",
    "rl_training.mini_batch_size",
)
ROWS = (
    ("trained weights", "weights"),
    ("gradients", "gradients"),
    ("optimizer states", "optimizer_states"),
    ("reference", "reference"),
    ("value model", "value_model"),
    ("reward model (frozen)", "reward_model"),
    ("activations", "activations"),
    ("total", "total"),
    ("host (offloaded)", "host"),
)


def config_shapes(
    config: SrftConfig,
    policy_parameters: int | None = None,
    reward_parameters: int | None = None,
    offline: bool = False,
) -> tuple[ModelShape, ModelShape]:
    """The policy's and the reward model's shapes: read from the config's models, or, for a
    parameter count given, a Llama-like decoder of that size. A 'shared' reward model is the
    policy's size. SrftError naming the option to pass when a model cannot be read."""
    model = config.model
    if policy_parameters is not None:
        policy = llama_like_shape(policy_parameters)
    else:
        key = "model.sft_checkpoint" if model.sft_checkpoint else "model.base_model"
        policy = _read(key, "causal", config, offline, "--params")
    if reward_parameters is not None:
        return policy, llama_like_shape(reward_parameters)
    if model.reward_model_type == "shared" or model.reward_base_model is None:
        return policy, policy
    reward = _read("model.reward_base_model", "classifier", config, offline, "--reward-params")
    return policy, reward


def _read(key: str, head: Head, config: SrftConfig, offline: bool, option: str) -> ModelShape:
    """The shape of the model at config key `key`; the error says which option gives it."""
    try:
        return read_shape(config.value_at(key), head, config.world, offline)
    except SrftError as err:
        raise SrftError(f"{key}: {err}; pass {option} N, e.g. {option} 7B") from None


def device_memory(compute: ComputeConfig) -> tuple[float | None, str]:
    """Bytes of one device and where the number comes from: CUDA's total memory when
    compute.device resolves to CUDA, this machine's RAM / num_devices on the CPU (and all of it
    for MPS, which shares it); None when CUDA is asked for but not seen."""
    if compute.device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            return float(torch.cuda.get_device_properties(0).total_memory), "CUDA device 0"
        if compute.device == "cuda":
            return None, "no CUDA device seen; pass --device-memory-gb"
    ram = _ram_bytes()
    if ram is None:
        return None, "this machine's RAM is unknown; pass --device-memory-gb"
    if compute.device == "mps":
        return ram, "RAM, shared with MPS"
    devices = compute.num_devices
    return ram / devices, f"this machine's RAM / compute.num_devices {devices}"


def _ram_bytes() -> float | None:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(config: SrftConfig, device_memory_bytes: float | None = None) -> None:
    """Stop before any training when a stage needs more memory per device than a device has:
    SrftError with the line `srft plan` ends with. Returns quietly when the models' size cannot
    be read offline (a Hub id not in the local cache) or the device memory is unknown."""
    if device_memory_bytes is None:
        device_memory_bytes, _ = device_memory(config.compute)
    if device_memory_bytes is None:
        return
    try:
        policy, reward = config_shapes(config, offline=True)
    except SrftError:
        return
    message = fit_message(config, policy, reward, device_memory_bytes)
    if message is not None:
        raise SrftError(message)


@dataclass(frozen=True)
class Change:
    """Another config: the key changed and how the message names the change."""

    key: str
    label: str
    config: SrftConfig


def fit_message(
    config: SrftConfig, policy: ModelShape, reward: ModelShape, device_memory_bytes: float
) -> str | None:
    """None when every stage fits; else one line: the key to change, the stage and its need,
    and the changes of that key that fit with what they need."""
    peak = plan_memory(config, policy, reward).peak
    if peak.total <= device_memory_bytes:
        return None

    def need(change: Change) -> float:
        return plan_memory(change.config, policy, reward).peak.total

    start = (
        f"the {peak.stage} stage needs {_gb(peak.total)} per device under {_label(config)}, "
        f"each device has {_gb(device_memory_bytes)}"
    )
    for group in one_key_changes(config):
        fitting = [(c, need(c)) for c in group if need(c) <= device_memory_bytes]
        if fitting:
            found = ", ".join(f"{change.label} needs {_gb(n)}" for change, n in fitting)
            return f"{group[0].key}: {start}; {found}"
    least = min(all_changes(config), key=need)
    together = f"{least.label} together need {_gb(need(least))}"
    if need(least) <= device_memory_bytes:
        return f"{least.key}: {start}; no one change fits, {together}"
    return (
        f"compute.num_devices: {start}; even {together}: use more devices, devices with more "
        "memory or a smaller model"
    )


def one_key_changes(config: SrftConfig) -> list[list[Change]]:
    """Changes of one key, grouped by key in the order the message prefers them: the strategy,
    the ZeRO stage, offload, the strategy with offload, checkpointing, LoRA, the batch sizes."""
    compute = config.compute
    groups = [_strategy_changes(config, compute.cpu_offload)]
    if compute.strategy == "deepspeed":
        other = _with(config, "compute", zero_stage=5 - compute.zero_stage)
        groups.append([Change("compute.zero_stage", _label(other, lora=False), other)])
    if compute.strategy != "ddp" and not compute.cpu_offload:
        other = _with(config, "compute", cpu_offload=True)
        groups.append([Change("compute.cpu_offload", _label(other, lora=False), other)])
    if not compute.cpu_offload:
        groups.append(_strategy_changes(config, cpu_offload=True))
    if not compute.gradient_checkpointing:
        other = _with(config, "compute", gradient_checkpointing=True)
        groups.append([Change("compute.gradient_checkpointing", "gradient_checkpointing", other)])
    if config.model.lora is None:
        other = _with(config, "model", lora=LoraSettings())
        groups.append([Change("model.lora", "LoRA (model.lora: {r: 8})", other)])
    groups += [[change] for change in _batch_changes(config)]
    runnable = [[change for change in group if srft_runs(change.config)] for group in groups]
    return [group for group in runnable if group]


def _strategy_changes(config: SrftConfig, cpu_offload: bool) -> list[Change]:
    """The other strategies (deepspeed with each ZeRO stage), offloading or not."""
    changes = []
    for strategy, stage in (("ddp", 2), ("fsdp", 2), ("deepspeed", 2), ("deepspeed", 3)):
        if strategy == config.compute.strategy or (strategy == "ddp" and cpu_offload):
            continue
        other = _with(
            config, "compute", strategy=strategy, zero_stage=stage, cpu_offload=cpu_offload
        )
        changes.append(Change("compute.strategy", _label(other, lora=False), other))
    return changes


def _batch_changes(config: SrftConfig) -> list[Change]:
    """One sequence (pair) per device in each stage's micro-batch."""
    devices = config.compute.num_devices
    changes = []
    for section, field in (
        ("sft", "batch_size"),
        ("reward_training", "batch_size"),
        ("rl_training", "mini_batch_size"),
    ):
        if getattr(getattr(config, section), field) > devices:
            other = _with(config, section, **{field: devices})
            key = f"{section}.{field}"
            changes.append(Change(key, f"{key} {devices} (one per device)", other))
    return changes


def all_changes(config: SrftConfig) -> list[Change]:
    """Every memory-saving change at once, under each strategy, with offload where it shards
    (LoRA with ddp and ZeRO-2: fsdp and ZeRO-3 shard the whole model, which LoRA's merge needs
    whole), as far as `srft run` takes them; the key is the first one changed."""
    combined = []
    for strategy, stage in (("fsdp", 2), ("deepspeed", 3), ("deepspeed", 2), ("ddp", 2)):
        offload = strategy != "ddp"
        other = _with(config, "compute", strategy=strategy, zero_stage=stage, cpu_offload=offload)
        labels = [_label(other, lora=False)]
        if not config.compute.gradient_checkpointing:
            other = _with(other, "compute", gradient_checkpointing=True)
            labels.append("gradient_checkpointing")
        for change in _batch_changes(other):
            other, labels = change.config, [*labels, change.label]
        if config.model.lora is None and (strategy, stage) in (("deepspeed", 2), ("ddp", 2)):
            other = _with(other, "model", lora=LoraSettings())
            labels.append("LoRA")
        if not srft_runs(other):
            continue
        changed = [key for key in CHANGED_KEYS if other.value_at(key) != config.value_at(key)]
        combined.append(Change(changed[0] if changed else "", ", ".join(labels), other))
    return combined


def srft_runs(config: SrftConfig) -> bool:
    """Whether `srft run` takes the layout: a sharded strategy over several devices, and LoRA
    only where the model stays whole (ddp, ZeRO-2)."""
    compute = config.compute
    if compute.strategy != "ddp" and compute.num_devices == 1:
        return False
    sharded_weights = compute.strategy == "fsdp" or (
        compute.strategy == "deepspeed" and compute.zero_stage == 3
    )
    return not (sharded_weights and config.model.lora is not None)


def _with(config: SrftConfig, section: str, **values) -> SrftConfig:
    updated = getattr(config, section).model_copy(update=values)
    return config.model_copy(update={section: updated})


def _label(config: SrftConfig, lora: bool = True) -> str:
    """'ddp', 'fsdp with cpu_offload', 'deepspeed with zero_stage 3, cpu_offload and LoRA'
    (LoRA named when it is on and `lora`)."""
    compute = config.compute
    parts = [f"zero_stage {compute.zero_stage}"] if compute.strategy == "deepspeed" else []
    parts += ["cpu_offload"] if compute.cpu_offload and compute.strategy != "ddp" else []
    parts += ["LoRA"] if lora and config.model.lora else []
    if not parts:
        return compute.strategy
    listed = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    return f"{compute.strategy} with {listed}"


def _gb(nbytes: float) -> str:
    return f"{nbytes / GB:.1f} GB"


def format_plan(
    plan: MemoryPlan,
    config: SrftConfig,
    policy: ModelShape,
    reward: ModelShape,
    device_memory_bytes: float | None,
    device_source: str,
) -> str:
    """The plan as aligned text: the set-up, one column per stage, GB per device, the verdict."""
    compute, lora = config.compute, config.model.lora
    precision = compute.mixed_precision if compute.mixed_precision != "no" else "fp32"
    lines = [
        "memory per device in GB (1e9 bytes), an estimate (the formulas: srft/memory.py)",
        f"policy: {config.model.sft_checkpoint or config.model.base_model}, {_describe(policy)}",
        f"reward model: {_reward_name(config)}, {_describe(reward)}",
        f"strategy: {_label(config, lora=False)}  precision: {precision}  "
        f"LoRA: {f'on (r {lora.r})' if lora else 'off'}  devices: {compute.num_devices}  "
        f"gradient checkpointing: {'on' if compute.gradient_checkpointing else 'off'}",
        "",
    ]
    width = max(len(name) for name, _ in ROWS)
    columns = [max(len(stage.stage), 8) for stage in plan.stages]
    header = "".join(f"  {s.stage:>{w}}" for s, w in zip(plan.stages, columns, strict=True))
    lines.append(f"{'':<{width}}{header}")
    for name, attribute in ROWS:
        cells = "".join(
            f"  {_cell(getattr(s, attribute)):>{w}}"
            for s, w in zip(plan.stages, columns, strict=True)
        )
        lines.append(f"{name:<{width}}{cells}")
    lines.append("")
    peak = plan.peak
    if device_memory_bytes is None:
        lines.append(f"device memory: unknown ({device_source})")
        lines.append(f"peak: the {peak.stage} stage, {_gb(peak.total)} per device")
        return "\n".join(lines)
    fits = peak.total <= device_memory_bytes
    lines.append(f"device memory: {_gb(device_memory_bytes)} ({device_source})")
    verdict = "fits" if fits else "does not fit"
    lines.append(f"{verdict}: the {peak.stage} stage's {_gb(peak.total)} per device is the peak")
    return "\n".join(lines)


def _reward_name(config: SrftConfig) -> str:
    if config.model.reward_model_type == "shared":
        return "shared (the SFT policy with a score head)"
    return f"separate, {config.model.reward_base_model}"


def _cell(nbytes: float) -> str:
    """GB with two decimals; '-' for a component the stage does not have."""
    return f"{nbytes / GB:.2f}" if nbytes else "-"


def _count(parameters: int) -> str:
    """134515008 -> '1.35e8'."""
    mantissa, _, exponent = f"{parameters:.3g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


def _describe(shape: ModelShape) -> str:
    intermediate = f", intermediate {shape.intermediate_size}" if shape.intermediate_size else ""
    return (
        f"{_count(shape.parameters)} parameters ({shape.source}: hidden {shape.hidden_size}, "
        f"{shape.num_layers} layers, {shape.num_heads} heads{intermediate}, "
        f"vocab {shape.vocab_size})"
    )

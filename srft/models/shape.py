"""A model's size and layer shapes, read without loading a weight: parameters, width, depth,
heads, vocabulary and the linear layers LoRA adapts.

From a local directory's config.json (the model built on the meta device and counted), a GGUF
file's header, the embedded world's config, a Hub id's config.json (the network or the local
cache), or, given only a parameter count, a Llama-like decoder of that size.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from srft.config import WORLD_MODEL, WorldConfig
from srft.errors import SrftError

#: the head a model is read with: a causal LM (policies) or a one-output classifier (reward
#: models, critics)
Head = Literal["causal", "classifier"]

# A Llama-like decoder: 128 dimensions per head, as many layers as heads, the MLP 8/3 as wide as
# the model rounded up to 256, Llama-2's vocabulary, untied embeddings (Llama-2-7B comes out
# exactly: hidden 4096, 32 layers, intermediate 11008).
HEAD_DIM = 128
LLAMA_VOCAB = 32000
LLAMA_LAYER_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
LLAMA_LAYER_LINEARS += ("self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")

# GGUF tensor names -> transformers module names, so `target_modules` match either.
GGUF_LINEARS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
CLASSIFIER_HEADS = ("score", "classifier")
SUFFIXES = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


@dataclass(frozen=True)
class LinearLayer:
    """A linear layer LoRA may adapt: its module name and the widths of its input and output."""

    name: str
    in_features: int
    out_features: int


@dataclass(frozen=True)
class ModelShape:
    """What the memory plan needs of a model. `linear_layers` are every linear layer but the
    output head (the LM head of a causal LM, the score head of a classifier)."""

    parameters: int
    hidden_size: int
    num_layers: int
    num_heads: int
    vocab_size: int
    intermediate_size: int | None
    linear_layers: tuple[LinearLayer, ...]
    source: str  # where the shape comes from, as the plan prints it

    @property
    def assumed(self) -> bool:
        return self.source == "shape assumed"


def parse_parameter_count(text: str, option: str = "--params") -> int:
    """'7e9', '7B', '6.74e9', '135M' -> parameters."""
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmbgt]?)\s*", text, re.I)
    if not found or float(found[1]) <= 0:
        raise SrftError(f"{option} {text}: expected a number of parameters such as 7e9, 7B or 135M")
    return round(float(found[1]) * SUFFIXES.get(found[2].upper(), 1))


def llama_layer_parameters(hidden: int, intermediate: int) -> int:
    """One Llama decoder layer: four attention and three MLP matrices, two norms."""
    return 4 * hidden * hidden + 3 * hidden * intermediate + 2 * hidden


def llama_parameters(hidden: int, layers: int, intermediate: int, vocab: int) -> int:
    """A Llama decoder with untied embeddings: embeddings, layers, final norm, LM head."""
    return 2 * vocab * hidden + layers * llama_layer_parameters(hidden, intermediate) + hidden


def llama_intermediate(hidden: int) -> int:
    return 256 * math.ceil(8 * hidden / 3 / 256)


def llama_like_shape(parameters: int) -> ModelShape:
    """The Llama-like decoder whose size comes closest to `parameters`: the width (a multiple
    of 128) at which the layer count that size needs is nearest to width / 128."""

    def layers_needed(hidden: int) -> float:
        outside_layers = llama_parameters(hidden, 0, 0, LLAMA_VOCAB)
        per_layer = llama_layer_parameters(hidden, llama_intermediate(hidden))
        return (parameters - outside_layers) / per_layer

    widths = [h for h in range(HEAD_DIM, 32768 + 1, HEAD_DIM) if layers_needed(h) >= 1]
    hidden = min(widths, key=lambda h: abs(math.log(layers_needed(h) * HEAD_DIM / h)), default=128)
    layers = max(1, round(layers_needed(hidden)))
    intermediate = llama_intermediate(hidden)
    widths_in_out = {
        "mlp.gate_proj": (hidden, intermediate),
        "mlp.up_proj": (hidden, intermediate),
        "mlp.down_proj": (intermediate, hidden),
    }
    linear = tuple(
        LinearLayer(f"model.layers.{i}.{name}", *widths_in_out.get(name, (hidden, hidden)))
        for i in range(layers)
        for name in LLAMA_LAYER_LINEARS
    )
    return ModelShape(
        parameters=parameters,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=hidden // HEAD_DIM,
        vocab_size=LLAMA_VOCAB,
        intermediate_size=intermediate,
        linear_layers=linear,
        source="shape assumed",
    )


def read_shape(
    name: str, head: Head = "causal", world: WorldConfig | None = None, offline: bool = False
) -> ModelShape:
    """The shape of the model `name` names: 'srft:world', a local directory, a GGUF file or a
    Hub id (with `offline`, only from the local cache). SrftError when it cannot be read."""
    if name == WORLD_MODEL:
        return _world_shape(world or WorldConfig(), head)
    path = Path(name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return _gguf_shape(path)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise SrftError(f"{name}: no config.json in this directory")
        return _transformers_shape(_auto_config(str(path), name, offline=True), head, "config.json")
    if path.exists() or name.startswith((".", "/", "~")) or name.endswith(".gguf"):
        raise SrftError(f"{name}: not a model directory or GGUF file")
    return _transformers_shape(_auto_config(name, name, offline), head, "Hub config")


def _auto_config(target: str, name: str, offline: bool):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(target, local_files_only=True)
    except (OSError, ValueError) as cached_err:
        if offline:
            raise SrftError(_unreadable(name, cached_err)) from None
    try:
        return AutoConfig.from_pretrained(target)
    except (OSError, ValueError) as err:
        raise SrftError(_unreadable(name, err)) from None


def _unreadable(name: str, err: Exception) -> str:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return f"{name}: cannot read the model's config ({first})"


def _world_shape(world: WorldConfig, head: Head) -> ModelShape:
    from srft.world.model import base_model_config
    from srft.world.tokenizer import build_tokenizer

    config = base_model_config(build_tokenizer(), world.hidden_size, world.num_layers)
    return _transformers_shape(config, head, "the world's config")


def _transformers_shape(config, head: Head, source: str) -> ModelShape:
    """Build the model on the meta device (no memory, no weights) and count it exactly."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    config = copy.deepcopy(config)
    if head == "classifier":
        config.num_labels = 1
    auto = AutoModelForCausalLM if head == "causal" else AutoModelForSequenceClassification
    with torch.device("meta"):
        model = auto.from_config(config)
    output = model.get_output_embeddings() if head == "causal" else None
    linear = tuple(
        LinearLayer(name, *_in_out(module))
        for name, module in model.named_modules()
        if _in_out(module) and module is not output and name not in CLASSIFIER_HEADS
    )
    text = config.get_text_config()
    return ModelShape(
        parameters=sum(p.numel() for p in model.parameters()),
        hidden_size=text.hidden_size,
        num_layers=text.num_hidden_layers,
        num_heads=text.num_attention_heads,
        vocab_size=text.vocab_size,
        intermediate_size=getattr(text, "intermediate_size", None),
        linear_layers=linear,
        source=source,
    )


def _in_out(module) -> tuple[int, int] | None:
    """A linear layer's (in, out) widths: torch's Linear, or transformers' Conv1D (GPT-2)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, Conv1D):
        return module.nx, module.nf
    return None


def _gguf_shape(path: Path) -> ModelShape:
    """Tensor shapes and hyperparameters from the file's header; the weights are not read."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise SrftError(f"{path}: reading GGUF needs the gguf package (pip install gguf)") from None
    reader = GGUFReader(path)
    arch = reader.fields["general.architecture"].contents()

    def field(key: str) -> int | None:
        found = reader.fields.get(f"{arch}.{key}")
        if found is None:
            return None
        value = found.contents()  # a list where the value varies by layer
        return int(max(value)) if isinstance(value, list) else int(value)

    shapes = {t.name: [int(n) for n in t.shape] for t in reader.tensors}
    linear = tuple(
        LinearLayer(_gguf_module_name(name), *dims)
        for name, dims in shapes.items()
        if name.startswith("blk.") and name.endswith(".weight") and len(dims) == 2
    )
    embedding = shapes.get("token_embd.weight", [0, 0])
    return ModelShape(
        parameters=sum(int(t.n_elements) for t in reader.tensors),
        hidden_size=field("embedding_length") or embedding[0],
        num_layers=field("block_count") or 1,
        num_heads=field("attention.head_count") or 1,
        vocab_size=field("vocab_size") or embedding[1],
        intermediate_size=field("feed_forward_length"),
        linear_layers=linear,
        source="GGUF header",
    )


def _gguf_module_name(tensor: str) -> str:
    """'blk.3.attn_q.weight' -> 'model.layers.3.self_attn.q_proj'."""
    _, layer, kind = tensor.removesuffix(".weight").split(".", 2)
    return f"model.layers.{layer}.{GGUF_LINEARS.get(kind, kind)}"

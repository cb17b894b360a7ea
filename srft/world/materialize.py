"""Write the embedded world into a run directory and point the config at its files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from srft.artifacts import atomic_write_json, atomic_write_jsonl, read_json
from srft.config import SrftConfig
from srft.world.generate import generate_world
from srft.world.model import build_base_model
from srft.world.tokenizer import build_tokenizer


def world_fingerprint(config: SrftConfig) -> str:
    payload = json.dumps({"seed": config.seed, "world": config.world.model_dump()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def materialize_world(config: SrftConfig, folder: Path) -> SrftConfig:
    """Generate the world's files in `folder` (once per seed and world settings) and return the
    config with the world's files filled in where the user left a path unset."""
    fingerprint = world_fingerprint(config)
    manifest = folder / "manifest.json"
    if not (manifest.exists() and read_json(manifest).get("fingerprint") == fingerprint):
        _write_world(config, folder, fingerprint)
    return resolve_world_paths(config, folder)


def resolve_world_paths(config: SrftConfig, folder: Path) -> SrftConfig:
    resolved = config.model_copy(deep=True)
    resolved.model.base_model = str(folder / "base_model")
    data = resolved.data
    data.sft_file = data.sft_file or str(folder / "sft.jsonl")
    data.prompts_file = data.prompts_file or str(folder / "prompts.jsonl")
    data.eval_prompts_file = data.eval_prompts_file or str(folder / "eval_prompts.jsonl")
    if not resolved.evaluation.benchmarks:
        resolved.evaluation.benchmarks = {
            path.stem: str(path) for path in sorted((folder / "benchmarks").glob("*.jsonl"))
        }
    return resolved


def _write_world(config: SrftConfig, folder: Path, fingerprint: str) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    w = config.world
    world = generate_world(
        config.seed,
        n_sft_list=w.n_sft_list,
        n_sft_skill=w.n_sft_skill,
        n_preference_prompts=w.n_preference_prompts,
        n_eval_prompts=w.n_eval_prompts,
        n_benchmark_items=w.n_benchmark_items,
    )
    atomic_write_jsonl(folder / "sft.jsonl", world.sft)
    atomic_write_jsonl(folder / "prompts.jsonl", [{"prompt": p} for p in world.preference_prompts])
    atomic_write_jsonl(folder / "eval_prompts.jsonl", [{"prompt": p} for p in world.eval_prompts])
    for name, items in world.benchmarks.items():
        atomic_write_jsonl(folder / "benchmarks" / f"{name}.jsonl", items)
    tokenizer = build_tokenizer()
    model = build_base_model(tokenizer, w.hidden_size, w.num_layers, seed=config.seed)
    model.save_pretrained(folder / "base_model")
    tokenizer.save_pretrained(folder / "base_model")
    atomic_write_json(folder / "manifest.json", {"fingerprint": fingerprint, "seed": config.seed})

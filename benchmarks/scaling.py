"""RL scaling: stage-5 episodes per second of srft's engine for the same global batch on
1 process x 1 thread (p1t1), 1 process x 2 threads (p1t2) and 2 processes x 1 thread (p2t1,
gloo, started through accelerate's launcher as `srft run` starts them).

Two models, each a randomly initialised Llama with a value head on its trunk, a frozen copy as
the reference and a reward model of the same shape: the embedded world's (width 64, 2 layers)
and one of about 25M parameters (width 512, 8 layers). The work is stage 5's defaults: global
batch 64 prompts, mini-batch 16, 4 PPO epochs, prompts of up to 32 tokens, 24 response tokens.
Each worker times `--steps` rollout-and-update steps after one warm-up step; rounds alternate
between the layouts. Prints episodes/s per layout (median over rounds); the last line printed is
one JSON object: {"world": {"p1t1", "p1t2", "p2t1"}, "25M": {...}} (episodes/s).

    .venv/bin/python benchmarks/scaling.py [--rounds 3] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"world": (64, 2, 4, 176), "25M": (512, 8, 8, 1376)}  # width, layers, heads, ffn
LAYOUTS = {"p1t1": (1, 1), "p1t2": (1, 2), "p2t1": (2, 1)}  # processes, threads each
BATCH, MINI_BATCH, PPO_EPOCHS = 64, 16, 4
PROMPT_LENGTH, RESPONSE_LENGTH = 32, 24


def worker(model_name: str, steps: int) -> None:
    import copy

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    from srft.config import ComputeConfig, DataConfig, RLTrainingConfig
    from srft.distributed import barrier, is_main, world_size
    from srft.launch import start_processes
    from srft.rl.build import rl_accelerator
    from srft.rl.engine import RLEngine
    from srft.rl.policy import PolicyWithValue
    from srft.rl.rollout import left_pad
    from srft.world.generate import all_list_prompts
    from srft.world.tokenizer import build_tokenizer

    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if processes > 1:
        start_processes(ComputeConfig(num_devices=processes, device="cpu"), on_cpu=True)
    width, layers, heads, ffn = MODELS[model_name]
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=PROMPT_LENGTH + RESPONSE_LENGTH + 8,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
    )
    torch.manual_seed(0)
    policy = LlamaForCausalLM(config)
    reward_model = LlamaForSequenceClassification(config).eval().requires_grad_(False)

    def reward(prompts, responses, sequences) -> torch.Tensor:
        ids, mask = left_pad(sequences, tokenizer.pad_token_id)
        with torch.no_grad():
            return reward_model(input_ids=ids, attention_mask=mask).logits[:, 0]

    engine = RLEngine(
        PolicyWithValue(policy, None),
        tokenizer,
        reward,
        RLTrainingConfig(batch_size=BATCH, mini_batch_size=MINI_BATCH, ppo_epochs=PPO_EPOCHS),
        DataConfig(max_prompt_length=PROMPT_LENGTH, max_response_length=RESPONSE_LENGTH),
        ComputeConfig(),
        kl_aim_nats=0.05,
        seed=0,
        reference=copy.deepcopy(policy),
        accelerator=rl_accelerator(ComputeConfig(device="cpu")),
    )
    prompts = all_list_prompts()
    batches = [
        [prompts[(step * BATCH + i) % len(prompts)] for i in range(BATCH)]
        for step in range(steps + 1)
    ]
    engine.step(batches[0])  # warm-up
    barrier()
    start = time.perf_counter()
    for batch in batches[1:]:
        engine.step(batch)
    barrier()
    seconds = time.perf_counter() - start
    if is_main():
        episodes = steps * BATCH
        print(json.dumps({"episodes_per_s": episodes / seconds, "processes": world_size()}))


def run_layout(model: str, layout: str, steps: int) -> float:
    processes, threads = LAYOUTS[layout]
    from srft.launch import launcher

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    script = [str(Path(__file__).resolve()), "--worker", model, "--steps", str(steps)]
    if processes == 1:
        command = [sys.executable, *script]
    else:
        env["ACCELERATE_USE_CPU"] = "true"
        command = [*launcher(processes), *script]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{model} {layout} failed:\n{done.stderr[-3000:]}")
    line = [text for text in done.stdout.splitlines() if text.startswith("{")][-1]
    found = json.loads(line)
    assert found["processes"] == processes
    return found["episodes_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--worker", choices=sorted(MODELS))
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps)
        return
    results: dict[str, dict[str, float]] = {}
    for model in MODELS:
        seen: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
        for _ in range(args.rounds):
            for layout in LAYOUTS:
                seen[layout].append(run_layout(model, layout, args.steps))
        results[model] = {layout: round(statistics.median(v), 2) for layout, v in seen.items()}
        base = results[model]["p1t1"]
        for layout, value in results[model].items():
            runs = ", ".join(f"{v:.1f}" for v in seen[layout])
            print(f"{model:5s} {layout}: {value:8.2f} episodes/s  x{value / base:.2f}  ({runs})")
    print(json.dumps(results))


if __name__ == "__main__":
    main()

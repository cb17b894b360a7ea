"""GRPO throughput: srft's stage-5 engine against TRL 1.16's GRPOTrainer on the same work.

Both train the same randomly initialised GPT-2 policy (4 layers, width 128; rl_throughput.py
builds it) against the same GPT-2 reward model, on CPU with `--threads` torch threads: each
step samples 8 prompts x 4 responses (group size 4) of up to `--response-tokens` tokens (16,
as rl_throughput.py's; at most 40), scores them, normalises each score within its group, and takes one optimizer step on all 32 with
the clipped objective, the KL to a frozen reference in the loss (k3, coefficient 0.04), each
response's token mean averaged over responses (TRL's loss_type "grpo"). TRL 1.16 runs in a
virtual environment of its own (benchmarks/.venv-trl116, created on first use). Runs alternate
between the two; each worker times its steps after one warm-up step. The last line printed is
one JSON object: {"srft_episodes_per_s", "trl_episodes_per_s", "ratio", ...}.

    .venv/bin/python benchmarks/grpo_throughput.py [--rounds 3] [--steps 20] [--threads 2]
        [--response-tokens 16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from rl_throughput import PROMPT_LENGTH, build_models
from versus_trl import (
    ROOT,
    alternate,
    clocked_episodes_per_s,
    engine_episodes_per_s,
    step_clock,
    trl_python,
)

TRL_VENV = ROOT / "benchmarks" / ".venv-trl116"
PROMPTS, GROUP = 8, 4
BATCH = PROMPTS * GROUP
LEARNING_RATE = 1e-6
BETA = 0.04
#: response tokens, as rl_throughput.py's; at most 40, what the models' 64 positions leave
RESPONSE_LENGTH = 16


def srft_worker(folder: Path, steps: int, response_length: int) -> float:
    from srft.config import ComputeConfig, DataConfig, RLTrainingConfig
    from srft.models.loading import load_policy, load_reward_model, load_tokenizer
    from srft.models.reward import RewardScorer
    from srft.rl.engine import RLEngine
    from srft.rl.policy import PolicyWithValue

    tokenizer = load_tokenizer(str(folder / "policy"))
    policy = load_policy(str(folder / "policy"))
    reward = load_reward_model(str(folder / "reward"), tokenizer.pad_token_id)
    rl = RLTrainingConfig(
        algorithm="GRPO",
        group_size=GROUP,
        batch_size=BATCH,
        mini_batch_size=BATCH,
        ppo_epochs=1,
        learning_rate=LEARNING_RATE,
        kl_penalty=BETA,
        kl_in="loss",
        adaptive_kl=False,
        entropy_bonus=0.0,
        loss_aggregation="sequence",
    )
    engine = RLEngine(
        PolicyWithValue(policy, None, value=False),
        tokenizer,
        RewardScorer(reward, tokenizer, PROMPT_LENGTH, response_length, policy_tokenizer=tokenizer),
        rl,
        DataConfig(max_prompt_length=PROMPT_LENGTH, max_response_length=response_length),
        ComputeConfig(),
        kl_aim_nats=0.05,  # unused: the KL coefficient is fixed
        seed=0,
        reference=load_policy(str(folder / "policy")),
    )
    prompts = json.loads((folder / "prompts.json").read_text())
    return engine_episodes_per_s(engine, prompts, PROMPTS, steps)


def trl_worker(folder: Path, steps: int, response_length: int) -> float:
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(folder / "policy", padding_side="left")
    prompts = json.loads((folder / "prompts.json").read_text())
    dataset = Dataset.from_dict({"prompt": prompts})
    clock, ends = step_clock()
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out,
            per_device_train_batch_size=BATCH,
            gradient_accumulation_steps=1,
            num_generations=GROUP,
            steps_per_generation=1,
            num_iterations=1,
            max_completion_length=response_length,
            max_steps=steps + 1,
            learning_rate=LEARNING_RATE,
            beta=BETA,
            loss_type="grpo",
            scale_rewards="group",
            temperature=1.0,
            report_to=[],
            save_strategy="no",
            logging_steps=10_000,
            use_cpu=True,
            disable_tqdm=True,
            seed=0,
        )
        trainer = GRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(folder / "policy"),
            reward_funcs=AutoModelForSequenceClassification.from_pretrained(
                folder / "reward", num_labels=1
            ),
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            reward_processing_classes=tokenizer,
            callbacks=[clock],
        )
        trainer.train()
    return clocked_episodes_per_s(ends, BATCH)  # the first step is the warm-up, as srft's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per side")
    parser.add_argument("--steps", type=int, default=20, help="timed GRPO steps per run")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each worker")
    parser.add_argument(
        "--response-tokens", type=int, default=RESPONSE_LENGTH, choices=range(1, 41)
    )
    parser.add_argument("--worker", choices=["srft", "trl"])
    parser.add_argument("--models", type=Path)
    args = parser.parse_args()

    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        worker = trl_worker if args.worker == "trl" else srft_worker
        print(worker(args.models, args.steps, args.response_tokens))
        return

    pythons = {"srft": Path(sys.executable), "trl": trl_python(TRL_VENV, "1.16.0")}
    with tempfile.TemporaryDirectory() as tmp:
        build_models(Path(tmp))
        figures = alternate(
            args.rounds, pythons, __file__, "--models", tmp, "--steps", str(args.steps),
            "--threads", str(args.threads), "--response-tokens", str(args.response_tokens),
        )  # fmt: skip
    srft_figure, trl_figure = (statistics.median(figures[w]) for w in ("srft", "trl"))
    print(
        json.dumps(
            {
                "srft_episodes_per_s": round(srft_figure, 2),
                "trl_episodes_per_s": round(trl_figure, 2),
                "ratio": round(srft_figure / trl_figure, 2),
                "group_size": GROUP,
                "batch": BATCH,
                "response_tokens": args.response_tokens,
                "rounds": args.rounds,
                "steps_per_run": args.steps,
                "threads": args.threads,
            }
        )
    )


if __name__ == "__main__":
    main()

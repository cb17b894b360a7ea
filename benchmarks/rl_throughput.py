"""RL throughput: srft's stage-5 engine against TRL 1.9.2's PPOTrainer on the same work.

Both train the same randomly initialised GPT-2 policy (4 layers, width 128), value model and
reward model, on CPU: batch 16, response length 16, 4 PPO epochs, one mini-batch. TRL 1.9.2 is
the last TRL release with PPO; it runs in a virtual environment of its own
(benchmarks/.venv-trl, created on first use). Runs alternate between the two; each worker
times its rollout-and-update steps after one warm-up step. The last line printed is one JSON
object: {"srft_episodes_per_s", "trl_episodes_per_s", "ratio", ...}; the headline ratio is for
the same work (srft with a separate value model, as TRL has), and srft's default
configuration (value head on the policy's trunk) is printed beside it.

    .venv/bin/python benchmarks/rl_throughput.py [--rounds 3] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from versus_trl import (
    ROOT,
    alternate,
    clocked_episodes_per_s,
    engine_episodes_per_s,
    step_clock,
    trl_python,
)

TRL_VENV = ROOT / "benchmarks" / ".venv-trl"
BATCH = 16
RESPONSE_LENGTH = 16
PPO_EPOCHS = 4
LEARNING_RATE = 3e-6
KL_COEF = 0.05
PROMPT_LENGTH = 24


def build_models(folder: Path) -> None:
    """The shared starting point: tokenizer, policy, value and reward models, saved once."""
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    from srft.world.generate import all_list_prompts
    from srft.world.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=128,
        n_layer=4,
        n_head=4,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    for name, cls, extra in (
        ("policy", GPT2LMHeadModel, {}),
        ("value", GPT2ForSequenceClassification, {"num_labels": 1}),
        ("reward", GPT2ForSequenceClassification, {"num_labels": 1}),
    ):
        torch.manual_seed({"policy": 0, "value": 1, "reward": 2}[name])
        model = cls(GPT2Config(**config.to_dict(), **extra))
        model.save_pretrained(folder / name)
        tokenizer.save_pretrained(folder / name)
    prompts = all_list_prompts()[: BATCH * 64]
    (folder / "prompts.json").write_text(json.dumps(prompts))


def srft_worker(folder: Path, steps: int, value_model: str) -> float:
    from srft.config import ComputeConfig, DataConfig, RLTrainingConfig
    from srft.models.loading import load_critic, load_policy, load_reward_model, load_tokenizer
    from srft.models.reward import RewardScorer
    from srft.rl.engine import RLEngine
    from srft.rl.policy import PolicyWithValue

    tokenizer = load_tokenizer(str(folder / "policy"))
    policy = load_policy(str(folder / "policy"))
    reference = load_policy(str(folder / "policy"))
    critic = (
        load_critic(str(folder / "value"), tokenizer.pad_token_id)
        if value_model == "separate"
        else None
    )
    reward = load_reward_model(str(folder / "reward"), tokenizer.pad_token_id)
    rl = RLTrainingConfig(
        algorithm="PPO",
        learning_rate=LEARNING_RATE,
        kl_penalty=KL_COEF,
        adaptive_kl=False,
        entropy_bonus=0.0,
        batch_size=BATCH,
        mini_batch_size=BATCH,
        ppo_epochs=PPO_EPOCHS,
        max_grad_norm=None,  # TRL's PPO loop steps without clipping gradients
    )
    lengths = DataConfig(max_prompt_length=PROMPT_LENGTH, max_response_length=RESPONSE_LENGTH)
    engine = RLEngine(
        PolicyWithValue(policy, critic),
        tokenizer,
        RewardScorer(reward, tokenizer, PROMPT_LENGTH, RESPONSE_LENGTH, policy_tokenizer=tokenizer),
        rl,
        lengths,
        ComputeConfig(),
        kl_aim_nats=0.05,  # unused: the KL penalty is fixed
        seed=0,
        reference=reference,
    )
    prompts = json.loads((folder / "prompts.json").read_text())
    return engine_episodes_per_s(engine, prompts, BATCH, steps)


def trl_worker(folder: Path, steps: int) -> float:
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(folder / "policy", padding_side="left")
    prompts = json.loads((folder / "prompts.json").read_text())
    ids = [tokenizer(p)["input_ids"][-PROMPT_LENGTH:] for p in prompts]
    dataset = Dataset.from_dict({"input_ids": ids})
    clock, ends = step_clock()
    with tempfile.TemporaryDirectory() as out:
        config = PPOConfig(
            output_dir=out,
            per_device_train_batch_size=BATCH,
            gradient_accumulation_steps=1,
            num_mini_batches=1,
            num_ppo_epochs=PPO_EPOCHS,
            response_length=RESPONSE_LENGTH,
            local_rollout_forward_batch_size=BATCH,
            total_episodes=BATCH * (steps + 1),
            learning_rate=LEARNING_RATE,
            kl_coef=KL_COEF,
            num_sample_generations=0,
            report_to=[],
            save_strategy="no",
            logging_steps=10_000,
            use_cpu=True,
            disable_tqdm=True,
            seed=0,
        )
        trainer = PPOTrainer(
            args=config,
            processing_class=tokenizer,
            model=AutoModelForCausalLM.from_pretrained(folder / "policy"),
            ref_model=AutoModelForCausalLM.from_pretrained(folder / "policy"),
            reward_model=AutoModelForSequenceClassification.from_pretrained(
                folder / "reward", num_labels=1
            ),
            value_model=AutoModelForSequenceClassification.from_pretrained(
                folder / "value", num_labels=1
            ),
            train_dataset=dataset,
            eval_dataset=dataset.select(range(BATCH)),
            callbacks=[clock],
        )
        trainer.train()
    return clocked_episodes_per_s(ends, BATCH)  # the first step is the warm-up, as srft's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per side")
    parser.add_argument("--steps", type=int, default=20, help="timed PPO steps per run")
    parser.add_argument("--worker", choices=["srft-separate", "srft-shared", "trl"])
    parser.add_argument("--models", type=Path)
    args = parser.parse_args()

    if args.worker:
        if args.worker == "trl":
            print(trl_worker(args.models, args.steps))
        else:
            print(srft_worker(args.models, args.steps, args.worker.removeprefix("srft-")))
        return

    trl, ours = trl_python(TRL_VENV, "1.9.2"), Path(sys.executable)
    pythons = {"srft-separate": ours, "trl": trl, "srft-shared": ours}
    with tempfile.TemporaryDirectory() as tmp:
        build_models(Path(tmp))
        figures = alternate(
            args.rounds, pythons, __file__, "--models", tmp, "--steps", str(args.steps)
        )
    srft_same = statistics.median(figures["srft-separate"])
    trl_figure = statistics.median(figures["trl"])
    print(
        json.dumps(
            {
                "srft_episodes_per_s": round(srft_same, 2),
                "trl_episodes_per_s": round(trl_figure, 2),
                "ratio": round(srft_same / trl_figure, 2),
                "srft_default_episodes_per_s": round(statistics.median(figures["srft-shared"]), 2),
                "rounds": args.rounds,
                "steps_per_run": args.steps,
            }
        )
    )


if __name__ == "__main__":
    main()

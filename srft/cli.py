"""The `srft` command: thin wrappers that parse arguments and call the pipeline."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer

from srft.errors import SrftError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Supervised Reward Fine-tuning: SFT, preference data, reward model and RL from one YAML file.",
)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key: section.key=value (YAML value)"),
]


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    # A deprecation inside transformers' own Trainer, not something a user can act on.
    warnings.filterwarnings(
        "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
    )


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config")] = Path(
        "srf_config.yaml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file")] = False,
    profile: Annotated[
        str,
        typer.Option(
            help="world (the embedded default), hh-rm (MiniLM RM on HH-RLHF) or smollm2 "
            "(SmolLM2-135M on arithmetic; writes its task files into PATH's folder, <stem>_data)"
        ),
    ] = "world",
) -> None:
    """Write the seed's srf_config.yaml template with srft's defaults, every key commented."""
    from srft.artifacts import atomic_write_text
    from srft.profiles import profile_config
    from srft.template import render_template

    if path.exists() and not force:
        raise SrftError(f"{path}: already exists; pass --force to overwrite it")
    config = profile_config(profile, path.parent / f"{path.stem}_data")
    atomic_write_text(path, render_template(config))
    typer.echo(f"wrote {path}")


@app.command("validate-config")
def validate_config(
    path: Annotated[Path, typer.Argument(help="The YAML config to check")],
    set_: SetOption = None,
) -> None:
    """Check a config: unknown keys, types, ranges, consistency, input files."""
    from srft.config import load_config
    from srft.plugins import check_registered_names

    check_registered_names(load_config(path, set_), str(path))
    typer.echo(f"{path}: valid")


@app.command("validate-data")
def validate_data(
    file: Annotated[
        Path, typer.Argument(help="Preference pairs, JSONL {prompt, chosen, rejected}")
    ],
    gap_threshold: Annotated[float, typer.Option(help="Minimum preference gap")] = 0.15,
    score_scale: Annotated[
        tuple[float, float], typer.Option(help="MIN MAX of score_chosen/score_rejected")
    ] = (0.0, 1.0),
    min_pairs: Annotated[int, typer.Option(help="Minimum number of pairs")] = 1000,
    on_invalid: Annotated[str, typer.Option(help="error or drop")] = "error",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON")] = False,
) -> None:
    """Validate a preference-pair file: format, gap, count. Exit 1 when a check fails."""
    from srft.data.quality import validate_preference_pairs

    if on_invalid not in ("error", "drop"):
        raise SrftError(f"--on-invalid: expected 'error' or 'drop', got '{on_invalid}'")
    report = validate_preference_pairs(
        file,
        gap_threshold=gap_threshold,
        score_scale=score_scale,
        min_pairs=min_pairs,
        on_invalid=on_invalid,
    )
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())
    raise typer.Exit(0 if report.passed else 1)


@app.command()
def run(
    config: Annotated[
        Path | None, typer.Argument(help="Config YAML; none = the embedded world")
    ] = None,
    stages: Annotated[str | None, typer.Option(help="Stages to run, e.g. 1-4 or 2,3")] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Run directory")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every random source")] = None,
    set_: SetOption = None,
) -> None:
    """Run the pipeline; done stages whose inputs are unchanged are skipped."""
    _run(config, stages, output_dir, seed, set_ or [])


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Seed of the world and of training")] = 0,
    output_dir: Annotated[Path, typer.Option(help="Run directory")] = Path("outputs/demo"),
) -> None:
    """Run all seven stages on the embedded world; print the gate table and the report's path."""
    _run(None, None, output_dir, seed, [])


def _run(config_path, stages_text, output_dir, seed, overrides: list[str]) -> None:
    from srft.config import load_config
    from srft.distributed import is_main, leave
    from srft.launch import check_launch

    if seed is not None:
        overrides = [f"seed={seed}", *overrides]
    if output_dir is not None:
        overrides = [f"logging.output_dir={output_dir}", *overrides]
    config = load_config(config_path, overrides)
    check_launch(config.compute)
    _setup_logging()
    from srft.gates import gates_table
    from srft.memory_plan import check_fits
    from srft.pipeline import Pipeline, parse_stages, stage_specs
    from srft.plugins import check_registered_names

    check_registered_names(config, str(config_path or "config"))
    stages = parse_stages(stages_text, sorted(stage_specs()))
    if os.environ.get("RANK", "0") == "0":  # one check for all the processes
        check_fits(config)
    _start_processes(config.compute)
    outcome = Pipeline(config).execute(stages)
    if is_main():
        typer.echo(gates_table(outcome.gates))
        typer.echo(
            f"run directory: {outcome.run_dir}  (summary.json, decisions.jsonl, metrics.jsonl)"
        )
        typer.echo(f"report: {outcome.run_dir / 'report.md'}")
        if outcome.decision:
            typer.echo(f"decision: {outcome.decision}")
    # The launcher stops every process when one exits with a failure: the others wait until
    # the main one has written its report and said its last line.
    leave()
    raise typer.Exit(0 if outcome.status == "passed" else 1)


def _start_processes(compute) -> None:
    """With several devices: start the workers through accelerate's launcher (and exit with
    their status), or, in a worker, join the others."""
    from srft.launch import (
        check_devices,
        check_strategy,
        launched_processes,
        run_workers,
        start_processes,
    )
    from srft.models.loading import resolve_device

    device = resolve_device(compute)
    check_strategy(compute, device.type)
    if compute.num_devices == 1:
        return
    check_devices(compute, device.type)
    if launched_processes(os.environ) == 1:
        raise typer.Exit(run_workers(compute.num_devices, device.type == "cpu", sys.argv[1:]))
    start_processes(compute, device.type == "cpu")


@app.command()
def status(run_dir: Annotated[Path, typer.Argument(help="A run directory")]) -> None:
    """Each stage's state, time and gates."""
    from rich.console import Console
    from rich.table import Table

    from srft.artifacts import read_json
    from srft.manifests import stage_state
    from srft.run_dir import STAGE_FOLDERS

    run = _existing_run(run_dir)
    table = Table(title=f"srft run {run.name}")
    for column in ("stage", "name", "state", "seconds", "gates"):
        table.add_column(column)
    for number, folder in STAGE_FOLDERS.items():
        m = stage_state(run, number)
        if m is None:
            table.add_row(str(number), folder, "not run", "", "")
            continue
        seconds = f"{m['seconds']:.1f}" if "seconds" in m else ""
        gates = " ".join(f"{'✅' if g['passed'] else '❌'}{g['name']}" for g in m.get("gates", []))
        table.add_row(str(number), m["name"], m["status"], seconds, gates)
    Console().print(table)
    if run.summary.exists():
        summary = read_json(run.summary)
        typer.echo(
            f"status: {summary['status']}  wall: {summary['wall_seconds']:.1f} s  "
            f"decision: {summary['decision']}"
        )


@app.command()
def gates(run_dir: Annotated[Path, typer.Argument(help="A run directory")]) -> None:
    """Print the SRF Quality Gates Status table; exit 1 when a gate failed."""
    from srft.gates import gates_table
    from srft.manifests import collect_gates

    found = collect_gates(_existing_run(run_dir))
    typer.echo(gates_table(found))
    raise typer.Exit(1 if not found or any(g.blocking for g in found) else 0)


@app.command("evaluate-rm")
def evaluate_rm(
    model_dir: Annotated[str, typer.Argument(help="Reward model: a local directory or Hub id")],
    pairs_file: Annotated[str, typer.Argument(help="Pairs: JSONL, parquet or a Hub dataset id")],
    max_prompt_length: Annotated[int, typer.Option(help="Prompt tokens kept")] = 256,
    max_response_length: Annotated[int, typer.Option(help="Response tokens kept")] = 256,
    score_scale: Annotated[
        tuple[float, float] | None, typer.Option(help="MIN MAX of the pairs' scores")
    ] = None,
    drop_invalid: Annotated[
        bool, typer.Option(help="Skip invalid rows instead of stopping")
    ] = False,
) -> None:
    """Score a pair file with any reward model; print one JSON object (accuracy, n,
    mean_margin, length_correlation)."""
    _setup_logging()
    from srft.evaluation.reward_model import evaluate_reward_model

    result = evaluate_reward_model(
        model_dir,
        pairs_file,
        max_prompt_length=max_prompt_length,
        max_response_length=max_response_length,
        score_scale=score_scale,
        on_invalid="drop" if drop_invalid else "error",
    )
    typer.echo(json.dumps(result))


@app.command()
def plan(
    config: Annotated[Path, typer.Argument(help="The YAML config to plan")],
    params: Annotated[
        str | None,
        typer.Option(
            help="Policy parameters (7e9, 7B, 135M) instead of reading the model; its layer "
            "shapes are then those of a Llama-like decoder of that size"
        ),
    ] = None,
    reward_params: Annotated[
        str | None, typer.Option(help="Reward model parameters, likewise")
    ] = None,
    device_memory_gb: Annotated[
        float | None,
        typer.Option(
            help="Memory of one device, GB (1e9 bytes); default: the CUDA device's, or on the "
            "CPU this machine's RAM / compute.num_devices"
        ),
    ] = None,
    set_: SetOption = None,
) -> None:
    """Memory per device of each training stage; exit 2 naming the key to change if too much."""
    from srft.config import load_config
    from srft.memory import GB, plan_memory
    from srft.memory_plan import config_shapes, device_memory, fit_message, format_plan
    from srft.models.shape import parse_parameter_count

    loaded = load_config(config, set_)
    policy, reward = config_shapes(
        loaded,
        parse_parameter_count(params) if params else None,
        parse_parameter_count(reward_params, "--reward-params") if reward_params else None,
    )
    if device_memory_gb is not None and device_memory_gb <= 0:
        raise SrftError(f"--device-memory-gb {device_memory_gb}: expected a positive size")
    if device_memory_gb is not None:
        memory, source = device_memory_gb * GB, "--device-memory-gb"
    else:
        memory, source = device_memory(loaded.compute)
    memory_plan = plan_memory(loaded, policy, reward)
    typer.echo(format_plan(memory_plan, loaded, policy, reward, memory, source))
    message = fit_message(loaded, policy, reward, memory) if memory is not None else None
    if message is not None:
        raise SrftError(message)


def _existing_run(run_dir: Path):
    from srft.run_dir import RunDir

    if not run_dir.is_dir():
        raise SrftError(f"{run_dir}: no such run directory")
    if not (run_dir / "summary.json").exists() and not (run_dir / "config.yaml").exists():
        raise SrftError(f"{run_dir}: not an srft run directory (no summary.json)")
    return RunDir(run_dir)


def main() -> None:
    from srft.distributed import is_main, rank
    from srft.launch import WorkerLost

    try:
        app()
    except SrftError as err:
        if not is_main():
            # Mostly every process meets the same mistake, and the main one says it; the
            # launcher stops this one meanwhile. A mistake of this process alone is said here.
            time.sleep(5)
            err = SrftError(f"process {rank()}: {err}")
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except WorkerLost as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(1)

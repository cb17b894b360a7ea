"""The rules of a stage's manifest.json, each in one function: what a manifest holds, which
manifest of a stage counts (the newest of the published one and the last failed attempt), and
what a run's gates and summary.json are."""

from __future__ import annotations

import time
from typing import Any

from srft.artifacts import atomic_write_json, read_json
from srft.gates import Gate
from srft.outputs import StageOutputs, scalar_fields
from srft.run_dir import STAGE_FOLDERS, RunDir

#: Part of every stage's fingerprint: manifests of another format are not reused.
MANIFEST_FORMAT = 5


def stage_manifest(
    number: int,
    name: str,
    status: str,
    fingerprint: str,
    attempt: int,
    *,
    seconds: float | None = None,
    outputs: StageOutputs | None = None,
    gates: list[Gate] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A manifest: `running` (written when a stage starts), `done` (published) or `failed`
    (gates blocked it). A finished stage's manifest carries its outputs record and gates."""
    manifest: dict[str, Any] = {
        "stage": number,
        "name": name,
        "status": status,
        "fingerprint": fingerprint,
        "attempt": attempt,
    }
    if seconds is not None:
        manifest["seconds"] = round(seconds, 2)
        manifest["finished"] = time.time()
    if outputs is not None:
        manifest["outputs"] = outputs.model_dump(mode="json")
        manifest["files"] = list(outputs.file_fields())
    if gates is not None:
        manifest["gates"] = [g.to_dict() for g in gates]
    return {**manifest, **extra}


def published_manifest(run: RunDir, number: int) -> dict[str, Any]:
    """The manifest of the published stage, or {} when the stage has not been published."""
    path = run.manifest(number)
    return read_json(path) if path.exists() else {}


def latest_manifest(run: RunDir, number: int) -> dict[str, Any] | None:
    """The manifest that tells a stage's state: its failed attempt when that is newer than what
    is published, else the published one; None when neither exists."""
    found = [
        read_json(p) for p in (run.manifest(number), run.failed_manifest(number)) if p.exists()
    ]
    return max(found, key=lambda m: m.get("finished", 0)) if found else None


def forget_failed(run: RunDir, number: int) -> None:
    """A failed attempt counts only until the stage is published, or found current, again: its
    gates belong to settings the run no longer has."""
    run.failed_manifest(number).unlink(missing_ok=True)


def stage_state(run: RunDir, number: int) -> dict[str, Any] | None:
    """The manifest that says where a stage stands now: the marker of an attempt in progress
    (or interrupted), else `latest_manifest`."""
    marker = run.staging(number) / "manifest.json"
    if marker.exists() and (found := read_json(marker)).get("status") == "running":
        return found
    return latest_manifest(run, number)


def published_gates(run: RunDir, before: int) -> list[Gate]:
    """The gates of the published stages numbered below `before`, in stage order."""
    return [
        Gate.from_dict(g)
        for number in STAGE_FOLDERS
        if number < before
        for g in published_manifest(run, number).get("gates", [])
    ]


def collect_gates(run: RunDir) -> list[Gate]:
    """The gates of every stage's latest manifest, in stage order."""
    gates: list[Gate] = []
    for number in STAGE_FOLDERS:
        manifest = latest_manifest(run, number)
        if manifest is not None:
            gates += [Gate.from_dict(g) for g in manifest.get("gates", [])]
    return gates


def manifest_scalars(manifest: dict[str, Any]) -> dict[str, Any]:
    """The numbers and strings of a manifest's outputs record that are not files."""
    return scalar_fields(manifest.get("outputs", {}), manifest.get("files", []))


def write_summary(run: RunDir, status: str, wall_seconds: float, decision: str | None) -> None:
    """summary.json: the run's status, each published stage, the gates by name (the last
    stage's evaluation of each) and every evaluation of every stage in stage order, and the
    stages' scalar outputs as `<stage folder>.<name>`."""
    stages: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    for number, folder in STAGE_FOLDERS.items():
        manifest = published_manifest(run, number)
        if not manifest:
            continue
        stages[str(number)] = {
            "name": manifest["name"],
            "status": manifest["status"],
            "seconds": manifest["seconds"],
            # older manifests do not say: they ran in one process
            "processes": manifest.get("processes", 1),
            "strategy": manifest.get("strategy", "ddp"),
        }
        metrics.update({f"{folder}.{k}": v for k, v in manifest_scalars(manifest).items()})
    evaluated = collect_gates(run)
    # by name, the stage that evaluated a gate last (kl_divergence: stages 5, 6 and 7), as
    # people's CI reads it; every evaluation, warned failures included, in gate_evaluations
    gates = {
        g.name: {
            "value": g.value,
            "threshold": g.to_dict()["threshold"],
            "passed": g.passed,
            "stage": g.stage,
        }
        for g in evaluated
    }
    evaluations = [
        {
            "name": g.name,
            "stage": g.stage,
            "value": g.value,
            "threshold": g.to_dict()["threshold"],
            "comparison": g.comparison,
            "passed": g.passed,
            "mode": g.mode,
        }
        for g in evaluated
    ]
    atomic_write_json(
        run.summary,
        {
            "status": status,
            "run": run.name,
            "wall_seconds": round(wall_seconds, 2),
            "stages": stages,
            "gates": gates,
            "gate_evaluations": evaluations,
            "metrics": metrics,
            "decision": decision,
        },
    )

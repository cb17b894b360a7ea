"""The stage graph: fingerprints, skip and resume, gates and decisions, summary.json.

A stage runs in a staging folder and is published (renamed into place) only when its gates
allow it, so a failed or interrupted run never overwrites what an earlier good run wrote.

Every process of a multi-process run walks the graph alike: the main process writes and the
others wait for it before they read, and each stage's result is the main process's, so that
every process takes the same decision.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from srft.artifacts import (
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    read_json,
    replace_dir,
)
from srft.config import INPUT_FILE_KEYS, PROCESS_LAYOUT_KEYS, SrftConfig, validate_config
from srft.decisions import retry_or_stop
from srft.distributed import barrier, from_main, is_main, world_size
from srft.errors import SrftError
from srft.gates import Gate
from srft.manifests import (
    MANIFEST_FORMAT,
    collect_gates,
    forget_failed,
    published_manifest,
    stage_manifest,
    write_summary,
)
from srft.outputs import EvaluationOutputs, read_outputs
from srft.plugins import check_registered_names
from srft.report import write_report
from srft.run_dir import STAGE_FOLDERS, RunDir
from srft.stages.base import StageContext, StageResult, StageSpec
from srft.tracking import RunTrackers, Tracker

log = logging.getLogger("srft")


def stage_specs() -> dict[int, StageSpec]:
    """The registered stages, by number."""
    from srft.stages import (
        evaluation,
        iterations,
        preferences,
        reward,
        reward_validation,
        rl,
        sft,
    )

    specs = [
        sft.SPEC,
        preferences.SPEC,
        reward.SPEC,
        reward_validation.SPEC,
        rl.SPEC,
        iterations.SPEC,
        evaluation.SPEC,
    ]
    return {spec.number: spec for spec in specs}


def parse_stages(text: str | None, available: list[int]) -> list[int]:
    """'1-4', '2,3' or '3' -> stage numbers; None -> every available stage."""
    if not text:
        return available
    numbers: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            first, last = int(low), int(high or low)
            if last < first:
                raise ValueError
            numbers.update(range(first, last + 1))
    except ValueError:
        raise SrftError(
            f"--stages {text}: expected a range such as 1-4 or a list such as 2,3"
        ) from None
    unknown = sorted(numbers - set(available))
    if unknown:
        raise SrftError(
            f"--stages {text}: no stage {unknown[0]} (stages: {available[0]}-{available[-1]})"
        )
    return sorted(numbers)


@dataclass
class RunOutcome:
    status: str
    run_dir: Path
    gates: list[Gate] = field(default_factory=list)
    decision: str | None = None


class Pipeline:
    def __init__(self, config: SrftConfig, run_dir: Path | None = None) -> None:
        self.requested = config
        self.run = RunDir(Path(run_dir or config.logging.output_dir))
        self.specs = stage_specs()

    # ---- public -------------------------------------------------------------------------

    def execute(self, stages: list[int]) -> RunOutcome:
        check_registered_names(self.requested, "config")
        if is_main():
            self.run.root.mkdir(parents=True, exist_ok=True)
        config = self._resolve_inputs(self.requested)
        atomic_write_text(self.run.config, yaml.safe_dump(config.to_dict(), sort_keys=False))
        self.trackers = RunTrackers(config, self.run.root)
        try:
            return self._execute(config, stages)
        finally:
            self.trackers.finish(
                [self.run.report_md, self.run.report_html, self.run.summary, self.run.decisions]
            )

    def _execute(self, config: SrftConfig, stages: list[int]) -> RunOutcome:
        started = time.time()
        # Settings that earlier retries chose stay with their stage, so that a published stage
        # keeps matching its fingerprint on the next invocation.
        adjustments: dict[int, dict[str, Any]] = {
            n: self._manifest(n).get("adjustments") or {} for n in stages
        }
        adjustments = {n: changes for n, changes in adjustments.items() if changes}
        scheduled: set[int] = set()  # stages a decision sent back to
        retries: dict[int, int] = {}
        self._write_summary("running", started)
        index = 0
        while index < len(stages):
            number = stages[index]
            spec = self.specs[number]
            effective = _with_changes(config, adjustments.get(number, {}))
            fingerprint = self._fingerprint(spec, config, adjustments.get(number, {}))
            manifest = self._manifest(number)
            if (
                number not in scheduled
                and manifest.get("status") == "done"
                and manifest.get("fingerprint") == fingerprint
            ):
                log.info("stage %d %s: done, inputs unchanged; skipped", number, spec.name)
                if is_main():
                    forget_failed(self.run, number)
                barrier()
                index += 1
                continue
            attempt = retries.get(number, 0)
            result, seconds = from_main(self._run_stage(spec, effective, fingerprint, attempt))
            blocking = [g for g in result.gates if g.blocking]
            if not blocking:
                self._publish(
                    spec,
                    effective,
                    fingerprint,
                    result,
                    seconds,
                    attempt,
                    adjustments.get(number, {}),
                )
                self._decide(number, attempt, result.gates, "pass", "continue")
                scheduled.discard(number)
                index += 1
                self._write_summary("running", started)
                continue
            # a remedy builds on the settings this attempt's stages ran with, its own and those
            # earlier remedies gave the stages before it
            ran_with = _with_changes(
                config,
                {k: v for n in stages[: index + 1] for k, v in adjustments.get(n, {}).items()},
            )
            adjustment = spec.adjust(ran_with, result.gates, attempt) if spec.adjust else None
            verdict, reason = retry_or_stop(
                adjustment, retries.get(number, 0), config.gates.max_retries
            )
            if verdict == "stop" or adjustment is None:
                self._decide(number, attempt, result.gates, "stop", reason)
                self._fail_stage(spec, fingerprint, result, seconds, attempt)
                self._write_summary("failed", started, decision="stop")
                self._write_report()
                return RunOutcome("failed", self.run.root, self.gates(), "stop")
            origin = adjustment.rerun_from
            retries[number] = retries.get(number, 0) + 1
            changes = {**adjustments.get(origin, {}), **adjustment.changes}
            adjustments[origin] = changes
            scheduled.add(origin)
            self._decide(
                number,
                attempt,
                result.gates,
                "retry",
                reason,
                changes=adjustment.changes,
                rerun_from=origin,
            )
            if origin != number:
                retries[origin] = retries.get(origin, 0)
            index = stages.index(origin) if origin in stages else index
        decision = self._deploy_decision()
        self._write_summary("passed", started, decision)
        self._write_report()
        return RunOutcome("passed", self.run.root, self.gates(), decision)

    def gates(self) -> list[Gate]:
        return collect_gates(self.run)

    # ---- stages -------------------------------------------------------------------------

    def _run_stage(
        self, spec: StageSpec, config: SrftConfig, fingerprint: str, attempt: int
    ) -> tuple[StageResult, float]:
        workdir = self.run.staging(spec.number)
        marker = workdir / "manifest.json"
        # An interrupted attempt resumes from its checkpoints only with the very same settings.
        settings = _settings_hash(spec, config)
        previous = read_json(marker) if marker.exists() else {}
        resume = (
            previous.get("status") == "running"
            and previous.get("fingerprint") == fingerprint
            and previous.get("settings") == settings
        )
        barrier()  # every process has read the marker before the main one rewrites it
        if is_main():
            if workdir.exists() and not resume:
                shutil.rmtree(workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            marker,
            stage_manifest(
                spec.number, spec.name, "running", fingerprint, attempt, settings=settings
            ),
        )
        barrier()
        for upstream in spec.upstream_for(config):
            if self._manifest(upstream).get("status") != "done":
                raise SrftError(
                    f"stage {spec.number} ({spec.name}) needs stage {upstream} "
                    f"({self.specs[upstream].name}) done in {self.run.root}; run it first"
                )
        log.info(
            "stage %d %s: running%s",
            spec.number,
            spec.name,
            f" (attempt {attempt + 1})" if attempt else "",
        )
        tracker = Tracker(self.run.metrics, spec.number, attempt, self.trackers)
        ctx = StageContext(
            config,
            self.run,
            spec.number,
            workdir,
            tracker,
            spec.outputs,
            attempt,
            resume,
            spec.upstream_for(config),
        )
        start = time.time()
        result = spec.run(ctx)
        seconds = time.time() - start
        self.trackers.outputs(STAGE_FOLDERS[spec.number], attempt, result.outputs.scalars())
        log.info("stage %d %s: finished in %.1f s", spec.number, spec.name, seconds)
        return result, seconds

    def _publish(self, spec, config, fingerprint, result, seconds, attempt, changes) -> None:
        workdir = self.run.staging(spec.number)
        manifest = stage_manifest(
            spec.number,
            spec.name,
            "done",
            fingerprint,
            attempt,
            seconds=seconds,
            outputs=result.outputs,
            gates=result.gates,
            adjustments=changes,
            settings={s: getattr(config, s).model_dump(mode="json") for s in spec.sections},
            processes=world_size(),
            strategy=config.compute.strategy,
        )
        atomic_write_json(workdir / "manifest.json", manifest)
        replace_dir(workdir, self.run.stage(spec.number))
        if is_main():
            forget_failed(self.run, spec.number)
        barrier()  # the next stage reads what was published
        # Stages downstream of a rerun are stale: their manifests no longer match.

    def _fail_stage(self, spec, fingerprint, result, seconds, attempt) -> None:
        manifest = stage_manifest(
            spec.number,
            spec.name,
            "failed",
            fingerprint,
            attempt,
            seconds=seconds,
            outputs=result.outputs,
            gates=result.gates,
        )
        # The failed attempt stays in .staging for inspection; the published folder, if an
        # earlier run left one, is untouched.
        atomic_write_json(self.run.staging(spec.number) / "manifest.json", manifest)
        atomic_write_json(self.run.failed_manifest(spec.number), manifest)
        barrier()

    def _deploy_decision(self) -> str | None:
        """Stage 7's decision, when stage 7 is published (and its record readable: a run
        directory an older srft wrote has none)."""
        if not published_manifest(self.run, EvaluationOutputs.STAGE):
            return None
        try:
            return read_outputs(self.run, EvaluationOutputs).deploy_decision
        except SrftError:
            return None

    def _manifest(self, number: int) -> dict[str, Any]:
        return published_manifest(self.run, number)

    def _decide(
        self, stage: int, attempt: int, gates: list[Gate], decision: str, reason: str, **extra: Any
    ) -> None:
        row = {
            "time": time.time(),
            "stage": stage,
            "attempt": attempt,
            "decision": decision,
            "reason": reason,
            "gates": [g.to_dict() for g in gates],
            **extra,
        }
        append_jsonl(self.run.decisions, row)
        self.trackers.gates(STAGE_FOLDERS[stage], attempt, gates)
        self.trackers.decision(f"stage {stage} attempt {attempt}: {decision}: {reason}")
        for gate in gates:
            log.info(
                "gate %s: %s (target %s)%s",
                gate.name,
                gate.describe_value(),
                gate.describe_threshold(),
                "" if gate.passed else f" FAILED [{gate.mode}]",
            )
        if decision != "pass":
            log.info("decision after stage %d: %s: %s", stage, decision, reason)

    # ---- inputs -------------------------------------------------------------------------

    def _resolve_inputs(self, config: SrftConfig) -> SrftConfig:
        if not config.uses_world:
            return config
        from srft.world.materialize import materialize_world, resolve_world_paths

        if is_main():
            materialize_world(config, self.run.world)
        barrier()  # the others find the world written and only read it
        return validate_config(resolve_world_paths(config, self.run.world).to_dict(), "config")

    def _fingerprint(self, spec: StageSpec, config: SrftConfig, changes: dict[str, Any]) -> str:
        """A hash of the stage's inputs: its config sections, the settings decisions changed,
        the upstream stages' fingerprints and the input files' contents."""
        payload: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "stage": spec.number,
            "seed": config.seed,
            "changes": changes,
        }
        payload.update(_sections(spec, config))
        payload["upstream"] = {
            n: self._manifest(n).get("fingerprint") for n in spec.upstream_for(config)
        }
        payload["files"] = {
            key: _file_hash(config.value_at(key))
            for key in INPUT_FILE_KEYS
            if key.split(".")[0] in spec.sections
            and config.value_at(key)
            and not _process_layout(key)
        }
        if "evaluation" in spec.sections:
            payload["benchmark_files"] = {
                name: _file_hash(file) for name, file in config.evaluation.benchmark_files.items()
            }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    # ---- summary ------------------------------------------------------------------------

    def _write_report(self) -> None:
        if is_main():
            write_report(self.run, [spec.outputs for spec in self.specs.values()])

    def _write_summary(self, status: str, started: float, decision: str | None = None) -> None:
        write_summary(self.run, status, time.time() - started, decision)


def _with_changes(config: SrftConfig, changes: dict[str, Any]) -> SrftConfig:
    if not changes:
        return config
    data = config.to_dict()
    for key, value in changes.items():
        section, name = key.split(".")
        data[section][name] = value
    return SrftConfig.model_validate(data)


def _settings_hash(spec: StageSpec, config: SrftConfig) -> str:
    text = json.dumps(_sections(spec, config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _sections(spec: StageSpec, config: SrftConfig) -> dict[str, Any]:
    """The config sections a stage reads, without the keys of the process layout: the same
    work under another number of processes or strategy is the same stage."""
    sections = {s: getattr(config, s).model_dump(mode="json") for s in spec.sections}
    if "compute" in sections:
        for key in PROCESS_LAYOUT_KEYS:
            sections["compute"].pop(key, None)
    return sections


def _process_layout(key: str) -> bool:
    section, _, name = key.partition(".")
    return section == "compute" and name in PROCESS_LAYOUT_KEYS


def _file_hash(path: str) -> str:
    target = Path(path)
    if not target.exists():  # a Hub dataset id: its name is all there is to fingerprint
        return "hub:" + path
    if target.is_dir():
        return "dir:" + str(target.resolve())
    digest = hashlib.sha256()
    with target.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

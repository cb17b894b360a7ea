"""Running model-written code, for HumanEval: a separate Python process per program, with a
timeout, CPU-time, memory and file-size limits, no network (sockets refused), an empty working
directory and no inherited environment. It runs only when the config opts in
(`evaluation.execute_code`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

MEMORY_BYTES = 1 << 30  # address space of the child process
FILE_BYTES = 1 << 20  # largest file it may write

# Runs before the program in the child: resource limits, and the socket layer closed.
_PRELUDE = f"""
import resource, socket
resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_BYTES}, {MEMORY_BYTES}))
resource.setrlimit(resource.RLIMIT_FSIZE, ({FILE_BYTES}, {FILE_BYTES}))
resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
def _no_network(*args, **kwargs):
    raise OSError("network access is disabled in the srft sandbox")
socket.socket = _no_network
socket.create_connection = _no_network
socket.getaddrinfo = _no_network
del resource, socket, _no_network
"""


@dataclass(frozen=True)
class Outcome:
    passed: bool
    detail: str  # "passed", "timed out", or the last line of the error


def run_program(source: str, timeout_seconds: float = 10.0) -> Outcome:
    """Run `source` in a sandboxed child Python; it passes when it exits with status 0."""
    with tempfile.TemporaryDirectory(prefix="srft-sandbox-") as workdir:
        program = os.path.join(workdir, "program.py")
        with open(program, "w", encoding="utf-8") as handle:
            handle.write(_PRELUDE + "\n" + source)
        cpu = max(1, int(timeout_seconds))
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-S", program],
                cwd=workdir,
                env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_seconds,
                preexec_fn=lambda: _limit_cpu(cpu),
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Outcome(False, "timed out")
    if done.returncode == 0:
        return Outcome(True, "passed")
    if done.returncode < 0:  # killed: SIGKILL or SIGXCPU from the CPU-time limit, most often
        return Outcome(False, f"killed by signal {-done.returncode} (a resource limit)")
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return Outcome(False, lines[-1] if lines else f"exit status {done.returncode}")


def _limit_cpu(seconds: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))

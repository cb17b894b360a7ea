"""Progress of long loops: a rich bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import TrainerCallback

from srft.distributed import is_main

T = TypeVar("T")
log = logging.getLogger("srft")


def interactive() -> bool:
    """Whether to draw bars: on a terminal, in the main process (the others keep quiet)."""
    return sys.stderr.isatty() and is_main()


class Reporter:
    """Counts steps of one loop and shows them as a bar or as every-10% log lines."""

    def __init__(self, description: str, total: int) -> None:
        self.description = description
        self.total = max(total, 1)
        self.done = 0
        self._next_line = 0.1
        self._bar: Progress | None = None
        if interactive():
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=self.total)

    def advance(self, steps: int = 1, **fields: float) -> None:
        self.done += steps
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            return
        if self.done / self.total >= self._next_line or self.done == self.total:
            shown = " ".join(f"{k}={v:.4g}" for k, v in fields.items())
            log.info("%s: %d/%d %s", self.description, self.done, self.total, shown)
            while self._next_line <= self.done / self.total:
                self._next_line += 0.1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def track(items: Iterable[T], description: str, total: int) -> Iterator[T]:
    reporter = Reporter(description, total)
    try:
        for item in items:
            yield item
            reporter.advance()
    finally:
        reporter.close()


class TrainerProgress(TrainerCallback):
    """Drives a Reporter from a transformers Trainer (whose own tqdm bars are disabled)."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.reporter: Reporter | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.reporter = Reporter(self.description, state.max_steps)
        self.reporter.done = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if self.reporter is not None:
            loss = state.log_history[-1].get("loss") if state.log_history else None
            self.reporter.advance(**({"loss": loss} if loss is not None else {}))

    def on_train_end(self, args, state, control, **kwargs):
        if self.reporter is not None:
            self.reporter.close()

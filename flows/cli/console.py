"""What the command line shows: one-line results, tables, and progress on long work.

Prefect's own console lines (one per task run) are off unless `-v`; instead a backtest shows
ct's progress (batches done of the total, the rate, the time left) and one line per batch. On a
terminal the progress is a live bar; in a pipe or CI log it is plain lines, one per batch. The
flows report progress as log records carrying `ct_progress` (a backtest's batches) or `ct_stage`
(a step's stages), which a handler here turns into the display: the flows know nothing of it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console

#: Pipes and CI logs get a readable, unwrapped width.
PIPE_WIDTH = 120
PROGRESS_KEY = "ct_progress"
STAGE_KEY = "ct_stage"


class Output:
    """Where the CLI writes: results to stdout, errors to stderr (one line each)."""

    def __init__(self, *, verbose: bool = False) -> None:
        self.verbose = verbose
        self.live = sys.stdout.isatty()  # asked per Output: a warm process's fork gets a terminal
        width = None if self.live else PIPE_WIDTH
        self.console = Console(highlight=False, width=width)
        self.err = Console(stderr=True, highlight=False, width=width)

    def line(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)

    def error(self, text: str) -> None:
        self.err.print(f"[bold red]error:[/] {text}", soft_wrap=True)

    def warn(self, text: str) -> None:
        self.err.print(f"[red]{text}[/]", soft_wrap=True)

    def print(self, renderable: Any) -> None:
        self.console.print(renderable)

    def json(self, text: str) -> None:
        self.console.print_json(text)

    @contextlib.contextmanager
    def batches(self, total: int, what: str) -> Iterator[None]:
        """Show a backtest's progress while the block runs (fed by `ct_progress` log records)."""
        handler = _ProgressHandler(self, total, what)
        logger = logging.getLogger("prefect.flow_runs")
        logger.addHandler(handler)
        try:
            with handler.display():
                yield
        finally:
            logger.removeHandler(handler)

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        """A spinner naming the current stage of one CT step (on a terminal only)."""
        if not self.live or self.verbose:
            yield
            return
        status = self.console.status(what)
        handler = _StageHandler(lambda stage: status.update(f"{what}: {stage}"))
        loggers = [logging.getLogger("prefect.flow_runs"), logging.getLogger("prefect.task_runs")]
        for logger in loggers:
            logger.addHandler(handler)
        try:
            with status:
                yield
        finally:
            for logger in loggers:
                logger.removeHandler(handler)


class _StageHandler(logging.Handler):
    def __init__(self, update: Any) -> None:
        super().__init__(logging.INFO)
        self.update = update

    def emit(self, record: logging.LogRecord) -> None:
        stage = getattr(record, STAGE_KEY, None)
        if stage:
            self.update(stage)


class _ProgressHandler(logging.Handler):
    """Turns the backtest's per-batch records into a progress bar and one line per batch."""

    def __init__(self, out: Output, total: int, what: str) -> None:
        super().__init__(logging.INFO)
        self.out, self.total, self.what = out, total, what
        self.started = time.perf_counter()
        self.done = 0
        self.progress: Any = None
        self.task: Any = None

    @contextlib.contextmanager
    def display(self) -> Iterator[None]:
        if not self.out.live:
            yield
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=self.out.console,
            transient=True,
        ) as progress:
            self.progress = progress
            self.task = progress.add_task(self.what, total=self.total, rate="")
            yield

    def emit(self, record: logging.LogRecord) -> None:
        info = getattr(record, PROGRESS_KEY, None)
        if not info:
            return
        self.done = int(info["done"])
        elapsed = time.perf_counter() - self.started
        rate = elapsed / self.done if self.done else 0.0
        left = rate * (self.total - self.done)
        line = f"batch {self.done}/{self.total}: {info['line']}"
        if self.progress is not None:
            self.progress.update(self.task, completed=self.done, rate=f"{rate:.2f} s/batch")
            self.progress.console.print(line, soft_wrap=True, highlight=False)
        else:
            self.out.line(f"{line}  [{rate:.2f} s/batch, ~{left:.0f} s left]")

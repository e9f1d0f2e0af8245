"""Progress of long loops: a bar on a terminal, plain lines in a log, nothing when asked for quiet.

A bar redraws itself in place, which only a terminal shows: written to a file (`nohup`, CI, a Ray
driver's log) it leaves nothing readable, so a 40-minute bench looked dead. Where stderr is not a
terminal, `progress_bar` therefore writes plain lines to stderr instead, such as

    [unlearn 12:03:04] training models for the bank: 3/12, 0:00:41 elapsed, about 0:02:03 left

at most one every `PlainProgress.min_gap` seconds, and at least one every `PlainProgress.heartbeat`
seconds while a loop is open (a single step can take minutes: one tuning round, one CIFAR-10
model), so a log shows the run is alive. `progress=False` (the commands' `--quiet`) silences both.
Both kinds offer what the loops use: `add_task(description, total)` and `advance(task, n)`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(enabled: bool | None = None):
    """A rich bar (True, or None on a terminal), plain lines (None elsewhere) or nothing (False)."""
    if enabled is None and not sys.stderr.isatty():
        return PlainProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), transient=True, disable=not enabled)


def _finished(task: dict) -> bool:
    return task["total"] is not None and task["done"] >= task["total"]


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class PlainProgress:
    """Progress as occasional plain lines: stage, done/total, elapsed time, estimate of what is left."""

    min_gap = 5.0      # seconds: no line sooner after the last one (a log stays readable)
    heartbeat = 30.0   # seconds: a line at least this often while a task is open, even without a step
    # When the last line was written, by any instance: a bench opens one per stage and tuning round,
    # and the gap holds across them.
    last_line = -float("inf")

    def __init__(self, stream: TextIO | None = None, min_gap: float | None = None, heartbeat: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.stream, self.clock = stream, clock
        self.min_gap = self.min_gap if min_gap is None else min_gap
        self.heartbeat = self.heartbeat if heartbeat is None else heartbeat
        self.tasks: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PlainProgress:
        self._thread = threading.Thread(target=self._beat, daemon=True, name="unlearn-progress")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:  # the end of a long loop is worth a line, if the last one is not too recent
            for task in self.tasks:
                if task["done"] and not task["reported_end"]:
                    self._write(task, force=False)

    def add_task(self, description: str, total: int | float | None = None) -> int:
        with self._lock:
            self.tasks.append({"description": description, "total": total, "done": 0, "start": self.clock(),
                               "reported_end": False})
            return len(self.tasks) - 1

    def advance(self, task_id: int, advance: float = 1) -> None:
        with self._lock:
            task = self.tasks[task_id]
            task["done"] += advance
            self._write(task, force=False)

    def line(self, task: dict) -> str:
        elapsed = self.clock() - task["start"]
        done, total = task["done"], task["total"]
        text = f"{task['description']}: {done:g}" + ("" if total is None else f"/{total:g}")
        text += f", {_clock(elapsed)} elapsed"
        if _finished(task):
            text += ", done"
        elif total and done:
            text += f", about {_clock(elapsed / done * (total - done))} left"
        return text

    def _write(self, task: dict, force: bool) -> None:
        now = self.clock()
        if not force and now - PlainProgress.last_line < self.min_gap:
            return
        PlainProgress.last_line = now
        task["reported_end"] = _finished(task)
        stream = self.stream or sys.stderr  # looked up late: pytest and redirections swap sys.stderr
        print(f"[unlearn {time.strftime('%H:%M:%S')}] {self.line(task)}", file=stream, flush=True)

    def beat(self) -> None:
        """A line on the newest open task if none was written for `heartbeat` seconds."""
        with self._lock:
            open_tasks = [t for t in self.tasks if not _finished(t)]
            if open_tasks and self.clock() - PlainProgress.last_line >= self.heartbeat:
                self._write(open_tasks[-1], force=True)

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self.heartbeat)):
            self.beat()

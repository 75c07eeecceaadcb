"""Workers for the runner tests (a module of their own, so spawned processes can import them)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from liquid_drive.errors import LiquidDriveError


class TaskRefused(LiquidDriveError, ValueError):
    """A project error raised by a task."""


class Counter:
    """Squares numbers; remembers how many tasks this instance ran (one instance per process)."""

    def __init__(self) -> None:
        self.ran = 0
        self.closed = False

    def run(self, task: Any, context: Any) -> dict[str, Any]:
        kind, value = task
        if kind == "refuse":
            raise TaskRefused(f"task {value} refused")
        if kind == "divide":
            return {"value": 1 / 0}
        if kind == "die":
            os._exit(3)
        if kind in ("signal", "wait_for_stop"):  # Ctrl-C reaching the runner while this runs
            os.kill(os.getppid() if value == "parent" else os.getpid(), signal.SIGINT)
            time.sleep(0.5)
            if kind == "signal":
                return {"signalled": value}
        if kind == "wait_for_stop":
            end = time.monotonic() + 30.0
            while not context.should_stop() and time.monotonic() < end:
                time.sleep(0.01)
            return {"stopped": context.should_stop()}
        self.ran += 1
        context.report(value)
        return {"square": value * value, "pid": os.getpid(), "nth": self.ran}

    def close(self) -> None:
        self.closed = True


@dataclass(frozen=True)
class CounterFactory:
    """Builds a :class:`Counter` (picklable)."""

    def __call__(self) -> Counter:
        return Counter()

"""The runner's first backend: the tasks one after the other in this process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from driving.rollout.runner.base import (
    BackendRun,
    Flag,
    stop_on_signals,
)


class _LocalContext:
    def __init__(self, stop: Any, report: Callable[[Any], None]) -> None:
        self.should_stop, self.report = stop.is_set, report


def run_here(run: BackendRun) -> None:
    """Runs ``run``'s tasks one after the other in this process."""
    stop = Flag()
    worker = run.make_worker()
    context = _LocalContext(stop, run.progress)
    try:
        with stop_on_signals(stop, run.report):
            while not stop.is_set():
                task = run.next_task(0)
                if task is None:
                    break
                run.report.submitted += 1
                run.result_done(task, worker.run(task, context))
    finally:
        worker.close()

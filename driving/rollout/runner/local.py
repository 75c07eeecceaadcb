"""The runner's first backend: the tasks one after the other in this process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from driving.rollout.runner.base import (
    Flag,
    RunnerConfig,
    RunReport,
    WorkerFactory,
    stop_on_signals,
)


class _LocalContext:
    def __init__(self, stop: Any, report: Callable[[Any], None]) -> None:
        self.should_stop, self.report = stop.is_set, report


def run_here(
    next_task: Callable[[int], Any],
    make_worker: WorkerFactory,
    config: RunnerConfig,
    report: RunReport,
    result_done: Callable[[Any, Any], None],
    progress: Callable[[Any], None],
) -> None:
    """Backend of :func:`driving.rollout.runner.run_tasks` (in this process).

    Args:
        next_task: ``f(in_flight) -> task | None``.
        make_worker: Builds a worker.
        config: The runner's options.
        report: Counts what was submitted and whether a signal stopped the run.
        result_done: ``f(task, result)``, called here for every result.
        progress: ``f(payload)``, called here for every progress payload.
    """
    stop = Flag()
    worker = make_worker()
    context = _LocalContext(stop, progress)
    try:
        with stop_on_signals(stop, report):
            while not stop.is_set():
                task = next_task(0)
                if task is None:
                    break
                report.submitted += 1
                result_done(task, worker.run(task, context))
    finally:
        worker.close()


# ---------------------------------------------------------------------------------------------

"""One parallel runner for closed-loop work: in this process, a process pool, or Ray.

Recording and evaluation both hand it a stream of tasks (one episode each) and a picklable
factory that builds a *worker*: an object with ``run(task, context) -> result`` and
``close()``. A worker is built once per process and kept for every task it runs, so torch is
imported and a policy loaded once per worker, never per episode, and nothing is cached
process-wide.

Backends (:class:`RunnerConfig`):

* ``workers=1``: the tasks run here, one after the other.
* ``workers=K``: K worker processes (``spawn`` context: torch and ``fork`` do not mix) that
  live for the whole run, each running one task at a time. Every worker dies with its parent:
  Linux delivers SIGKILL to it when the parent ends (``prctl(PR_SET_PDEATHSIG)``); elsewhere a
  watcher thread notices the new parent id.
* ``ray=ADDRESS`` (``"local"`` starts a local instance): one Ray actor per cluster CPU, each
  holding its worker (needs ``pip install -e ".[ray]"``; every node must have the project
  installed and see the output folder). ``ray_gpus``: GPUs per actor. An address that does not
  answer is an error at once (:func:`check_ray_address`), not Ray's minutes of retries.

Stopping: the first SIGINT (Ctrl-C) or SIGTERM sets the stop flag: no new task starts, the
tasks in flight run to their end (a task may poll ``context.should_stop()`` to end early, as
recording does) and :func:`run_tasks` returns with ``stopped`` set. A second signal stops at
once (``KeyboardInterrupt``; worker processes are killed). A task that raises stops the run
the same way as the first signal, and its error is raised once the tasks in flight are done.

Progress: a tqdm bar (shown on a terminal only); workers send progress payloads through
``context.report(payload)``, and the callbacks say how far each payload or result moves it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from driving.rollout.runner.base import (
    BackendRun,
    RayNotInstalledError,
    RayUnreachableError,
    RunnerConfig,
    RunnerConfigError,
    RunnerError,
    RunReport,
    TaskContext,
    TaskSource,
    Worker,
    WorkerFactory,
)
from driving.rollout.runner.local import run_here
from driving.rollout.runner.on_ray import check_ray_address, import_ray, run_ray
from driving.rollout.runner.pool import run_pool

__all__ = [
    "RayNotInstalledError",
    "RayUnreachableError",
    "RunReport",
    "RunnerConfig",
    "RunnerConfigError",
    "RunnerError",
    "TaskContext",
    "TaskSource",
    "Worker",
    "WorkerFactory",
    "check_ray_address",
    "import_ray",
    "run_tasks",
]


def _next_task_function(tasks: TaskSource) -> tuple[Any, Callable[[int], Any]]:
    """The first task (None: there is none) and ``next_task`` giving it first, then the rest."""
    if callable(tasks):
        source = tasks
    else:
        iterator = iter(tasks)

        def source(_in_flight: int) -> Any:
            return next(iterator, None)

    first = [source(0)]

    def next_task(in_flight: int) -> Any:
        return first.pop() if first else source(in_flight)

    return first[0], next_task


def run_tasks(
    tasks: TaskSource,
    make_worker: WorkerFactory,
    config: RunnerConfig | None = None,
    *,
    on_result: Callable[[Any, Any], float] | None = None,
    on_progress: Callable[[Any], float] | None = None,
    total: float | None = None,
    unit: str = "task",
    postfix: Callable[[], str] | None = None,
) -> RunReport:
    """Runs tasks here, in worker processes or on Ray, until they run out or a stop.

    Args:
        tasks: The tasks (see :data:`TaskSource`); each must be picklable for processes/Ray.
        make_worker: Builds the worker of a process (picklable for processes/Ray).
        config: Where to run (None: here, with a progress bar).
        on_result: ``f(task, result) -> bar units done``, called here as results arrive
            (default: one unit per result).
        on_progress: ``f(payload) -> bar units done`` for the payloads tasks report.
        total: Bar length in units (None: unknown).
        unit: Bar unit name.
        postfix: ``f() -> text`` shown after the bar, refreshed on every update.

    Returns:
        The :class:`RunReport`.

    Raises:
        RunnerError: If a task failed with an error that is not a project error (the
            message holds the worker's traceback), or a worker process died.
        LiquidDriveError: A task's project error, re-raised as it was.
        RayNotInstalledError: For ``config.ray`` without the ``ray`` package.
        KeyboardInterrupt: On a second stop signal.
    """
    config = config or RunnerConfig()
    first, next_task = _next_task_function(tasks)
    report = RunReport()
    if first is None:  # nothing to do: start no worker
        return report
    bar = tqdm(
        total=total,
        unit=unit,
        disable=None if config.progress else True,
        dynamic_ncols=True,
        smoothing=0.1,
    )

    def advance(units: float) -> None:
        if units:
            bar.update(units)
        if postfix is not None:
            bar.set_postfix_str(postfix(), refresh=False)

    def result_done(task: Any, result: Any) -> None:
        report.finished += 1
        advance(1.0 if on_result is None else on_result(task, result))

    def progress(payload: Any) -> None:
        if on_progress is not None:
            advance(on_progress(payload))

    start = time.perf_counter()
    try:
        if config.ray is not None:
            backend: Callable[[BackendRun], None] = run_ray
        elif config.workers > 1:
            backend = run_pool
        else:
            backend = run_here
        backend(BackendRun(next_task, make_worker, config, report, result_done, progress))
    finally:
        bar.close()
        report.wall_s = time.perf_counter() - start
    return report

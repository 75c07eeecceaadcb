"""The runner's vocabulary: its options, errors, worker protocols, report and stop handling."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from liquid_drive.errors import LiquidDriveError

logger = logging.getLogger("driving.rollout.runner")

POLL_S = 0.2
"""How often the parent and idle workers look at their queues and the stop flag, s."""
JOIN_TIMEOUT_S = 30.0
"""How long stopped worker processes get to exit before they are killed, s."""
RAY_CONNECT_TIMEOUT_S = 5.0
"""How long a Ray address gets to accept a connection before it counts as not answering, s."""


class RunnerError(LiquidDriveError, RuntimeError):
    """A task failed in a worker (the message holds its traceback) or a worker died."""


class RunnerConfigError(LiquidDriveError, ValueError):
    """An invalid runner option (the message shows the bad value)."""


class RayNotInstalledError(RunnerConfigError, ImportError):
    """``--ray`` was given but the optional ``ray`` package is missing."""


class RayUnreachableError(RunnerConfigError, ConnectionError):
    """No Ray cluster answers at the ``--ray`` address."""


@dataclass(frozen=True)
class RunnerConfig:
    """Where the tasks run."""

    workers: int = 1
    """Worker processes; 1 = in this process."""
    ray: str | None = None
    """Ray cluster address to run the tasks on (``"local"`` starts a local instance)."""
    progress: bool = True
    """Show a progress bar (on a terminal only)."""
    ray_gpus: float = 0.0
    """GPUs each Ray actor requests (0 = none; a fraction shares a GPU)."""

    def __post_init__(self) -> None:
        if not self.ray_gpus >= 0:
            raise RunnerConfigError(f"ray_gpus must be >= 0, got {self.ray_gpus!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise RunnerConfigError(f"workers must be >= 1, got {self.workers!r}")
        if self.ray is not None and self.workers != 1:
            raise RunnerConfigError("--ray and --workers are alternatives; give one of them")
        if self.ray is not None and not self.ray.strip():
            raise RunnerConfigError("--ray needs a cluster address or 'local'")


class TaskContext(Protocol):
    """What a running task may ask of the runner."""

    def should_stop(self) -> bool:
        """True once a stop was requested (a signal, another task's error, the parent gone)."""
        ...

    def report(self, payload: Any) -> None:
        """Sends a progress payload to the parent's ``on_progress`` callback."""
        ...


class Worker(Protocol):
    """Runs tasks in one process; built once per process by the worker factory."""

    def run(self, task: Any, context: TaskContext) -> Any:
        """Runs one task and returns its (picklable) result."""
        ...

    def close(self) -> None:
        """Releases what the worker holds (envs, policies)."""
        ...


WorkerFactory = Callable[[], Worker]
"""A picklable callable (a module-level class or function) building a worker."""
TaskSource = Iterable[Any] | Callable[[int], Any]
"""The tasks: an iterable, or ``next_task(in_flight) -> task | None`` (None: none wanted now;
the run ends when it returns None while nothing is in flight)."""


@dataclass
class RunReport:
    """What a run did."""

    submitted: int = 0
    """Tasks started."""
    finished: int = 0
    """Tasks that returned a result."""
    stopped: bool = False
    """A signal stopped the run before the tasks ran out."""
    wall_s: float = 0.0
    """Wall-clock duration, s."""


@dataclass(frozen=True)
class BackendRun:
    """What :func:`driving.rollout.runner.run_tasks` hands the backend that runs the tasks.

    The backends: ``local.run_here`` (this process), ``pool.run_pool`` (worker processes) and
    ``on_ray.run_ray`` (Ray actors).
    """

    next_task: Callable[[int], Any]
    """``f(in_flight) -> task | None``: the next task (None: none wanted now)."""
    make_worker: WorkerFactory
    """Builds the worker of each process or actor."""
    config: RunnerConfig
    """Where to run."""
    report: RunReport
    """Counts what was submitted; ``stopped`` is set by a stop signal."""
    result_done: Callable[[Any, Any], None]
    """``f(task, result)``, called in the parent for every result."""
    progress: Callable[[Any], None]
    """``f(payload)``, called in the parent for every progress payload."""


# ---------------------------------------------------------------------------------------------
# Stopping


class Flag:
    """A stop flag with ``multiprocessing.Event``'s ``set``/``is_set``, for this process."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        """Requests the stop."""
        self._set = True

    def is_set(self) -> bool:
        """Whether a stop was requested."""
        return self._set


@contextlib.contextmanager
def stop_on_signals(stop: Any, report: RunReport) -> Iterator[None]:
    """First SIGINT/SIGTERM sets ``stop``; a second raises KeyboardInterrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in signals}

    def request_stop(signum: int, _frame: Any) -> None:
        if report.stopped:
            raise KeyboardInterrupt
        logger.warning(
            "signal %d: finishing the tasks in flight, then stopping (again to stop now)", signum
        )
        report.stopped = True
        stop.set()

    for s in signals:
        signal.signal(s, request_stop)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def raise_task_error(error: BaseException | None, trace: str) -> None:
    """Re-raises a task's project error as it was, any other as a RunnerError with its trace."""
    if isinstance(error, LiquidDriveError):
        logger.debug("the task's traceback in its worker:\n%s", trace)
        raise error
    raise RunnerError(f"a task failed in a worker process:\n{trace}")

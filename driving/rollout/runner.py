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

import contextlib
import ctypes
import itertools
import logging
import multiprocessing as mp
import os
import queue
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler
from typing import Any, Protocol

from tqdm import tqdm

from liquid_drive.errors import LiquidDriveError

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
"""Linux ``prctl`` option: the signal a process gets when its parent thread ends."""
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


# ---------------------------------------------------------------------------------------------
# Stop flag, signals, dying with the parent


class _Flag:
    """A stop flag with ``multiprocessing.Event``'s ``set``/``is_set``, for this process."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


@contextlib.contextmanager
def _stop_on_signals(stop: Any, report: RunReport) -> Iterator[None]:
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


def die_with_parent(parent_pid: int) -> None:
    """Makes this process end when its parent ends.

    On Linux the kernel sends SIGKILL at the parent's death (``PR_SET_PDEATHSIG``); elsewhere
    a daemon thread checks the parent id every :data:`POLL_S` seconds. A parent that died
    before this call ends the process at once.
    """
    armed = False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    if os.getppid() != parent_pid:
        os._exit(1)
    if not armed:

        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(POLL_S)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


# ---------------------------------------------------------------------------------------------
# The run


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
    config: RunnerConfig = RunnerConfig(),
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
        config: Where to run.
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
            backend: Callable[..., None] = _run_ray
        elif config.workers > 1:
            backend = _run_pool
        else:
            backend = _run_here
        backend(next_task, make_worker, config, report, result_done, progress)
    finally:
        bar.close()
        report.wall_s = time.perf_counter() - start
    return report


class _LocalContext:
    def __init__(self, stop: Any, report: Callable[[Any], None]) -> None:
        self.should_stop, self.report = stop.is_set, report


def _run_here(next_task, make_worker, config, report, result_done, progress) -> None:
    stop = _Flag()
    worker = make_worker()
    context = _LocalContext(stop, progress)
    try:
        with _stop_on_signals(stop, report):
            while not stop.is_set():
                task = next_task(0)
                if task is None:
                    break
                report.submitted += 1
                result_done(task, worker.run(task, context))
    finally:
        worker.close()


# ---------------------------------------------------------------------------------------------
# Worker processes


class _PoolContext:
    def __init__(self, stop: Any, results: Any, key: int, parent_pid: int) -> None:
        self.stop, self.results, self.key, self.parent_pid = stop, results, key, parent_pid
        self.terminated = False

    def should_stop(self) -> bool:
        return self.terminated or self.stop.is_set() or os.getppid() != self.parent_pid

    def report(self, payload: Any) -> None:
        self.results.put(("progress", self.key, payload))


def _picklable(error: BaseException) -> BaseException | None:
    """``error`` if it survives the trip through a multiprocessing queue, else None."""
    try:
        ForkingPickler.loads(ForkingPickler.dumps(error))  # what the results queue does
    except Exception:
        return None
    return error


def _pool_worker(make_worker, tasks, results, stop, parent_pid: int) -> None:
    """A worker process: runs tasks from ``tasks`` until None, a stop, or its parent's death."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which decides
    context = _PoolContext(stop, results, -1, parent_pid)

    def on_sigterm(*_: Any) -> None:
        context.terminated = True

    signal.signal(signal.SIGTERM, on_sigterm)
    worker = None
    try:
        worker = make_worker()
        while not context.should_stop():
            try:
                item = tasks.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is None:
                break
            key, task = item
            if context.should_stop():  # queued, but the stop came first: never started
                break
            context.key = key
            try:
                result = worker.run(task, context)
            except Exception as e:
                results.put(("error", key, (_picklable(e), traceback.format_exc())))
                break
            results.put(("done", key, result))
    except Exception as e:  # building the worker failed
        results.put(("error", None, (_picklable(e), traceback.format_exc())))
    finally:
        if worker is not None:
            worker.close()
        results.put(("exit", os.getpid(), None))


def _raise_task_error(error: BaseException | None, trace: str) -> None:
    if isinstance(error, LiquidDriveError):
        logger.debug("the task's traceback in its worker:\n%s", trace)
        raise error
    raise RunnerError(f"a task failed in a worker process:\n{trace}")


def _run_pool(next_task, make_worker, config, report, result_done, progress) -> None:
    ctx = mp.get_context("spawn")
    stop, tasks, results = ctx.Event(), ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_pool_worker,
            args=(make_worker, tasks, results, stop, os.getpid()),
            daemon=True,
            name=f"runner-worker-{i}",
        )
        for i in range(config.workers)
    ]
    for p in procs:
        p.start()
    in_flight: dict[int, Any] = {}
    keys = itertools.count()
    exited: set[int] = set()
    error: tuple[BaseException | None, str] | None = None
    closing = False

    def handle(kind: str, key: Any, payload: Any) -> None:
        nonlocal error
        if kind == "progress":
            progress(payload)
        elif kind == "done":
            result_done(in_flight.pop(key), payload)
        elif kind == "error":
            in_flight.pop(key, None)
            if error is None:
                error = payload
            stop.set()
        elif kind == "exit":
            exited.add(key)

    try:
        with _stop_on_signals(stop, report):
            while len(exited) < len(procs):
                while not closing and not stop.is_set() and len(in_flight) < len(procs):
                    task = next_task(len(in_flight))
                    if task is None:
                        break
                    key = next(keys)
                    report.submitted += 1
                    in_flight[key] = task
                    tasks.put((key, task))
                if not closing and (stop.is_set() or not in_flight):
                    closing = True
                    for _ in procs:
                        tasks.put(None)
                try:
                    handle(*results.get(timeout=POLL_S))
                except queue.Empty:
                    dead = [p for p in procs if p.exitcode is not None and p.pid not in exited]
                    if dead:
                        _drain(results, handle)
                        lost = [p for p in dead if p.pid not in exited]
                        if lost:
                            codes = ", ".join(f"pid {p.pid}: {p.exitcode}" for p in lost)
                            raise RunnerError(f"a worker process died ({codes})") from None
            report.submitted -= len(in_flight)  # queued when the stop came: never started
    except BaseException:
        for p in procs:
            p.kill()
        raise
    finally:
        stop.set()
        tasks.cancel_join_thread()  # never block on tasks no worker will read
        for p in procs:
            p.join(timeout=JOIN_TIMEOUT_S)
            if p.is_alive():
                p.kill()
                p.join()
    if error is not None:
        _raise_task_error(*error)


def _drain(results: Any, handle: Callable[..., None]) -> None:
    """Handles every message already queued (a worker's last words arrive after its exit)."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            handle(*results.get(timeout=0.05))
        except queue.Empty:
            return


# ---------------------------------------------------------------------------------------------
# Ray


class _NoStop:
    """The context of a Ray task: no stop requests or progress reach it."""

    def should_stop(self) -> bool:
        return False

    def report(self, payload: Any) -> None:
        pass


class _RayActor:
    """The body of a Ray actor: one worker kept for every task it is given."""

    def __init__(self, make_worker: WorkerFactory) -> None:
        self.worker = make_worker()

    def run(self, task: Any) -> Any:
        return self.worker.run(task, _NoStop())


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        RayNotInstalledError: Naming the extra to install.
    """
    try:
        import ray
    except ImportError as e:
        raise RayNotInstalledError(
            f'--ray needs the optional ray package ({e}): pip install -e ".[ray]"'
        ) from None
    return ray


def check_ray_address(address: str, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Refuses a ``[ray://]host:port`` address that accepts no connection (others: ray.init).

    Raises:
        RayUnreachableError: Naming the address and what the connection attempt said.
    """
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if address in ("local", "auto") or not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        raise RayUnreachableError(
            f"no Ray cluster answers at --ray {address} within {timeout_s:g} s ({e}); start one "
            "(ray start --head) or pass --ray local"
        ) from None


def _run_ray(next_task, make_worker, config, report, result_done, progress) -> None:
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        check_ray_address(config.ray)
        local = {"include_dashboard": False} if config.ray == "local" else {}
        ray.init(address=config.ray, log_to_driver=False, **local)
    stop = _Flag()
    try:
        actor_class = ray.remote(num_cpus=1, num_gpus=config.ray_gpus)(_RayActor)
        resources = ray.cluster_resources()
        n = max(1, int(resources.get("CPU", 1)))
        if config.ray_gpus > 0:
            n = min(n, int(resources.get("GPU", 0) / config.ray_gpus))
            if n < 1:
                raise RunnerConfigError(
                    f"each Ray actor requests {config.ray_gpus:g} GPU, but the cluster has "
                    f"{resources.get('GPU', 0):g}"
                )
        idle = [actor_class.remote(make_worker) for _ in range(n)]
        pending: dict[Any, tuple[Any, Any]] = {}
        error: BaseException | None = None
        with _stop_on_signals(stop, report):
            while True:
                while idle and not stop.is_set():
                    task = next_task(len(pending))
                    if task is None:
                        break
                    actor = idle.pop()
                    pending[actor.run.remote(task)] = (task, actor)
                    report.submitted += 1
                if not pending:
                    break
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    task, actor = pending.pop(ref)
                    idle.append(actor)
                    try:
                        result = ray.get(ref)
                    except Exception as e:  # RayTaskError wraps the task's exception
                        error = error or getattr(e, "cause", None) or e
                        stop.set()
                        continue
                    result_done(task, result)
        if error is not None:
            _raise_task_error(error, "".join(traceback.format_exception(error)))
    finally:
        if started:
            ray.shutdown()

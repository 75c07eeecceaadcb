"""The runner's process backend: K spawned worker processes that live for the whole run."""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from typing import Any

from driving.rollout.runner.base import (
    JOIN_TIMEOUT_S,
    POLL_S,
    BackendRun,
    RunnerError,
    raise_task_error,
    stop_on_signals,
)

PR_SET_PDEATHSIG = 1
"""Linux ``prctl`` option: the signal a process gets when its parent thread ends."""


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
# The worker processes


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


def run_pool(run: BackendRun) -> None:
    """Runs ``run``'s tasks in worker processes."""
    ctx = mp.get_context("spawn")
    stop, tasks, results = ctx.Event(), ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_pool_worker,
            args=(run.make_worker, tasks, results, stop, os.getpid()),
            daemon=True,
            name=f"runner-worker-{i}",
        )
        for i in range(run.config.workers)
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
            run.progress(payload)
        elif kind == "done":
            run.result_done(in_flight.pop(key), payload)
        elif kind == "error":
            in_flight.pop(key, None)
            if error is None:
                error = payload
            stop.set()
        elif kind == "exit":
            exited.add(key)

    try:
        with stop_on_signals(stop, run.report):
            while len(exited) < len(procs):
                while not closing and not stop.is_set() and len(in_flight) < len(procs):
                    task = run.next_task(len(in_flight))
                    if task is None:
                        break
                    key = next(keys)
                    run.report.submitted += 1
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
            run.report.submitted -= len(in_flight)  # queued when the stop came: never started
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
        raise_task_error(*error)


def _drain(results: Any, handle: Callable[..., None]) -> None:
    """Handles every message already queued (a worker's last words arrive after its exit)."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            handle(*results.get(timeout=0.05))
        except queue.Empty:
            return

"""The runner's Ray backend: one actor per cluster CPU, each holding its worker."""

from __future__ import annotations

import socket
import traceback
from typing import Any

from driving.rollout.runner.base import (
    POLL_S,
    RAY_CONNECT_TIMEOUT_S,
    BackendRun,
    Flag,
    RayNotInstalledError,
    RayUnreachableError,
    RunnerConfigError,
    WorkerFactory,
    raise_task_error,
    stop_on_signals,
)


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


def run_ray(run: BackendRun) -> None:
    """Runs ``run``'s tasks on Ray actors."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        check_ray_address(run.config.ray)
        local = {"include_dashboard": False} if run.config.ray == "local" else {}
        ray.init(address=run.config.ray, log_to_driver=False, **local)
    stop = Flag()
    try:
        actor_class = ray.remote(num_cpus=1, num_gpus=run.config.ray_gpus)(_RayActor)
        resources = ray.cluster_resources()
        n = max(1, int(resources.get("CPU", 1)))
        if run.config.ray_gpus > 0:
            n = min(n, int(resources.get("GPU", 0) / run.config.ray_gpus))
            if n < 1:
                raise RunnerConfigError(
                    f"each Ray actor requests {run.config.ray_gpus:g} GPU, but the cluster has "
                    f"{resources.get('GPU', 0):g}"
                )
        idle = [actor_class.remote(run.make_worker) for _ in range(n)]
        pending: dict[Any, tuple[Any, Any]] = {}
        error: BaseException | None = None
        with stop_on_signals(stop, run.report):
            while True:
                while idle and not stop.is_set():
                    task = run.next_task(len(pending))
                    if task is None:
                        break
                    actor = idle.pop()
                    pending[actor.run.remote(task)] = (task, actor)
                    run.report.submitted += 1
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
                    run.result_done(task, result)
        if error is not None:
            raise_task_error(error, "".join(traceback.format_exception(error)))
    finally:
        if started:
            ray.shutdown()

"""The parallel runner: here, in worker processes and on (a stand-in for) Ray."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest

from driving.rollout.runner import (
    RayNotInstalledError,
    RunnerConfig,
    RunnerConfigError,
    RunnerError,
    run_tasks,
)
from tests.driving.rollout.workers import CounterFactory, TaskRefused


def _run(tasks, config, **kwargs):
    results, progress = [], []

    def on_result(task, result):
        results.append((task, result))
        return 1.0

    def on_progress(payload):
        progress.append(payload)
        return 0.0

    report = run_tasks(
        tasks, CounterFactory(), config, on_result=on_result, on_progress=on_progress, **kwargs
    )
    return report, results, progress


@pytest.mark.parametrize("workers", [1, 2])
def test_every_task_runs_once_on_workers_that_live_across_tasks(workers):
    tasks = [("square", v) for v in range(6)]
    report, results, progress = _run(tasks, RunnerConfig(workers=workers, progress=False))
    assert report.submitted == report.finished == 6 and not report.stopped
    assert sorted(r["square"] for _, r in results) == [v * v for v in range(6)]
    assert all(r["square"] == t[1] ** 2 for t, r in results)  # each result with its own task
    assert sorted(progress) == list(range(6))
    by_process: dict[int, list[int]] = {}
    for _, r in results:
        by_process.setdefault(r["pid"], []).append(r["nth"])
    assert 1 <= len(by_process) <= workers
    for counts in by_process.values():  # one worker per process, kept for all its tasks
        assert sorted(counts) == list(range(1, len(counts) + 1))


def test_a_task_source_function_sees_the_tasks_in_flight():
    seen = []

    def next_task(in_flight):
        seen.append(in_flight)
        return ("square", len(seen)) if len(seen) <= 3 else None

    report, results, _ = _run(next_task, RunnerConfig(workers=2, progress=False))
    assert report.finished == 3 and len(results) == 3
    assert max(seen) <= 2


def test_no_task_starts_no_worker():
    report = run_tasks([], CounterFactory(), RunnerConfig(workers=2, progress=False))
    assert report.submitted == report.finished == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_project_error_is_raised_as_it_was(workers):
    tasks = [("square", 1), ("refuse", 7), ("square", 2)]
    with pytest.raises(TaskRefused, match="task 7 refused"):
        _run(tasks, RunnerConfig(workers=workers, progress=False))


def test_another_error_names_the_worker_traceback():
    with pytest.raises(RunnerError, match="ZeroDivisionError"):
        _run([("divide", 0)], RunnerConfig(workers=2, progress=False))


def test_a_worker_that_dies_is_an_error_not_a_hang():
    with pytest.raises(RunnerError, match="died"):
        _run([("die", 0), ("square", 1)], RunnerConfig(workers=2, progress=False))


@pytest.mark.parametrize(("workers", "target"), [(1, "self"), (2, "parent")])
def test_ctrl_c_finishes_the_task_in_flight_and_starts_no_other(workers, target):
    tasks = [("signal", target)] + [("square", v) for v in range(10)]
    report, results, _ = _run(tasks, RunnerConfig(workers=workers, progress=False))
    assert report.stopped
    assert ("signal", target) in [t for t, _ in results]  # the task in flight finished
    assert report.finished < len(tasks)
    assert report.finished == len(results) == report.submitted  # nothing dropped half-way


@pytest.mark.parametrize(("workers", "target"), [(1, "self"), (2, "parent")])
def test_a_stop_reaches_the_tasks_that_poll_it(workers, target):
    tasks = [("wait_for_stop", target), ("square", 1)]
    report, results, _ = _run(tasks, RunnerConfig(workers=workers, progress=False))
    assert report.stopped
    assert {"stopped": True} in [r for _, r in results]


def test_bad_options_are_clear_errors():
    with pytest.raises(RunnerConfigError, match="workers must be >= 1"):
        RunnerConfig(workers=0)
    with pytest.raises(RunnerConfigError, match="alternatives"):
        RunnerConfig(workers=2, ray="local")


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed")
def test_ray_without_the_extra_names_it():
    with pytest.raises(RayNotInstalledError, match=r'pip install -e "\.\[ray\]"'):
        run_tasks([("square", 1)], CounterFactory(), RunnerConfig(ray="local", progress=False))


def _fake_ray():
    """The part of the ray API the runner uses, running every call at once in this process."""
    ray = types.ModuleType("ray")
    ray.state = {"initialized": False, "inits": []}

    class TaskError(Exception):
        def __init__(self, cause):
            super().__init__(f"task failed: {cause!r}")
            self.cause = cause

    class Ref:
        def __init__(self, call):
            try:
                self.value, self.error = call(), None
            except Exception as e:
                self.value, self.error = None, TaskError(e)

    class Method:
        def __init__(self, bound):
            self.bound = bound

        def remote(self, *args):
            return Ref(lambda: self.bound(*args))

    class Handle:
        def __init__(self, instance):
            self.run = Method(instance.run)

    class ActorClass:
        def __init__(self, cls):
            self.cls = cls

        def remote(self, *args):
            return Handle(self.cls(*args))

    def init(address=None, **kwargs):
        ray.state["initialized"] = True
        ray.state["inits"].append(address)

    def shutdown():
        ray.state["initialized"] = False

    def get(ref):
        if ref.error is not None:
            raise ref.error
        return ref.value

    ray.init, ray.shutdown, ray.get = init, shutdown, get
    ray.is_initialized = lambda: ray.state["initialized"]
    ray.cluster_resources = lambda: {"CPU": 3.0}
    ray.remote = lambda **_: ActorClass
    ray.wait = lambda refs, num_returns=1, timeout=None: (refs[:num_returns], refs[num_returns:])
    return ray


def test_ray_backend_on_a_stand_in(monkeypatch):
    ray = _fake_ray()
    monkeypatch.setitem(sys.modules, "ray", ray)
    tasks = [("square", v) for v in range(5)]
    report, results, _ = _run(tasks, RunnerConfig(ray="local", progress=False))
    assert report.finished == 5 and sorted(r["square"] for _, r in results) == [0, 1, 4, 9, 16]
    assert ray.state == {"initialized": False, "inits": ["local"]}  # started and shut down
    with pytest.raises(TaskRefused, match="task 3 refused"):
        _run([("square", 1), ("refuse", 3)], RunnerConfig(ray="local", progress=False))


def test_ray_actors_request_gpus_and_refuse_a_cluster_without(monkeypatch):
    ray = _fake_ray()
    requests = []
    actor_class = ray.remote()
    ray.remote = lambda **kw: requests.append(kw) or actor_class
    monkeypatch.setitem(sys.modules, "ray", ray)
    with pytest.raises(RunnerConfigError, match="requests 1 GPU, but the cluster has 0"):
        _run([("square", 1)], RunnerConfig(ray="local", progress=False, ray_gpus=1.0))
    ray.cluster_resources = lambda: {"CPU": 3.0, "GPU": 1.0}
    report, _, _ = _run([("square", 2)], RunnerConfig(ray="local", progress=False, ray_gpus=0.5))
    assert report.finished == 1
    assert requests[-1] == {"num_cpus": 1, "num_gpus": 0.5}
    with pytest.raises(RunnerConfigError, match="ray_gpus"):
        RunnerConfig(ray="local", ray_gpus=-1.0)


def test_a_ray_address_that_does_not_answer_is_named_at_once():
    import socket

    from driving.rollout.runner import RayUnreachableError, check_ray_address

    with socket.socket() as s:  # a port nobody listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(RayUnreachableError, match=f"no Ray cluster answers at --ray {address}"):
            check_ray_address(address, timeout_s=2.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        check_ray_address(f"127.0.0.1:{s.getsockname()[1]}")  # answers: no error
    check_ray_address("local")
    check_ray_address("auto")

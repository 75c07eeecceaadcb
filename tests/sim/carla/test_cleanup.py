"""The CARLA env never leaves the server synchronous or our actors alive (issue 15, item 3).

Each fault is injected with the stand-in: a second Ctrl-C or a SIGTERM while the cleanup
runs, an env dropped without ``close()``, a destroy batch that fails once, per-command
destroy errors, a Ctrl-C just as ``spawn_actor`` returns, and the interpreter exiting.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim import spec
from sim.carla import CarlaCleanupError, CarlaDrivingEnv
from tests.sim.carla import standin
from tests.sim.carla.checks import assert_clean, run

CLEANUP_CALLS = ("apply_settings", "set_synchronous_mode", "apply_batch_sync")
"""Server calls of the cleanup during which a signal is injected."""


class Terminated(BaseException):
    """What a tool's own SIGTERM handler raises in these tests."""


@pytest.fixture
def sigterm_raises_terminated():
    """SIGTERM -> :class:`Terminated` for the test (so no test can kill the runner)."""

    def handler(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    yield handler
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("call", CLEANUP_CALLS)
def test_second_ctrl_c_during_the_cleanup_is_held_until_it_ends(server, env_kwargs, call):
    env = CarlaDrivingEnv(**env_kwargs)
    env.reset(seed=0)
    server.raise_on_tick = (2, KeyboardInterrupt())  # the first Ctrl-C, during a step
    server.signal_on_call[call] = (1, signal.SIGINT)  # the second, during its cleanup
    with pytest.raises(KeyboardInterrupt):
        run(env, 10)
    assert ("signal", (call, signal.SIGINT)) in server.log  # it did arrive mid-cleanup
    assert_clean(server)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("call", CLEANUP_CALLS)
def test_sigterm_during_close_is_delivered_after_the_cleanup(
    server, env_kwargs, sigterm_raises_terminated, call
):
    env = CarlaDrivingEnv(**env_kwargs)
    env.reset(seed=0)
    server.signal_on_call[call] = (1, signal.SIGTERM)
    with pytest.raises(Terminated):
        env.close()
    assert_clean(server)
    assert signal.getsignal(signal.SIGTERM) is sigterm_raises_terminated


def test_sigterm_during_close_exits_through_our_handler(server, env_kwargs):
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("SIGTERM already handled by the test runner")
    try:
        env = CarlaDrivingEnv(**env_kwargs)  # installs SIGTERM -> SystemExit
        env.reset(seed=0)
        server.signal_on_call["apply_settings"] = (1, signal.SIGTERM)
        with pytest.raises(SystemExit) as info:
            env.close()
        assert info.value.code == 128 + signal.SIGTERM
        assert_clean(server)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_an_interrupted_cleanup_is_finished_by_the_next_close(server, env_kwargs):
    env = CarlaDrivingEnv(**env_kwargs)
    env.reset(seed=0)
    server.raise_on_batch = (1, KeyboardInterrupt())  # raised by the call, not a signal
    with pytest.raises(KeyboardInterrupt):
        env.close()
    assert len(server.live_actors()) == 4  # the cleanup did not finish ...
    assert not server.settings.synchronous_mode  # ... but restored the settings first
    env.close()  # ... and is not marked done: this call finishes it
    assert_clean(server)
    with pytest.raises(spec.EnvClosedError):
        env.reset(seed=0)


@pytest.mark.parametrize("spawn", [1, 2, 4], ids=["vehicle", "camera", "lane-invasion"])
def test_ctrl_c_just_as_a_spawn_returns_leaks_nothing(server, env_kwargs, spawn):
    env = CarlaDrivingEnv(**env_kwargs)
    server.signal_on_call["spawn_actor"] = (spawn, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        env.reset(seed=0)
    assert ("signal", ("spawn_actor", signal.SIGINT)) in server.log
    assert_clean(server)


def test_an_env_dropped_without_close_is_cleaned_up(server, env_kwargs):
    def drive_and_forget():
        env = CarlaDrivingEnv(**env_kwargs)
        env.reset(seed=0)
        run(env, 3)
        assert server.settings.synchronous_mode and len(server.live_actors()) == 4

    drive_and_forget()
    gc.collect()
    assert_clean(server)
    CarlaDrivingEnv(**env_kwargs).close()  # the server is free again


def test_a_destroy_batch_that_fails_once_at_reset_is_retried(server, env_kwargs, caplog):
    with CarlaDrivingEnv(**env_kwargs) as env:
        env.reset(seed=0)
        first = sorted(a.id for a in server.live_actors())
        server.raise_on_batch = (1, RuntimeError("stand-in: the batch failed"))
        env.reset(seed=1)
        live = [a.id for a in server.live_actors()]
        assert len(live) == 4 and not set(first) & set(live)
        assert "the batch failed" in caplog.text
    assert_clean(server)


def test_a_failing_destroy_command_is_retried(server, env_kwargs, caplog):
    with CarlaDrivingEnv(**env_kwargs) as env:
        env.reset(seed=0)
        car = env._vehicle.id
        server.destroy_failures[car] = 2  # per-command errors, the batch itself succeeds
        env.reset(seed=1)
        assert len(server.live_actors()) == 4 and not server.actors[car].is_alive
        assert f"{car}" in caplog.text and "could not destroy actor" in caplog.text
    assert_clean(server)


def test_a_destroy_command_that_keeps_failing_is_reported_and_retried_later(
    server, env_kwargs, caplog
):
    env = CarlaDrivingEnv(**env_kwargs)
    env.reset(seed=0)
    car = env._vehicle.id
    server.destroy_failures[car] = 100
    with pytest.raises(CarlaCleanupError, match=rf"could not destroy our actor\(s\) \[{car}\]"):
        env.reset(seed=1)
    assert [a.id for a in server.live_actors()] == [car]  # the others went
    assert not server.settings.synchronous_mode and not any(server.tm_sync.values())
    assert caplog.records[-1].levelno == logging.ERROR and f"[{car}]" in caplog.records[-1].message
    server.destroy_failures.clear()  # the server recovers
    env.close()  # the car is still tracked: this close destroys it
    assert_clean(server)


def test_close_is_idempotent_and_cheap_once_complete(server, env_kwargs):
    env = CarlaDrivingEnv(**env_kwargs)
    env.reset(seed=0)
    env.close()
    server.log.clear()
    env.close()
    assert server.log == []  # nothing left to undo: no server call at all
    assert_clean(server)


def test_settings_are_restored_first_and_last(server, env_kwargs):
    env = CarlaDrivingEnv(**env_kwargs)
    env.reset(seed=0)
    server.log.clear()
    env.close()
    kinds = [kind for kind, _ in server.log]
    assert kinds[0] == "apply_settings" and kinds[-1] == "apply_settings"
    assert kinds.index("batch") > 0
    assert_clean(server)


def test_step_and_reset_after_close_or_the_end_are_clear_errors(server, env_kwargs):
    env = CarlaDrivingEnv(**env_kwargs)
    with pytest.raises(spec.ResetNeededError, match=r"call reset\(\) before step\(\)"):
        env.step(np.zeros(1, np.float32))
    env.reset(seed=0)
    for bad in (True, 1j, None, "0.1", np.zeros(3, np.float32)):
        with pytest.raises(spec.ContractError, match=type(bad).__name__):
            env.step(bad)
    run(env, 400, kappa=0.2)  # leaves the lane: terminated
    with pytest.raises(spec.ResetNeededError, match="episode has ended"):
        env.step(np.zeros(1, np.float32))
    env.close()
    with pytest.raises(spec.EnvClosedError, match="closed"):
        env.step(np.zeros(1, np.float32))
    with pytest.raises(spec.EnvClosedError, match="closed"):
        env.reset(seed=0)
    assert_clean(server)


EXIT_SCRIPT = """
import json, signal, sys, weakref
import numpy as np
from tests.sim.carla import standin
sys.modules["carla"] = standin
from sim.carla import CarlaDrivingEnv

srv = standin.Server(port={port})

class Probe:
    pass

def report():
    state = {{"live": len(srv.live_actors()), "sync": srv.settings.synchronous_mode,
             "tm_sync": any(srv.tm_sync.values()), "violations": srv.violations}}
    print(json.dumps(state), flush=True)

probe = Probe()
weakref.finalize(probe, report)  # created first, so it runs after the env's finaliser
env = CarlaDrivingEnv(port={port}, settle_time_s=0.1, route_length_m=1e4)
env.reset(seed=0)
env.step(np.zeros(1, np.float32))
print("driving", flush=True)
{ending}
"""


@pytest.mark.parametrize(
    "ending",
    ["pass", "signal.raise_signal(signal.SIGTERM)"],
    ids=["script-ends", "sigterm-outside-env-calls"],
)
def test_the_interpreter_exiting_without_close_restores_the_server(tmp_path, ending):
    root = Path(__file__).resolve().parents[3]
    port = 26100 if ending == "pass" else 26110
    script = tmp_path / "drive.py"
    script.write_text(EXIT_SCRIPT.format(port=port, ending=ending))
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, str(script)]
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "driving", out.stderr
    state = json.loads(lines[-1])
    assert state == {"live": 0, "sync": False, "tm_sync": False, "violations": []}
    if ending != "pass":
        assert out.returncode == 128 + signal.SIGTERM  # SystemExit from our handler


def test_busy_check_collects_an_env_dropped_in_a_reference_cycle(server, env_kwargs):
    env = CarlaDrivingEnv(**env_kwargs)
    env.reset(seed=0)
    env.cycle = env  # only the garbage collector can free it
    del env
    with CarlaDrivingEnv(**env_kwargs) as second:  # not "busy": the dropped one is collected
        second.reset(seed=0)
        assert len(server.live_actors()) == 4
    assert_clean(server)


def test_fault_injection_follows_the_real_api():
    """The stand-in's faults are the real API's shapes: errors in responses, not exceptions."""
    srv = standin.Server(port=26120)
    try:
        client = standin.Client("127.0.0.1", srv.port)
        world = client.get_world()
        bp = world.get_blueprint_library().find("vehicle.audi.a2")
        car = world.spawn_actor(bp, srv.map.get_spawn_points()[0])
        srv.destroy_failures[car.id] = 1
        (response,) = client.apply_batch_sync([standin.command.DestroyActor(car.id)])
        assert response.has_error() and response.actor_id == car.id and car.is_alive
        (response,) = client.apply_batch_sync([standin.command.DestroyActor(car.id)])
        assert not response.has_error() and not car.is_alive
        assert world.get_actor(car.id) is car and world.get_actor(999_999) is None
    finally:
        srv.stop()

"""The CARLA env on the stand-in server: cleanup, errors, frame matching, episode ends."""

from __future__ import annotations

import socket
import time
import warnings

import numpy as np
import pytest

from sim import spec
from sim.carla import (
    CarlaConnectionError,
    CarlaDrivingEnv,
    CarlaEnvConfig,
    CarlaNotInstalledError,
    CarlaSpawnError,
    CarlaVersionWarning,
)
from tests.sim.carla import standin
from tests.sim.carla.checks import assert_clean, run


def test_normal_end_restores_the_server(server, env_kwargs):
    original = standin.WorldSettings(fixed_delta_seconds=0.02)  # whatever the user had
    server.settings = original
    with CarlaDrivingEnv(**env_kwargs) as env:
        assert server.settings.synchronous_mode and server.settings.fixed_delta_seconds == 0.05
        assert server.tm_sync[8000] is True
        env.reset(seed=1)
        assert len(server.live_actors()) == 4  # car, camera, collision, lane invasion
        assert len(server.listening_sensors()) == 3
        run(env, 5)
        env.reset(seed=2)  # the previous episode's actors are gone
        assert len(server.live_actors()) == 4
    assert_clean(server, original)
    env.close()  # idempotent
    assert_clean(server, original)


def test_cleanup_order_sensors_stopped_then_one_destroy_batch(server, env_kwargs):
    env = CarlaDrivingEnv(**env_kwargs)
    env.reset(seed=0)
    ids = sorted(a.id for a in server.live_actors())
    server.log.clear()
    env.close()
    batches = [entry for entry in server.log if entry[0] == "batch"]
    assert len(batches) == 1 and sorted(batches[0][1]) == ids
    settings_at = next(i for i, e in enumerate(server.log) if e[0] == "apply_settings")
    assert settings_at < server.log.index(batches[0])  # async again before destroying
    assert_clean(server)


@pytest.mark.parametrize("exc", [RuntimeError("boom in the server"), KeyboardInterrupt()])
def test_exception_or_ctrl_c_during_step_restores_the_server(server, env_kwargs, exc):
    env = CarlaDrivingEnv(**env_kwargs)
    env.reset(seed=0)
    server.raise_on_tick = (3, exc)
    with pytest.raises(type(exc)):
        run(env, 10)
    assert_clean(server)
    with pytest.raises(RuntimeError, match="closed"):
        env.reset(seed=0)


def test_ctrl_c_during_reset_restores_the_server(server, env_kwargs):
    env = CarlaDrivingEnv(**env_kwargs)
    server.raise_on_tick = (2, KeyboardInterrupt())  # during the settling ticks
    with pytest.raises(KeyboardInterrupt):
        env.reset(seed=0)
    assert_clean(server)


def test_ctrl_c_in_the_driver_loop_is_cleaned_up_by_the_context_manager(server, env_kwargs):
    with pytest.raises(KeyboardInterrupt), CarlaDrivingEnv(**env_kwargs) as env:
        env.reset(seed=0)
        run(env, 2)
        raise KeyboardInterrupt
    assert_clean(server)


def test_no_server_gives_a_clear_error_after_the_timeout(fake_carla):
    with pytest.raises(CarlaConnectionError) as info:
        CarlaDrivingEnv(port=2999, timeout_s=0.1)
    msg = str(info.value)
    assert "127.0.0.1:2999" in msg and "within 0.1 s" in msg
    assert "CarlaUE4.sh" in msg and "-carla-rpc-port=2999" in msg
    assert "time-out of 100ms" in msg  # CARLA's own text is kept


def test_no_server_with_the_real_client(monkeypatch):
    carla = pytest.importorskip("carla")
    if carla is standin or not hasattr(carla, "Map"):
        pytest.skip("the real carla wheel is not installed")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CarlaConnectionError, match=f"127.0.0.1:{port}"):
        CarlaDrivingEnv(port=port, timeout_s=0.3)  # fails after about the time-out


def test_missing_client_package_names_the_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "carla", None)  # import carla -> ImportError
    with pytest.raises(CarlaNotInstalledError, match=r'pip install -e "\.\[carla\]"'):
        CarlaDrivingEnv()


def test_version_mismatch_warns(server, env_kwargs):
    server.version = "0.9.15"
    with pytest.warns(CarlaVersionWarning, match=r"0\.9\.16 and server 0\.9\.15"):
        env = CarlaDrivingEnv(**env_kwargs)
    env.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CarlaVersionWarning)
        server.version = standin.CLIENT_VERSION
        CarlaDrivingEnv(**env_kwargs).close()


def test_loads_the_town_and_keeps_the_original_settings(server, env_kwargs):
    with CarlaDrivingEnv(**env_kwargs, town="Town02") as env:
        assert ("load_world", "Town02") in server.log
        assert env.reset(seed=0)[1][spec.INFO_TOWN] == "Town02"
        assert server.settings.synchronous_mode  # re-applied after load_world reset them
    assert_clean(server)


def test_spawn_collision_is_retried_and_leftovers_destroyed(server, env_kwargs):
    world = standin.Client("127.0.0.1", server.port).get_world()
    bp = world.get_blueprint_library().find("vehicle.audi.a2")
    others = [world.spawn_actor(bp, t) for t in server.map.get_spawn_points()[:-1]]  # all but one
    leftover_bp = world.get_blueprint_library().find("vehicle.tesla.model3")
    leftover_bp.set_attribute("role_name", "liquid_drive")  # from a crashed run of ours
    free = server.map.get_spawn_points()[-1]
    with pytest.raises(RuntimeError, match="Spawn failed because of collision"):
        world.spawn_actor(bp, others[0].get_transform())
    leftover = world.spawn_actor(leftover_bp, free)
    with CarlaDrivingEnv(**env_kwargs, max_spawn_attempts=100) as env:
        assert not leftover.is_alive
        env.reset(seed=3)
        car = env._vehicle
        assert car.get_location().distance(free.location) < 1.0  # the only free point
    assert sorted(a.id for a in server.live_actors()) == sorted(a.id for a in others)


def test_no_free_spawn_point_is_a_clear_error(server, env_kwargs):
    world = standin.Client("127.0.0.1", server.port).get_world()
    bp = world.get_blueprint_library().find("vehicle.audi.a2")
    others = [world.spawn_actor(bp, t) for t in server.map.get_spawn_points()]
    env = CarlaDrivingEnv(**env_kwargs, max_spawn_attempts=5)
    with pytest.raises(CarlaSpawnError, match="no free spawn point in Town01 after 5"):
        env.reset(seed=0)
    assert sorted(a.id for a in server.live_actors()) == sorted(a.id for a in others)
    assert server.settings.synchronous_mode is False


def test_every_observation_is_the_image_of_its_own_frame(server, env_kwargs):
    assert server.late_image_every  # some images arrive after tick() returned
    with CarlaDrivingEnv(**env_kwargs) as env:
        obs, _ = env.reset(seed=0)
        assert env._camera_q.discarded > 0  # images of the settling ticks were drained
        times = [float(obs[spec.T_S][0])]
        for _ in range(12):
            assert obs[spec.IMAGE][0, 0, 0] == server.frame % 256  # stamped by the stand-in
            obs, *_ = env.step(np.zeros(1, np.float32))
            times.append(float(obs[spec.T_S][0]))
    assert times[0] == 0.0
    assert np.allclose(np.diff(times), 0.05)


def test_observation_and_info_follow_the_contract(server, env_kwargs):
    with CarlaDrivingEnv(**env_kwargs, target_speed_mps=6.0) as env:
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        assert obs[spec.SPEED_MPS][0] == pytest.approx(6.0, abs=0.5)  # starts at target speed
        info_keys = {v for k, v in vars(spec).items() if k.startswith("INFO_")}
        assert info_keys <= set(info)
        expert = env.make_expert()
        state = expert.reset()
        for _ in range(80):
            action, state = expert.act(obs, state)
            assert action.dtype == np.float32 and action.shape == (1,)
            obs, _, _, _, info = env.step(action)
        assert env.observation_space.contains(obs)
        assert info_keys <= set(info)
        assert info[spec.INFO_PROGRESS_M] > 10.0
        assert obs[spec.SPEED_MPS][0] == pytest.approx(6.0, abs=1.5)
        assert abs(info[spec.INFO_LATERAL_OFFSET_M]) < 1.0  # the stand-in's loop bends gently
        with pytest.raises(ValueError, match="finite"):
            env.step(np.array([np.nan], np.float32))


def test_steering_left_moves_the_car_left(server, env_kwargs):
    def drive(kappa):
        with CarlaDrivingEnv(**env_kwargs, target_speed_mps=5.0) as env:
            env.reset(seed=4)
            info = run(env, 30, kappa=kappa)[4]
            steer = env._vehicle.get_control().steer
        assert info[spec.INFO_CURVATURE_APPLIED] == pytest.approx(kappa, rel=1e-3)
        return info[spec.INFO_HEADING_ERROR_RAD], info[spec.INFO_LATERAL_OFFSET_M], steer

    left, right = drive(0.05), drive(-0.05)
    assert left[0] > right[0] + 0.1  # heading turned left
    assert left[1] > right[1] + 0.2  # and the car moved left
    assert left[2] < 0 < right[2]  # CARLA steer: negative = left


def test_offset_start_shows_the_road_shifted_in_the_image(server, env_kwargs):
    def road_centre_column(offset_m):
        with CarlaDrivingEnv(**env_kwargs) as env:
            obs, info = env.reset(seed=5, options={"start_offset_m": offset_m})
        img = obs[spec.IMAGE][-10:].astype(int)
        grey = (np.abs(img[..., 0] - img[..., 1]) < 8) & (img[..., 1] > 60) & (img[..., 1] < 130)
        return np.nonzero(grey)[1].mean(), info[spec.INFO_LATERAL_OFFSET_M]

    left_col, left_off = road_centre_column(1.0)
    right_col, right_off = road_centre_column(-1.0)
    assert left_off == pytest.approx(1.0, abs=0.1) and right_off == pytest.approx(-1.0, abs=0.1)
    # Standing left of the lane centre, the road lies to the right in the image.
    assert left_col > 100 > right_col


def test_lane_departure_terminates(server, env_kwargs):
    with CarlaDrivingEnv(**env_kwargs, target_speed_mps=6.0) as env:
        env.reset(seed=0)
        _, _, term, trunc, info = run(env, 200, kappa=0.2)
        assert term and not trunc and not info[spec.INFO_COLLISION]
        assert abs(info[spec.INFO_LATERAL_OFFSET_M]) > info[spec.INFO_LANE_HALF_WIDTH_M] + 0.25
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.zeros(1, np.float32))
    assert_clean(server)


def test_intervention_mode_puts_the_car_back_and_continues(server, env_kwargs):
    with CarlaDrivingEnv(**env_kwargs, target_speed_mps=6.0, intervention_mode=True) as env:
        env.reset(seed=0)
        interventions = 0
        for _ in range(80):
            _, _, term, trunc, info = env.step(np.array([0.2], np.float32))
            interventions += info[spec.INFO_INTERVENTION]
            assert not term
            if info[spec.INFO_INTERVENTION]:
                assert abs(info[spec.INFO_LATERAL_OFFSET_M]) < 0.3
                assert abs(info[spec.INFO_HEADING_ERROR_RAD]) < 0.1
            if trunc:
                break
        assert interventions >= 2


def test_collision_terminates(server, env_kwargs):
    with CarlaDrivingEnv(**env_kwargs) as env:
        env.reset(seed=0)
        run(env, 3)
        server.collide_on_tick = 1
        _, _, term, _, info = env.step(np.zeros(1, np.float32))
        assert term and info[spec.INFO_COLLISION]


def test_invalid_config_values_are_named():
    with pytest.raises(ValueError, match="control_rate_hz"):
        CarlaEnvConfig(control_rate_hz=5.0)
    with pytest.raises(ValueError, match="Foggy"):
        CarlaEnvConfig(weather="Foggy")
    with pytest.raises(ValueError, match="ports"):
        CarlaEnvConfig(port=0)


def test_one_env_per_server(server, env_kwargs):
    from sim.carla import CarlaServerBusyError

    first = CarlaDrivingEnv(**env_kwargs)
    with pytest.raises(CarlaServerBusyError, match="still open"):
        CarlaDrivingEnv(**env_kwargs)
    assert server.settings.synchronous_mode  # the first env is untouched
    first.close()
    CarlaDrivingEnv(**env_kwargs).close()
    assert_clean(server)


def test_unknown_and_builtin_only_options_are_clear_errors(server, env_kwargs):
    with pytest.raises(ValueError, match=r"unknown CARLA env option\(s\) \['texture_res_m'\]"):
        CarlaDrivingEnv(**env_kwargs, texture_res_m=0.1)
    with pytest.raises(ValueError, match="fixed delta"):
        CarlaDrivingEnv(**env_kwargs, frame_time_jitter=0.1)
    assert server.live_actors() == [] and not server.settings.synchronous_mode


def test_image_noise_option(server, env_kwargs):
    def first_image(**kw):
        with CarlaDrivingEnv(**env_kwargs, **kw) as env:
            return env.reset(seed=0)[0][spec.IMAGE].astype(int)

    clean, noisy = first_image(), first_image(image_noise_std=0.05)
    diff = (noisy - clean)[1:]  # pixel (0, 0) carries the frame stamp
    assert 5 < diff.std() < 20
    assert np.array_equal(first_image()[1:], clean[1:])


def test_same_seed_same_start_and_route(server, env_kwargs):
    def start(seed):
        with CarlaDrivingEnv(**env_kwargs) as env:
            _, info = env.reset(seed=seed)
            return info[spec.INFO_POSE], env.route.x.copy(), info["target_speed_mps"]

    a, b, c = start(7), start(7), start(8)
    assert a[0] == pytest.approx(b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert a[0] != pytest.approx(c[0])


def test_sigterm_handler_is_installed_and_only_restored_if_still_ours(server, env_kwargs):
    import signal

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("SIGTERM already handled by the test runner")
    env = CarlaDrivingEnv(**env_kwargs)
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    env.close()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    env = CarlaDrivingEnv(**env_kwargs)

    def tool_handler(signum, frame):
        pass

    signal.signal(signal.SIGTERM, tool_handler)  # e.g. tools/record.py's clean stop
    try:
        env.close()
        assert signal.getsignal(signal.SIGTERM) is tool_handler
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


CTRL_C_SCRIPT = """
import json, sys, time
import numpy as np
from tests.sim.carla import standin
from tests.sim.carla.checks import assert_clean, run
sys.modules["carla"] = standin
from sim.carla import CarlaDrivingEnv
srv = standin.Server(port=26000, late_image_delay_s=0.05)
try:
    env = CarlaDrivingEnv(port=26000, settle_time_s=0.1, route_length_m=1e4)
    env.reset(seed=0)
    print("driving", flush=True)
    while True:
        env.step(np.zeros(1, np.float32))
except KeyboardInterrupt:
    state = {"live": len(srv.live_actors()), "sync": srv.settings.synchronous_mode,
             "tm_sync": any(srv.tm_sync.values()), "violations": srv.violations}
    print(json.dumps(state), flush=True)
"""


def test_real_ctrl_c_in_a_running_episode_restores_the_server(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    script = tmp_path / "drive.py"
    script.write_text(CTRL_C_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=root, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "driving"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    state = json.loads(out.strip().splitlines()[-1])
    assert state == {"live": 0, "sync": False, "tm_sync": False, "violations": []}


def test_the_car_executes_the_commanded_curvature_at_speed(server, env_kwargs):
    # 8 m/s = 28.8 km/h: the stand-in car has only ~88 % of its lock there.
    kwargs = {**env_kwargs, "route_length_m": 500.0, "target_speed_mps": 8.0}
    with CarlaDrivingEnv(**kwargs) as env:
        obs, _ = env.reset(seed=2)
        expert, state = env.make_expert(), None
        for _ in range(60):  # up to speed first
            action, state = expert.act(obs, state)
            obs = env.step(action)[0]
        poses = []
        for _ in range(20):
            info = env.step(np.array([0.03], np.float32))[4]
            poses.append(info[spec.INFO_POSE])
    xy = np.array([p[:2] for p in poses])
    yaw = np.unwrap([p[2] for p in poses])
    arc = np.hypot(*np.diff(xy, axis=0).T).sum()
    assert (yaw[-1] - yaw[0]) / arc == pytest.approx(0.03, rel=0.03)


def test_server_that_stops_answering_mid_episode(server, env_kwargs, caplog):
    env = CarlaDrivingEnv(**{**env_kwargs, "timeout_s": 0.1})
    env.reset(seed=0)
    run(env, 2)
    server.stop()  # the server process died
    with pytest.raises(CarlaConnectionError, match="stopped answering"):
        env.step(np.zeros(1, np.float32))
    assert "cleanup: restoring world settings failed" in caplog.text  # tried, logged, went on
    with pytest.raises(RuntimeError, match="closed"):
        env.reset(seed=1)


def test_time_limit_truncates_exactly(server, env_kwargs):
    with CarlaDrivingEnv(**{**env_kwargs, "max_time_s": 1.0, "route_length_m": 500.0}) as env:
        obs, _ = env.reset(seed=0)
        expert, state, steps = env.make_expert(), None, 0
        while True:
            action, state = expert.act(obs, state)
            obs, reward, term, trunc, _ = env.step(action)
            steps += 1
            assert 0.9 < reward <= 1.0  # near the lane centre
            if term or trunc:
                break
    assert trunc and not term and steps == 20 and obs[spec.T_S][0] == pytest.approx(1.0)


def test_errors_raised_on_purpose_are_project_errors_refining_the_builtin():
    from liquid_drive.errors import LiquidDriveError
    from sim.carla import CarlaConfigError, CarlaDataError, PurePursuitConfig, suite_conditions
    from sim.carla.convert import bgra_to_rgb, vehicle_geometry_from_wheels

    refused = [
        (lambda: CarlaEnvConfig(control_rate_hz=5.0), CarlaConfigError),
        (lambda: CarlaEnvConfig(camera="200x78"), CarlaConfigError),
        (lambda: PurePursuitConfig(lookahead_min_m=0.0), CarlaConfigError),
        (lambda: suite_conditions("carla-moon"), CarlaConfigError),
        (lambda: bgra_to_rgb(b"\0" * 7, 1, 2), CarlaDataError),
        (lambda: vehicle_geometry_from_wheels([], (0.0, 0.0), 0.0), CarlaDataError),
    ]
    for call, error in refused:
        with pytest.raises(error) as info:
            call()
        assert isinstance(info.value, LiquidDriveError) and isinstance(info.value, ValueError)
    assert issubclass(CarlaConfigError, spec.SimConfigError)
    assert issubclass(CarlaDataError, spec.ContractError)


def test_env_options_and_order_errors_are_project_errors(server, env_kwargs):
    from sim.carla import CarlaConfigError

    with pytest.raises(CarlaConfigError, match="texture_res_m"):
        CarlaDrivingEnv(**env_kwargs, texture_res_m=0.1)
    with pytest.raises(CarlaConfigError, match="render_mode"):
        CarlaDrivingEnv(**env_kwargs, render_mode="human")
    with CarlaDrivingEnv(**env_kwargs) as env:
        with pytest.raises(spec.ResetNeededError, match="no episode yet"):
            env.route  # noqa: B018
        with pytest.raises(CarlaConfigError, match="start_speed"):
            env.reset(seed=0, options={"start_speed": 3.0})
    assert_clean(server)

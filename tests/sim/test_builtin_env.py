import math
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim
from sim import spec
from sim.builtin.env import BuiltinDrivingEnv, EnvConfigError
from sim.builtin.towns import UnknownNameError

INFO_KEYS = [getattr(spec, k) for k in dir(spec) if k.startswith("INFO_")]


def test_check_env_passes_without_warnings():
    env = gymnasium.make(sim.BUILTIN_ENV_ID, route_length_m=200.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.close()


def test_every_info_key_on_every_step_and_spaces():
    env = BuiltinDrivingEnv(route_length_m=100.0)
    obs, info = env.reset(seed=3)
    assert set(INFO_KEYS) <= set(info)
    assert obs[spec.IMAGE].shape == (78, 200, 3) and obs[spec.IMAGE].dtype == np.uint8
    expert = sim.make_expert(env)
    state = expert.reset()
    for _ in range(20):
        action, state = expert.act(obs, state)
        assert action.shape == (1,) and action.dtype == np.float32
        obs, _reward, terminated, _truncated, info = env.step(action)
        assert obs in env.observation_space
        assert set(INFO_KEYS) <= set(info)
        assert info[spec.INFO_NOISE_ACTIVE] is False
        assert not terminated


def _rollout(seed, steps=40, **kw):
    env = BuiltinDrivingEnv(route_length_m=150.0, **kw)
    obs, _ = env.reset(seed=seed)
    expert = env.make_expert()
    frames, poses = [obs[spec.IMAGE]], []
    for _ in range(steps):
        action, _ = expert.act(obs, None)
        obs, _, _, _, info = env.step(action)
        frames.append(obs[spec.IMAGE])
        poses.append(info[spec.INFO_POSE])
    return np.stack(frames), np.array(poses)


def test_same_seed_gives_identical_frames_and_trajectory():
    kw = dict(town="suburb", weather="heavy_rain", image_noise_std=0.02, frame_time_jitter=0.2)
    f1, p1 = _rollout(7, **kw)
    f2, p2 = _rollout(7, **kw)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(p1, p2)
    f3, _ = _rollout(8, **kw)
    assert not np.array_equal(f1, f3)


def test_bad_names_and_actions_are_clear_errors():
    with pytest.raises(UnknownNameError, match="countryside"):
        BuiltinDrivingEnv(town="atlantis")
    with pytest.raises(UnknownNameError, match="clear_noon"):
        BuiltinDrivingEnv(weather="hail")
    with pytest.raises(EnvConfigError, match="valid fields"):
        BuiltinDrivingEnv(townn="suburb")
    env = BuiltinDrivingEnv(route_length_m=100.0)
    env.reset(seed=0)
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="finite"):
            env.step(np.array([bad], np.float32))


def test_out_of_range_action_is_clipped_to_the_car_limit():
    env = BuiltinDrivingEnv(route_length_m=100.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([5.0], np.float32))
    assert info[spec.INFO_CURVATURE_APPLIED] == pytest.approx(env.max_curvature_per_m)
    limit = env.config.vehicle.max_steer_rad
    assert math.atan(
        env.config.vehicle.wheelbase_m * info[spec.INFO_CURVATURE_APPLIED]
    ) == pytest.approx(limit)


def test_make_env_and_registered_id():
    env = sim.make_env("builtin", town="desert", weather="fog", route_length_m=100.0)
    assert env.config.town == "desert" and env.config.weather == "fog"
    with pytest.raises(ValueError, match="builtin"):
        sim.make_env("unreal")
    env = gymnasium.make(
        sim.BUILTIN_ENV_ID, town="snow", control_rate_hz=10.0, route_length_m=100.0
    )
    obs, info = env.reset(seed=0)
    assert info[spec.INFO_TOWN] == "snow"
    assert env.unwrapped.metadata["render_fps"] == 10.0
    expert = sim.make_expert(env)
    action, _ = expert.act(obs, expert.reset())
    env.step(action)

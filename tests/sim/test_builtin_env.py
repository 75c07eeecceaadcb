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


BAD_ACTIONS = [
    (True, "bool"),
    (np.bool_(False), "bool"),
    (1 + 2j, "complex"),
    (np.complex64(0.1), "complex"),
    (None, "NoneType"),
    ("0.1", "str"),
    (b"0.1", "bytes"),
    (np.zeros(2, np.float32), r"2 values \(ndarray of dtype float32 and shape \(2,\)\)"),
    ([0.1, 0.2], r"2 values \(list \[0.1, 0.2\]\)"),
    (np.zeros(0), "0 values"),
    ([[0.1], [0.2, 0.3]], "list"),
    (np.array([None]), "dtype object"),
]


@pytest.mark.parametrize(("action", "named"), BAD_ACTIONS)
def test_check_action_refuses_what_is_not_one_real_number_and_names_it(action, named):
    with pytest.raises(spec.ContractError, match=named):
        spec.check_action(action, 0.2)


def test_check_action_accepts_real_scalars_and_one_element_arrays():
    for good in (0.1, 1, np.float32(0.1), np.int64(0), [0.1], np.array([[0.1]]), np.float16(0.1)):
        assert -0.2 <= spec.check_action(good, 0.2) <= 0.2
    assert spec.check_action(np.array([5.0], np.float32), 0.2) == 0.2


def test_bad_action_types_are_refused_by_step():
    env = BuiltinDrivingEnv(route_length_m=100.0)
    env.reset(seed=0)
    for action, named in BAD_ACTIONS:
        with pytest.raises(spec.ContractError, match=named):
            env.step(action)
    env.step(np.zeros(1, np.float32))  # the episode is still fine


def _until_the_end(env, kappa):
    for _ in range(2000):
        _, _, terminated, truncated, info = env.step(np.array([kappa], np.float32))
        if terminated or truncated:
            return terminated, truncated, info
    raise AssertionError("the episode did not end")


@pytest.mark.parametrize("kappa", [0.15, 0.0], ids=["terminated", "truncated"])
def test_step_after_the_episode_ended_needs_a_reset(kappa):
    env = BuiltinDrivingEnv(route_length_m=10.0, max_time_s=3.0, supersample=1)
    env.reset(seed=0)
    terminated, truncated, info = _until_the_end(env, kappa)
    assert terminated if kappa else truncated
    pose = info[spec.INFO_POSE]
    with pytest.raises(spec.ResetNeededError, match="episode has ended") as err:
        env.step(np.zeros(1, np.float32))
    assert isinstance(err.value, gymnasium.error.ResetNeeded)
    assert isinstance(err.value, RuntimeError)
    assert env._info()[spec.INFO_POSE] == pose  # the car did not move on
    env.reset(seed=1)
    env.step(np.zeros(1, np.float32))  # a new episode steps again


def test_reset_and_step_after_close_are_clear_errors():
    env = BuiltinDrivingEnv(route_length_m=100.0)
    with pytest.raises(spec.ResetNeededError, match=r"call reset\(\) before step\(\)"):
        env.step(np.zeros(1, np.float32))
    env.reset(seed=0)
    env.close()
    for call in (lambda: env.step(np.zeros(1, np.float32)), lambda: env.reset(seed=0)):
        with pytest.raises(spec.EnvClosedError, match="closed environment") as err:
            call()
        assert isinstance(err.value, gymnasium.error.ClosedEnvironmentError)
    env.close()  # closing twice is allowed
    assert env.render() is None

import numpy as np
import pytest

import sim
from sim import spec
from sim.builtin.env import BuiltinDrivingEnv
from sim.builtin.towns import TOWNS
from sim.builtin.weather import WEATHERS


def _drive(env, seed, max_steps=100000):
    obs, info = env.reset(seed=seed)
    expert = sim.make_expert(env)
    state = expert.reset()
    errors, poses = [], []
    for _ in range(max_steps):
        action, state = expert.act(obs, state)
        obs, _, terminated, truncated, info = env.step(action)
        assert not terminated, f"expert left the lane at {info[spec.INFO_PROGRESS_M]:.0f} m"
        errors.append(info[spec.INFO_LATERAL_OFFSET_M])
        poses.append(info[spec.INFO_POSE])
        if truncated:
            break
    return np.abs(np.array(errors)), np.array(poses), info


@pytest.mark.parametrize("town", TOWNS)
def test_expert_keeps_the_lane_centre_in_every_town(town):
    env = BuiltinDrivingEnv(town=town, route_length_m=500.0, supersample=1)
    errors, _, info = _drive(env, seed=11)
    assert info[spec.INFO_PROGRESS_M] >= 499.0
    assert errors.mean() <= 0.10
    assert errors.max() < info[spec.INFO_LANE_HALF_WIDTH_M] - 0.9  # the whole car stays in lane


def test_expert_trajectory_does_not_depend_on_the_weather():
    # the expert is privileged (it never looks at the image), so its accuracy in one
    # weather holds in all of them: the trajectories are identical
    reference = None
    for weather in WEATHERS:
        env = BuiltinDrivingEnv(town="mountain_pass", weather=weather, route_length_m=60.0)
        _, poses, _ = _drive(env, seed=2)
        if reference is None:
            reference = poses
        np.testing.assert_array_equal(poses, reference)


def test_intervention_mode_counts_departures_and_continues_the_route():
    env = BuiltinDrivingEnv(town="countryside", route_length_m=300.0, intervention_mode=True)
    env.reset(seed=0)
    interventions, steps = 0, 0
    truncated = False
    while not truncated:
        # steer hard left all the time: the car keeps leaving the lane
        _, _, terminated, truncated, info = env.step(np.array([0.05], np.float32))
        assert not terminated
        steps += 1
        if info[spec.INFO_INTERVENTION]:
            interventions += 1
            assert abs(info[spec.INFO_LATERAL_OFFSET_M]) < 1e-4
            assert abs(info[spec.INFO_HEADING_ERROR_RAD]) < 1e-4
    assert interventions >= 5
    assert info[spec.INFO_PROGRESS_M] >= 299.0


def test_departure_terminates_without_intervention_mode():
    env = BuiltinDrivingEnv(town="countryside", route_length_m=300.0)
    env.reset(seed=0)
    for _ in range(200):
        _, _, terminated, truncated, info = env.step(np.array([0.05], np.float32))
        if terminated:
            break
    assert terminated and not truncated
    half = info[spec.INFO_LANE_HALF_WIDTH_M]
    assert abs(info[spec.INFO_LATERAL_OFFSET_M]) > half + env.config.departure_margin_m

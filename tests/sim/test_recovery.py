"""Recovery views of the builtin simulator: labels from the expert's law, offsets, the contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim import spec
from sim.builtin.env import BuiltinDrivingEnv, BuiltinEnvConfig
from sim.builtin.recovery import OffsetSchedule, RecoveryViews, shifted_pose


def _drive(env: BuiltinDrivingEnv, steps: int, seed: int = 3) -> tuple[list, list]:
    obs, info = env.reset(seed=seed)
    expert = env.make_expert()
    observations, infos = [obs], [info]
    for _ in range(steps):
        obs, _, _, _, info = env.step(expert.act(obs, None)[0])
        observations.append(obs)
        infos.append(info)
    return observations, infos


def test_zero_offset_view_is_the_car_itself() -> None:
    env = BuiltinDrivingEnv(recovery=RecoveryViews(views=2, max_lateral_m=0.0, max_yaw_deg=0.0))
    observations, infos = _drive(env, 30)
    expert = env.make_expert()
    obs, info = observations[-1], infos[-1]
    assert np.all(info[spec.RECOVERY_OFFSETS] == 0.0)
    assert np.all(info[spec.RECOVERY_LABELS] == expert.curvature())
    for image in info[spec.RECOVERY_IMAGES]:  # clear weather: no noise
        np.testing.assert_array_equal(image, obs[spec.IMAGE])


@pytest.mark.parametrize(("lateral_m", "yaw_deg"), [(0.5, 0.0), (1.0, 0.0), (0.0, 4.0)])
def test_a_view_left_of_the_car_is_labelled_more_to_the_right(
    lateral_m: float, yaw_deg: float
) -> None:
    env = BuiltinDrivingEnv(town="suburb")
    _, infos = _drive(env, 40)
    expert = env.make_expert()
    pose = infos[-1][spec.INFO_POSE]
    heading = pose[2] - infos[-1][spec.INFO_HEADING_ERROR_RAD]
    true = expert.curvature()
    left = expert.curvature_at(*shifted_pose(pose, heading, lateral_m, math.radians(yaw_deg)))
    right = expert.curvature_at(*shifted_pose(pose, heading, -lateral_m, -math.radians(yaw_deg)))
    assert left < true - 0.005 < true + 0.005 < right
    assert expert.curvature_at(*pose) == true


def test_offsets_hold_then_ramp_smoothly_within_their_limits() -> None:
    cfg = RecoveryViews(views=3, max_lateral_m=1.0, max_yaw_deg=6.0, hold_s=3.0, ramp_s=1.5)
    schedule = OffsetSchedule(cfg, seed=7)
    dt = 0.05
    t = np.arange(0.0, 60.0, dt)
    off = np.stack([schedule.offsets(float(x)) for x in t])  # (T, K, 2)
    limits = np.array([1.0, math.radians(6.0)])
    assert np.all(np.abs(off) <= limits + 1e-12)
    assert np.ptp(off[:, :, 0]) > 1.0  # it does move over a minute
    # smoothstep: rate at most 1.5 * (2 * limit) / ramp_s
    step = np.abs(np.diff(off, axis=0)).max(axis=(0, 1))
    assert np.all(step <= 1.5 * 2 * limits / cfg.ramp_s * dt + 1e-9)
    # held after each ramp: constant from ramp end to the next target
    held = (t % cfg.hold_s >= cfg.ramp_s) | (t < cfg.hold_s)
    segment = np.floor(t / cfg.hold_s)
    for j in np.unique(segment):
        rows = off[(segment == j) & held]
        assert np.all(rows == rows[0])


def test_offsets_are_deterministic_for_a_seed() -> None:
    cfg = RecoveryViews(views=2)
    a, b, c = OffsetSchedule(cfg, 5), OffsetSchedule(cfg, 5), OffsetSchedule(cfg, 6)
    times = [0.0, 4.0, 10.3, 2.0]
    first = [a.offsets(x) for x in times]
    second = {x: b.offsets(x) for x in sorted(times)}  # queried in another order
    for x, value in zip(times, first, strict=True):
        np.testing.assert_array_equal(value, second[x])
    assert not np.array_equal(a.offsets(4.0), c.offsets(4.0))


def test_views_leave_the_car_frames_and_trajectory_unchanged() -> None:
    kw = {"weather": "heavy_rain", "image_noise_std": 0.02}
    off_obs, off_info = _drive(BuiltinDrivingEnv(**kw), 25)
    on_obs, on_info = _drive(BuiltinDrivingEnv(**kw, recovery=RecoveryViews(views=2)), 25)
    for a, b in zip(off_obs, on_obs, strict=True):
        np.testing.assert_array_equal(a[spec.IMAGE], b[spec.IMAGE])
    assert [i[spec.INFO_POSE] for i in off_info] == [i[spec.INFO_POSE] for i in on_info]
    assert spec.RECOVERY_IMAGES not in off_info[-1]
    assert on_info[-1][spec.RECOVERY_IMAGES].shape == (2, 78, 200, 3)
    assert on_info[-1][spec.RECOVERY_OFFSETS].shape == (2, 2)


def test_an_offset_beyond_the_lane_is_refused_at_config_time() -> None:
    with pytest.raises(spec.SimConfigError, match=r"max_lateral_m=1\.6 m is beyond the lane"):
        BuiltinEnvConfig(town="suburb", recovery=RecoveryViews(views=1, max_lateral_m=1.6))
    BuiltinEnvConfig(town="highway", recovery=RecoveryViews(views=1, max_lateral_m=1.6))
    BuiltinEnvConfig(town="suburb", recovery=RecoveryViews(views=0, max_lateral_m=1.6))  # off
    with pytest.raises(spec.SimConfigError, match="recovery views must be"):
        RecoveryViews(views=-1)


def test_the_plain_dict_form_is_accepted() -> None:
    cfg = BuiltinEnvConfig(recovery={"views": 2, "max_lateral_m": 0.5})
    assert cfg.recovery == RecoveryViews(views=2, max_lateral_m=0.5)

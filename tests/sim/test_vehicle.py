import math

import numpy as np
import pytest

from sim.builtin.vehicle import Vehicle, VehicleParams


def test_constant_curvature_drives_a_circle_of_radius_one_over_kappa():
    kappa = 1.0 / 20.0
    car = Vehicle()
    car.reset(0.0, 0.0, 0.0, 8.0, steer_rad=math.atan(car.params.wheelbase_m * kappa))
    pts = []
    for _ in range(400):
        car.step(kappa, 8.0, 0.05)
        pts.append((car.state.x_m, car.state.y_m))
    pts = np.array(pts)
    # a left turn from the origin heading +x: the centre is at (0, 1/kappa)
    radius = np.hypot(pts[:, 0], pts[:, 1] - 1.0 / kappa)
    np.testing.assert_allclose(radius, 1.0 / kappa, atol=1e-9)
    # 400 steps at 8 m/s = 160 m of arc = 160 * kappa rad of heading
    assert math.remainder(car.state.yaw_rad - 160.0 * kappa, math.tau) == pytest.approx(
        0.0, abs=1e-9
    )


def test_straight_line_at_constant_speed():
    car = Vehicle()
    car.reset(1.0, 2.0, math.radians(30.0), 20.0)
    for _ in range(40):
        car.step(0.0, 20.0, 0.05)
    # 2 s at 20 m/s = 40 m along 30 degrees
    assert car.state.x_m == pytest.approx(1.0 + 40.0 * math.cos(math.radians(30.0)))
    assert car.state.y_m == pytest.approx(2.0 + 40.0 * math.sin(math.radians(30.0)))
    assert car.state.yaw_rad == pytest.approx(math.radians(30.0))


def test_steering_rate_limit_and_lag_and_angle_limit():
    params = VehicleParams(max_steer_rate_radps=0.5, steer_time_constant_s=0.1, max_steer_rad=0.5)
    car = Vehicle(params)
    car.reset(0.0, 0.0, 0.0, 5.0)
    angles = []
    for _ in range(60):
        car.step(10.0, 5.0, 0.05)  # far beyond the limit: clipped to max_steer_rad
        angles.append(car.state.steer_rad)
    angles = np.array(angles)
    # rate-limited ramp at first: exactly 0.5 rad/s * 0.05 s per step
    np.testing.assert_allclose(angles[:10], 0.025 * np.arange(1, 11), atol=1e-12)
    assert np.all(np.diff(angles) <= 0.025 + 1e-12)
    # then the first-order lag approaches the limit and never exceeds it
    assert angles.max() <= 0.5 + 1e-12
    assert angles[-1] == pytest.approx(0.5, abs=1e-3)
    assert car.curvature_per_m == pytest.approx(math.tan(angles[-1]) / 2.7)


def test_first_order_lag_without_rate_limit():
    params = VehicleParams(max_steer_rate_radps=100.0, steer_time_constant_s=0.2)
    car = Vehicle(params)
    car.reset(0.0, 0.0, 0.0, 5.0)
    target = math.atan(2.7 * 0.05)
    car.step(0.05, 5.0, 0.2)  # one time constant
    assert car.state.steer_rad == pytest.approx(target * (1 - math.exp(-1.0)))


def test_cruise_control_reaches_target_with_acceleration_limit():
    car = Vehicle()
    car.reset(0.0, 0.0, 0.0, 0.0)
    car.step(0.0, 10.0, 0.1)
    assert car.state.speed_mps == pytest.approx(car.params.max_accel_mps2 * 0.1)
    for _ in range(400):
        car.step(0.0, 10.0, 0.05)
    assert car.state.speed_mps == pytest.approx(10.0, abs=1e-3)


def test_bad_params_are_errors():
    with pytest.raises(ValueError, match="wheelbase_m"):
        VehicleParams(wheelbase_m=0.0)
    with pytest.raises(ValueError, match="max_steer_rad"):
        VehicleParams(max_steer_rad=2.0)

"""Closed-loop metrics on synthetic trajectories whose answers are known by hand."""

import math

import numpy as np
import pytest

from driving.evaluate.metrics import (
    METRIC_NAMES,
    EpisodeMetrics,
    MetricsError,
    episode_metrics,
    steering_rate_rms,
)


def _straight(n=2001, dt=0.05, speed=10.0, **overrides):
    """A car on the lane centre at constant speed: n steps of dt seconds."""
    t = np.arange(n) * dt
    cols = dict(
        t_s=t,
        command=np.zeros(n),
        lateral_offset_m=np.zeros(n),
        heading_error_rad=np.zeros(n),
        progress_m=speed * t,
        intervention=np.zeros(n, dtype=bool),
        speed_mps=np.full(n, speed),
        route_length_m=1000.0,
    )
    cols.update(overrides)
    return cols


def test_perfect_straight_kilometre():
    m = episode_metrics(**_straight())
    assert m.steps == 2001
    assert m.duration_s == pytest.approx(100.0)
    assert m.distance_km == pytest.approx(1.0)
    assert m.route_completion == pytest.approx(1.0)
    assert m.interventions == 0
    assert m.interventions_per_km == 0.0
    assert m.km_per_intervention is None
    assert m.lateral_error_mean_m == m.lateral_error_rms_m == m.lateral_error_max_m == 0.0
    assert m.failure_rate == 0.0
    assert m.steering_rate_rms == 0.0
    assert m.mean_speed_mps == pytest.approx(10.0)
    assert not m.terminated


def test_interventions_per_km_and_mean_distance_between_them():
    cols = _straight(n=4001)  # 200 s at 10 m/s = 2 km
    flags = np.zeros(4001, dtype=bool)
    flags[[500, 1500, 2500, 3500]] = True
    cols.update(intervention=flags, route_length_m=2000.0)
    m = episode_metrics(**cols)
    assert m.distance_km == pytest.approx(2.0)
    assert m.interventions == 4
    assert m.interventions_per_km == pytest.approx(2.0)
    assert m.km_per_intervention == pytest.approx(0.5)
    assert m.route_completion == pytest.approx(1.0)


def test_termination_mode_counts_the_departure_and_route_completion():
    cols = _straight(n=1001)  # 50 s at 10 m/s = 500 m of a 2 km route
    cols.update(route_length_m=2000.0, terminated=True)
    m = episode_metrics(**cols)
    assert m.terminated
    assert m.route_completion == pytest.approx(0.25)
    assert m.interventions == 1
    assert m.interventions_per_km == pytest.approx(2.0)
    assert m.km_per_intervention == pytest.approx(0.5)


def test_no_distance_leaves_rates_undefined():
    cols = _straight(n=3, speed=0.0)
    cols.update(terminated=True)
    m = episode_metrics(**cols)
    assert m.distance_km == 0.0
    assert m.interventions_per_km is None
    assert m.km_per_intervention == 0.0
    assert m.route_completion == 0.0


def test_lateral_error_mean_rms_max_and_failure_rate():
    n = 1000
    lat = np.where(np.arange(n) % 2 == 0, 3.0, -4.0)  # |e| alternates 3 and 4
    m = episode_metrics(**_straight(n=n, lateral_offset_m=lat))
    assert m.lateral_error_mean_m == pytest.approx(3.5)
    assert m.lateral_error_rms_m == pytest.approx(math.sqrt((9 + 16) / 2))
    assert m.lateral_error_max_m == pytest.approx(4.0)
    assert m.failure_rate == pytest.approx(1.0)

    lat = np.where(np.arange(n) < n // 4, 1.5, 0.2)
    m = episode_metrics(**_straight(n=n, lateral_offset_m=lat))
    assert m.failure_rate == pytest.approx(0.25)


def test_heading_error_in_degrees_of_absolute_value():
    n = 100
    head = np.where(np.arange(n) % 2 == 0, 0.1, -0.3)
    m = episode_metrics(**_straight(n=n, heading_error_rad=head))
    assert m.heading_error_mean_deg == pytest.approx(math.degrees(0.2))
    assert m.heading_error_max_deg == pytest.approx(math.degrees(0.3))


def test_steering_rate_of_a_ramp_uses_real_timestamps():
    # A command ramping at 0.02 1/m per second sampled at jittered times: every finite
    # difference is exactly 0.02 /s, which an assumed fixed dt would get wrong.
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.02, 0.1, size=500))
    assert steering_rate_rms(0.02 * t, t) == pytest.approx(0.02)
    fixed_dt_answer = np.sqrt(np.mean((np.diff(0.02 * t) / 0.05) ** 2))
    assert abs(fixed_dt_answer - 0.02) > 1e-3


def test_steering_rate_of_a_sine_is_amplitude_times_omega_over_root_two():
    amp, omega = 0.01, 2 * math.pi * 0.5  # 0.5 Hz oscillation
    t = np.arange(0, 20, 0.001)  # 10 whole periods, fine sampling
    rms = steering_rate_rms(amp * np.sin(omega * t), t)
    assert rms == pytest.approx(amp * omega / math.sqrt(2), rel=1e-3)


def test_steering_rate_is_in_the_episode_metrics():
    n = 201
    t = np.arange(n) * 0.05
    m = episode_metrics(**_straight(n=n, command=0.03 * t))
    assert m.steering_rate_rms == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"t_s": np.array([0.0, 0.05, 0.05, 0.1])}, "increase strictly"),
        ({"lateral_offset_m": np.array([0.0, np.nan, 0.0, 0.0])}, "non-finite"),
        ({"progress_m": np.zeros(3)}, "has 3 steps, expected 4"),
        ({"route_length_m": 0.0}, "route_length_m must be positive"),
    ],
)
def test_bad_columns_are_clear_errors(overrides, match):
    cols = _straight(n=4)
    cols.update(overrides)
    with pytest.raises(MetricsError, match=match):
        episode_metrics(**cols)


def test_empty_episode_is_an_error():
    with pytest.raises(MetricsError, match="no steps"):
        episode_metrics(**_straight(n=0))


def test_round_trip_through_a_dict():
    m = episode_metrics(**_straight(n=50))
    d = m.to_dict()
    assert tuple(d) == METRIC_NAMES
    assert EpisodeMetrics.from_dict(d) == m
    with pytest.raises(MetricsError, match="unknown"):
        EpisodeMetrics.from_dict({**d, "typo": 1})


def test_metrics_from_episode_columns_uses_the_format_names_and_final_distance():
    from driving.data import episodes as ep
    from driving.evaluate.metrics import metrics_from_columns

    cols = _straight(n=201)  # rows 0..200, 10 s at 10 m/s: progress before each step 0..100 m
    columns = {
        ep.T_S: cols["t_s"],
        ep.CURVATURE_APPLIED: 0.01 * cols["t_s"],
        ep.LATERAL_OFFSET_M: np.full(201, -0.2),
        ep.HEADING_ERROR_RAD: cols["heading_error_rad"],
        ep.PROGRESS_M: cols["progress_m"],
        ep.INTERVENTION: cols["intervention"],
        ep.SPEED_MPS: cols["speed_mps"],
    }
    m = metrics_from_columns(columns, route_length_m=100.0, distance_m=100.5)
    assert m.distance_km == pytest.approx(0.1005)
    assert m.route_completion == 1.0
    assert m.lateral_error_mean_m == pytest.approx(0.2)
    assert m.steering_rate_rms == pytest.approx(0.01)
    assert metrics_from_columns(columns, route_length_m=200.0).route_completion == 0.5
    del columns[ep.INTERVENTION]
    with pytest.raises(MetricsError, match=r"lack \['intervention'\]"):
        metrics_from_columns(columns, route_length_m=200.0)

"""Conversions between CARLA's left-handed conventions and ours, on known geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.carla import convert
from sim.carla.planner import LaneGraph, RouteRequest, plan_route
from sim.carla.route import Route
from tests.sim.carla import standin

XODR = """<?xml version="1.0" standalone="yes"?>
<OpenDRIVE>
  <header revMajor="1" revMinor="4" name="t" version="1.00" north="0" south="0" east="0" west="0"/>
  <road name="r" length="100.0" id="1" junction="-1">
    <link/>
    <planView>
      <geometry s="0.0" x="0.0" y="0.0" hdg="0.0" length="50.0"><line/></geometry>
      <geometry s="50.0" x="50.0" y="0.0" hdg="0.0" length="50.0"><arc curvature="0.02"/></geometry>
    </planView>
    <lanes>
      <laneSection s="0.0">
        <left><lane id="1" type="driving" level="false"><link/>
          <width sOffset="0.0" a="3.5" b="0" c="0" d="0"/></lane></left>
        <center><lane id="0" type="none" level="false"/></center>
        <right><lane id="-1" type="driving" level="false"><link/>
          <width sOffset="0.0" a="3.5" b="0" c="0" d="0"/></lane></right>
      </laneSection>
    </lanes>
  </road>
</OpenDRIVE>
"""
"""A straight then a left arc (OpenDRIVE curvature +0.02 1/m), one lane each way, 3.5 m."""


def test_frame_mirror_and_yaw():
    assert convert.xy_from_carla(standin.Location(3.0, 2.0, 0.0)) == (3.0, -2.0)
    assert convert.xy_to_carla(*convert.xy_from_carla(standin.Location(3.0, 2.0))) == (3.0, 2.0)
    # CARLA yaw +90 deg points to +y = right = our -90 deg.
    assert convert.yaw_from_carla(90.0) == pytest.approx(-math.pi / 2)
    assert convert.yaw_to_carla(math.pi / 2) == pytest.approx(-90.0)
    for yaw in np.linspace(-3.1, 3.1, 13):
        assert convert.yaw_from_carla(convert.yaw_to_carla(yaw)) == pytest.approx(yaw)
    assert convert.yaw_from_carla(181.0) == pytest.approx(math.radians(179.0))


def test_steer_sign_and_clamp():
    wb, max_steer = 2.875, math.radians(70.0)
    # Left curvature -> negative CARLA steer (negative = left).
    s = convert.steer_from_curvature(0.1, wb, max_steer)
    assert s == pytest.approx(-math.atan(0.2875) / max_steer)
    assert convert.steer_from_curvature(-0.1, wb, max_steer) == pytest.approx(-s)
    assert convert.curvature_from_steer(s, wb, max_steer) == pytest.approx(0.1)
    # Beyond full lock: clamped to [-1, 1] (CARLA does not validate) and the inverse saturates.
    assert convert.steer_from_curvature(5.0, wb, max_steer) == -1.0
    assert convert.steer_from_curvature(-5.0, wb, max_steer) == 1.0
    assert convert.curvature_from_steer(-3.0, wb, max_steer) == pytest.approx(
        convert.max_curvature(wb, max_steer)
    )


def test_bgra_to_rgb_channel_order_and_size_check():
    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 255  # B, G, R, A
    rgb = convert.bgra_to_rgb(bgra.tobytes(), 2, 3)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [30, 20, 10]
    assert rgb.flags.c_contiguous and rgb.flags.writeable  # a copy, not a view of the buffer
    with pytest.raises(ValueError, match="expected 2x4x4"):
        convert.bgra_to_rgb(bgra.tobytes(), 2, 4)


def test_vehicle_geometry_from_wheels_in_cm():
    # A car at (10, 20) facing CARLA yaw 90 (+y), wheelbase 2.8 m, centre between axles.
    fwd, right = np.array([0.0, 1.0]), np.array([-1.0, 0.0])
    o = np.array([10.0, 20.0])
    wheels = [
        standin.Vector3D(*(100 * (o + a * 1.4 * fwd + s * 0.8 * right)), 30.0)
        for a, s in ((1, -1), (1, 1), (-1, -1), (-1, 1))
    ]
    wb, rear_x = convert.vehicle_geometry_from_wheels(wheels, (10.0, 20.0), 90.0)
    assert wb == pytest.approx(2.8)
    assert rear_x == pytest.approx(-1.4)
    with pytest.raises(ValueError, match="4 wheels"):
        convert.vehicle_geometry_from_wheels(wheels[:2], (0.0, 0.0), 0.0)


def test_route_signs_on_a_known_left_arc():
    # Our frame: a circle of radius 50 driven counter-clockwise = bending left.
    t = np.linspace(0, 1.0, 200)
    x, y = 50 * np.sin(t), 50 * (1 - np.cos(t))
    route = Route(x, y, np.full(t.size, 1.75), np.zeros(t.size, bool))
    inside = (route.s > 5) & (route.s < route.length_m - 5)
    assert np.allclose(route.curvature[inside], 1 / 50, rtol=1e-3)
    # A car 0.5 m inside the bend (left) pointing 0.1 rad further left than the lane.
    s0 = 20.0
    cx, cy, yaw = route.point_at(s0)
    p = route.project(cx - 0.5 * math.sin(yaw), cy + 0.5 * math.cos(yaw), yaw + 0.1, hint=50)
    assert p.lateral_offset_m == pytest.approx(0.5, abs=1e-3)
    assert p.heading_error_rad == pytest.approx(0.1, abs=1e-3)
    assert p.road_curvature == pytest.approx(0.02, rel=1e-2)
    assert p.s_m == pytest.approx(s0, abs=0.05)


def _plan(cmap, start, length_m: float, seed: int = 0) -> Route:
    request = RouteRequest(length_m, "t", seed)
    return plan_route(LaneGraph(cmap), start, request, np.random.default_rng(seed))


def test_route_branches_at_the_standin_junction(fake_carla):
    cmap = standin.Map("Town01", standin.TOWN_GEOMETRY["Town01"]())
    lane0 = cmap._lanes[0]
    start = standin.Waypoint(cmap, 0, lane0.length - 20.0)  # 20 m before the junction
    routes = [_plan(cmap, start, 80.0, seed) for seed in range(8)]
    assert len(start.next(25.0)) == 2
    assert all(r.junction.any() and len(r.junctions) == 1 for r in routes)
    end = [(r.x[-1], r.y[-1]) for r in routes]
    assert max(math.dist(end[0], e) for e in end) > 5.0  # two different ways through it


# ----------------------------------------------------------------------------------------------
# Against the real client's offline types and OpenDRIVE map (skipped when the wheel is absent)


@pytest.fixture
def real_carla():
    carla = pytest.importorskip("carla")
    if not hasattr(carla, "Map") or carla is standin:
        pytest.skip("the real carla wheel is not installed")
    return carla


def test_real_map_right_lane_and_left_arc_in_our_frame(real_carla):
    carla = real_carla
    cmap = carla.Map("t", XODR)
    wp = cmap.get_waypoint(carla.Location(x=10.0, y=1.0, z=0.0), True, carla.LaneType.Driving)
    assert wp.lane_id == -1
    # The right lane lies at CARLA y = +1.75 (y is right) = our y = -1.75 (right of the road).
    assert convert.xy_from_carla(wp.transform.location) == pytest.approx((10.0, -1.75), abs=1e-3)
    route = _plan(cmap, wp, 85.0)
    on_straight = (route.s > 5) & (route.s < 35)
    on_arc = (route.s > 48) & (route.s < 80)
    assert np.abs(route.curvature[on_straight]).max() < 1e-3
    # The right lane of a left arc of radius 50 has radius 51.75: positive (left) curvature.
    assert np.allclose(route.curvature[on_arc], 1 / 51.75, rtol=2e-2)
    # CARLA reports the left arc as negative yaw; ours is positive.
    end = route.point_at(route.length_m)
    far = cmap.get_waypoint(
        carla.Location(
            x=convert.xy_to_carla(end[0], end[1])[0],
            y=convert.xy_to_carla(end[0], end[1])[1],
            z=0.0,
        )
    )
    assert far.transform.rotation.yaw < 0 < end[2]
    assert convert.yaw_from_carla(far.transform.rotation.yaw) == pytest.approx(end[2], abs=0.02)


def test_real_lateral_offset_matches_carla_right_vector(real_carla):
    carla = real_carla
    cmap = carla.Map("t", XODR)
    start = cmap.get_waypoint(carla.Location(x=1.0, y=1.75, z=0.0))
    route = _plan(cmap, start, 95.0)
    for s in (10.0, 60.0, 75.0):
        wp = start.next(s)[0]
        right = wp.transform.get_right_vector()
        for d_right in (-0.6, 0.4):  # CARLA lateral error convention: positive = right
            loc = wp.transform.location + carla.Location(x=right.x * d_right, y=right.y * d_right)
            x, y = convert.xy_from_carla(loc)
            yaw = convert.yaw_from_carla(wp.transform.rotation.yaw)
            p = route.project(x, y, yaw + 0.05, hint=int(s) - 2)
            assert p.lateral_offset_m == pytest.approx(-d_right, abs=0.03)
            assert p.heading_error_rad == pytest.approx(0.05, abs=0.02)


def test_standin_value_types_agree_with_the_real_wheel(real_carla):
    carla = real_carla
    for pitch, yaw in ((0.0, 0.0), (0.0, 90.0), (10.0, 30.0), (-15.0, -120.0)):
        for name in ("get_forward_vector", "get_right_vector"):
            if name == "get_right_vector" and pitch:
                continue  # the stand-in's right vector assumes no pitch/roll
            a = getattr(carla.Rotation(pitch=pitch, yaw=yaw), name)()
            b = getattr(standin.Rotation(pitch=pitch, yaw=yaw), name)()
            assert (a.x, a.y, a.z) == pytest.approx((b.x, b.y, b.z), abs=1e-6), (name, pitch, yaw)
    assert type(carla.Location(1, 2, 3) - carla.Location()).__name__ == "Vector3D"
    assert type(standin.Location(1, 2, 3) - standin.Location()).__name__ == "Vector3D"
    assert carla.VehicleControl(steer=0.1).steer == standin.VehicleControl(steer=0.1).steer
    assert carla.VehicleControl(steer=2.0).steer == standin.VehicleControl(steer=2.0).steer == 2.0
    real, fake = carla.WorldSettings(), standin.WorldSettings()
    assert (real.synchronous_mode, real.fixed_delta_seconds) == (fake.synchronous_mode, None)
    for name in (
        "ClearNoon",
        "WetNoon",
        "HardRainNoon",
        "ClearSunset",
        "WetSunset",
        "SoftRainSunset",
    ):
        assert hasattr(carla.WeatherParameters, name) and hasattr(standin.WeatherParameters, name)
    assert hasattr(carla.command, "DestroyActor")
    assert carla.Client("127.0.0.1", 1).get_client_version() == standin.CLIENT_VERSION


def test_bend_speed_limit_looks_ahead():
    # 30 m straight, then a 90 degree turn of radius 10 m (a CARLA junction turn).
    s = np.arange(0.0, 30.0, 0.5)
    a = np.linspace(0.0, math.pi / 2, 40)
    x = np.concatenate([s, 30.0 + 10 * np.sin(a[1:])])
    y = np.concatenate([np.zeros_like(s), 10 * (1 - np.cos(a[1:]))])
    route = Route(x, y, np.full(x.size, 1.75), np.zeros(x.size, bool))
    assert route.bend_speed_limit(0.0, 10.0, 3.0) == math.inf
    assert route.bend_speed_limit(0.0, 40.0, 3.0) == pytest.approx(math.sqrt(30.0), rel=0.05)


def test_steering_curve_factor_in_km_per_h():
    curve = [standin.Vector2D(0.0, 1.0), standin.Vector2D(20.0, 0.9), standin.Vector2D(60.0, 0.8)]
    assert convert.steering_curve_factor(curve, 0.0) == 1.0
    assert convert.steering_curve_factor(curve, 40.0 / 3.6) == pytest.approx(0.85)
    assert convert.steering_curve_factor(curve, 100.0) == pytest.approx(0.8)  # held flat
    assert convert.steering_curve_factor([], 10.0) == 1.0
    wb, lock = 2.875, math.radians(70.0)
    s_full = convert.steer_from_curvature(0.05, wb, lock)
    s_fast = convert.steer_from_curvature(0.05, wb, lock, steer_factor=0.8)
    assert s_fast == pytest.approx(s_full / 0.8)  # less lock at speed: more steer for the same arc
    assert convert.curvature_from_steer(s_fast, wb, lock, 0.8) == pytest.approx(0.05)

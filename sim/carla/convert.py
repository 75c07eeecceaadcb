"""Every conversion between CARLA's conventions and ours, in one place.

CARLA (Unreal Engine) is left-handed: x forward, **y right**, z up, angles in degrees, yaw
positive turning from +x towards +y (clockwise seen from above), steer positive = right.
Ours (``sim/spec.py``, ISO 8855) is right-handed: x forward, **y left**, z up, angles in
radians, yaw counter-clockwise positive, curvature positive = turning left. The mapping is
a mirror of the y axis: ``(x, y) -> (x, -y)`` and ``yaw -> -yaw``.

Functions here take plain floats (or anything with ``.x/.y/.z`` attributes for vectors) so
that they work with the real ``carla`` value types and with the test stand-in alike, and
none of them imports ``carla``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sim.carla.connection import CarlaDataError


def wrap_angle(angle_rad: float) -> float:
    """Wraps an angle to ``(-pi, pi]``."""
    a = math.remainder(angle_rad, 2.0 * math.pi)
    return math.pi if a == -math.pi else a


def xy_from_carla(location: Any) -> tuple[float, float]:
    """A CARLA location (or vector), metres, to our world-frame ``(x, y)``, metres."""
    return float(location.x), -float(location.y)


def xy_to_carla(x_m: float, y_m: float) -> tuple[float, float]:
    """Our world-frame ``(x, y)`` to CARLA's ``(x, y)``, metres (the mirror is its own inverse)."""
    return float(x_m), -float(y_m)


def yaw_from_carla(yaw_deg: float) -> float:
    """A CARLA yaw in degrees (clockwise from above) to ours in radians, wrapped."""
    return wrap_angle(-math.radians(yaw_deg))


def yaw_to_carla(yaw_rad: float) -> float:
    """Our yaw in radians to a CARLA yaw in degrees, in ``(-180, 180]``."""
    return math.degrees(wrap_angle(-yaw_rad))


def steer_from_curvature(
    kappa_per_m: float, wheelbase_m: float, max_steer_rad: float, steer_factor: float = 1.0
) -> float:
    """Path curvature (1/m, positive = left) to CARLA's normalised steer in ``[-1, 1]``.

    Kinematic bicycle: road-wheel angle ``delta = atan(wheelbase * kappa)``. CARLA maps steer
    ``+1`` to the front wheels' ``max_steer_angle`` to the right, scaled down at speed by the
    vehicle's ``steering_curve`` (:func:`steering_curve_factor`), so
    ``steer = -delta / (max_steer * factor)``, clamped (CARLA does not validate the range
    client-side). Tyre slip makes the executed curvature at speed slightly smaller than the
    kinematic one.

    Args:
        kappa_per_m: Curvature in 1/m, positive = turning left.
        wheelbase_m: Distance between the axles, m.
        max_steer_rad: Road-wheel angle at full lock (the front wheels' max steer angle), rad.
        steer_factor: The steering curve's factor at the current speed (1 = full lock).

    Returns:
        The steer value for ``carla.VehicleControl``, positive = right.
    """
    delta = math.atan(wheelbase_m * kappa_per_m)
    return min(max(-delta / (max_steer_rad * steer_factor), -1.0), 1.0)


def curvature_from_steer(
    steer: float, wheelbase_m: float, max_steer_rad: float, steer_factor: float = 1.0
) -> float:
    """Inverse of :func:`steer_from_curvature` (steer clamped to ``[-1, 1]`` first), 1/m."""
    s = min(max(float(steer), -1.0), 1.0)
    return math.tan(-s * max_steer_rad * steer_factor) / wheelbase_m


def steering_curve_factor(curve: Sequence[Any], speed_mps: float) -> float:
    """Fraction of full lock available at a speed (``VehiclePhysicsControl.steering_curve``).

    The curve's points are ``(forward speed in km/h, factor)`` (Unreal Engine 4's vehicle
    ``SteeringCurve``: "maximum steering versus forward speed (km/h)"), linearly
    interpolated and held flat beyond its ends. An empty curve means no reduction.

    Returns:
        The factor, clamped to ``[0.05, 1]``.
    """
    if len(curve) == 0:
        return 1.0
    pts = sorted((float(p.x), float(p.y)) for p in curve)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(max(float(np.interp(speed_mps * 3.6, xs, ys)), 0.05), 1.0)


def max_curvature(wheelbase_m: float, max_steer_rad: float) -> float:
    """The kinematic curvature limit at full lock, 1/m."""
    return math.tan(max_steer_rad) / wheelbase_m


def bgra_to_rgb(raw_data: Any, height_px: int, width_px: int) -> np.ndarray:
    """A camera image's ``raw_data`` (BGRA, 8 bit, row-major) to a uint8 (H, W, 3) RGB array.

    The result is a copy: the buffer belongs to the CARLA image.

    Raises:
        CarlaDataError: If the buffer does not hold ``height * width * 4`` bytes (a
            ``ValueError``).
    """
    buf = np.frombuffer(raw_data, dtype=np.uint8)
    expected = height_px * width_px * 4
    if buf.size != expected:
        raise CarlaDataError(
            f"camera image has {buf.size} bytes, expected {height_px}x{width_px}x4 = {expected}"
        )
    return np.ascontiguousarray(buf.reshape(height_px, width_px, 4)[:, :, 2::-1])


def vehicle_geometry_from_wheels(
    wheel_positions_cm: Sequence[Any], origin_xy_m: tuple[float, float], yaw_deg: float
) -> tuple[float, float]:
    """Wheelbase and rear-axle position of a CARLA vehicle from its wheel positions.

    ``WheelPhysicsControl.position`` is a world position in **centimetres** (carla #2153,
    #3221), wheels ordered front-left, front-right, rear-left, rear-right.

    Args:
        wheel_positions_cm: The four wheel positions, CARLA world frame, cm.
        origin_xy_m: The actor's CARLA location ``(x, y)``, m.
        yaw_deg: The actor's CARLA yaw, degrees.

    Returns:
        ``(wheelbase_m, rear_axle_x_m)``: the axle distance and the rear axle's position along
        the vehicle's forward axis relative to the actor origin (negative = behind it).

    Raises:
        CarlaDataError: If there are not four wheels (a ``ValueError``).
    """
    if len(wheel_positions_cm) != 4:
        raise CarlaDataError(f"expected 4 wheels, got {len(wheel_positions_cm)}")
    pts = np.array([[float(p.x), float(p.y)] for p in wheel_positions_cm]) / 100.0
    front, rear = pts[:2].mean(axis=0), pts[2:].mean(axis=0)
    fwd = np.array([math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))])
    wheelbase = float(np.linalg.norm(front - rear))
    rear_x = float((rear - np.asarray(origin_xy_m, dtype=np.float64)) @ fwd)
    return wheelbase, rear_x

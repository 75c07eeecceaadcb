"""Spawning an episode's actors: the ego car at a free spawn point, its geometry, its sensors.

Every actor is spawned through :meth:`sim.carla.session.ServerSession.spawn`, which tracks it
from the moment the server returns it, so cleanup always sees it. Sensors are spawned before
they listen for the same reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.carla.connection import CarlaSpawnError, is_spawn_collision
from sim.carla.convert import (
    max_curvature,
    vehicle_geometry_from_wheels,
    xy_from_carla,
    xy_to_carla,
    yaw_from_carla,
    yaw_to_carla,
)
from sim.carla.planner import RoutePlanError
from sim.carla.route import Route
from sim.carla.sensors import EventBuffer, FrameQueue, camera_blueprint, camera_transform
from sim.carla.session import ServerSession
from sim.spec import CameraSpec

logger = logging.getLogger(__name__)

DEFAULT_MAX_STEER_RAD = math.radians(70.0)
"""Road-wheel lock assumed when the vehicle reports none, rad."""


@dataclass(frozen=True)
class VehicleGeometry:
    """What steering needs to know about the ego car (read once per episode)."""

    wheelbase_m: float
    """Distance between the axles, m."""
    rear_axle_x_m: float
    """Rear axle along the car's forward axis relative to the actor origin, m (< 0: behind)."""
    max_steer_rad: float
    """Road-wheel angle at full lock, rad."""
    steering_curve: tuple[Any, ...]
    """``VehiclePhysicsControl.steering_curve`` points (km/h, fraction of full lock)."""
    max_curvature_per_m: float
    """The action limit: the configured one, or the car's full-lock curvature if smaller, 1/m."""

    @classmethod
    def fallback(cls, wheelbase_m: float, max_curvature_per_m: float) -> VehicleGeometry:
        """The geometry assumed before the first episode."""
        return cls(wheelbase_m, 0.0, DEFAULT_MAX_STEER_RAD, (), max_curvature_per_m)


def spawn_vehicle(
    session: ServerSession,
    rng: np.random.Generator,
    offset_m: float,
    heading_rad: float,
    plan: Callable[[Any], Route],
) -> tuple[Any, Route]:
    """Spawns the ego car at a shuffled free spawn point a route can be planned from.

    Spawn points are tried in a random order; one whose waypoint has no route of the
    requested length (``plan`` raises :class:`RoutePlanError`: a dead end, a lane cut off
    from the network) or that is occupied is skipped.

    Args:
        session: The server session (tracks the car).
        rng: Shuffles the spawn points.
        offset_m: Lateral offset from the lane centre, m, positive = left.
        heading_rad: Heading relative to the lane, rad, positive = left.
        plan: ``plan(start_waypoint) -> route`` (reproducible for a waypoint).

    Returns:
        ``(vehicle, route)``.

    Raises:
        CarlaSpawnError: If the map has no spawn points or none of those tried is free.
        RoutePlanError: If no route could be planned from any spawn point tried, with the
            first one's reason.
    """
    cfg, carla, cmap = session.config, session.carla, session.map
    bp = session.blueprints.find(cfg.vehicle_blueprint)
    bp.set_attribute("role_name", cfg.role_name)
    points = cmap.get_spawn_points()
    if not points:
        raise CarlaSpawnError(f"map {cfg.town} has no spawn points")
    unplannable: list[RoutePlanError] = []
    tried = rng.permutation(len(points))[: cfg.max_spawn_attempts]
    for i in tried:
        point = points[int(i)]
        wp = cmap.get_waypoint(
            point.location, project_to_road=True, lane_type=carla.LaneType.Driving
        )
        if wp is None:
            continue
        try:
            route = plan(wp)
        except RoutePlanError as err:
            unplannable.append(err)
            logger.info("spawn point %d: %s", int(i), err)
            continue
        x, y = xy_from_carla(wp.transform.location)
        lane_yaw = yaw_from_carla(wp.transform.rotation.yaw)
        x, y = x - offset_m * math.sin(lane_yaw), y + offset_m * math.cos(lane_yaw)
        cx, cy = xy_to_carla(x, y)
        transform = carla.Transform(
            carla.Location(x=cx, y=cy, z=point.location.z),
            carla.Rotation(pitch=0.0, yaw=yaw_to_carla(lane_yaw + heading_rad), roll=0.0),
        )
        try:
            vehicle = session.spawn(bp, transform)
        except RuntimeError as err:
            if not is_spawn_collision(err):
                raise
            logger.info("spawn point %d occupied, trying another", int(i))
            continue
        return vehicle, route
    if len(unplannable) == len(tried):
        raise RoutePlanError(
            f"none of the {len(tried)} spawn points tried in {cfg.town} has a route of "
            f"{cfg.route_length_m:g} m; the first: {unplannable[0]}"
        )
    raise CarlaSpawnError(
        f"no free spawn point in {cfg.town} after {cfg.max_spawn_attempts} attempts "
        "(actors left by another client? restart the server or reload the world)"
    )


def read_vehicle_geometry(
    vehicle: Any, fallback_wheelbase_m: float, max_curvature_per_m: float
) -> VehicleGeometry:
    """The car's wheelbase, rear axle, lock and steering curve from its physics control.

    Wheel positions are valid only once the vehicle has been ticked. An implausible
    wheelbase (outside 1-6 m) is replaced by ``fallback_wheelbase_m``, with a warning.
    """
    physics = vehicle.get_physics_control()
    wheels = list(physics.wheels)
    tf = vehicle.get_transform()
    try:
        wheelbase, rear_x = vehicle_geometry_from_wheels(
            [w.position for w in wheels], (tf.location.x, tf.location.y), tf.rotation.yaw
        )
    except ValueError as err:
        wheelbase, rear_x = 0.0, 0.0
        logger.warning("vehicle geometry: %s", err)
    if not 1.0 <= wheelbase <= 6.0:
        logger.warning(
            "implausible wheelbase %.2f m from wheel positions; using %.2f m",
            wheelbase,
            fallback_wheelbase_m,
        )
        wheelbase, rear_x = fallback_wheelbase_m, -fallback_wheelbase_m / 2
    steer_deg = max((float(w.max_steer_angle) for w in wheels[:2]), default=70.0)
    max_steer = math.radians(steer_deg) if steer_deg > 0 else DEFAULT_MAX_STEER_RAD
    return VehicleGeometry(
        wheelbase_m=wheelbase,
        rear_axle_x_m=rear_x,
        max_steer_rad=max_steer,
        steering_curve=tuple(getattr(physics, "steering_curve", [])),
        max_curvature_per_m=min(max_curvature_per_m, max_curvature(wheelbase, max_steer)),
    )


def _spawn_sensor(session: ServerSession, bp: Any, transform: Any, vehicle: Any, callback: Any):
    bp.set_attribute("role_name", session.config.role_name)
    sensor = session.spawn(bp, transform, attach_to=vehicle)  # tracked before it listens
    sensor.listen(callback)
    return sensor


def spawn_camera(
    session: ServerSession, vehicle: Any, camera: CameraSpec, rear_axle_x_m: float
) -> FrameQueue:
    """Attaches the forward RGB camera of the spec; returns the queue its images arrive in."""
    frames = FrameQueue("camera")
    _spawn_sensor(
        session,
        camera_blueprint(session.blueprints, camera),
        camera_transform(session.carla, camera, rear_axle_x_m),
        vehicle,
        frames.put,
    )
    return frames


def spawn_event_sensors(session: ServerSession, vehicle: Any) -> tuple[EventBuffer, EventBuffer]:
    """Attaches the collision and lane-invasion sensors; returns their event buffers."""
    collisions, invasions = EventBuffer(), EventBuffer()
    identity = session.carla.Transform()
    for blueprint, buffer in (
        ("sensor.other.collision", collisions),
        ("sensor.other.lane_invasion", invasions),
    ):
        _spawn_sensor(session, session.blueprints.find(blueprint), identity, vehicle, buffer.put)
    return collisions, invasions

"""The CARLA backend: the ``sim/spec.py`` contract over a CARLA 0.9.16 server.

One environment owns one client connection. On construction it connects (a clear
:class:`CarlaConnectionError` if nothing answers), loads the town, remembers the world's
settings, and switches the world and the Traffic Manager to synchronous mode with
``fixed_delta_seconds = 1 / control_rate_hz``: the server then advances only when this
environment calls ``world.tick()``, exactly once per :meth:`step`.

Each :meth:`reset` destroys the previous episode's actors, sets the weather, spawns the ego
vehicle at a random free spawn point (retrying on CARLA's spawn-collision error), lets it
settle onto the road with the brake on, attaches an RGB camera from the camera spec and
collision and lane-invasion sensors, plans a route along lane-centre waypoints with
random turns at junctions (see :mod:`sim.carla.route`) and sets the car going at the
episode's target speed. Each :meth:`step` converts the
curvature to CARLA's steer (:mod:`sim.carla.convert`), holds the target speed with a PI
cruise controller, ticks, takes the camera image of exactly that frame (older, late images
are discarded), drains the event sensors without waiting, and measures the privileged
``info`` against the route.

Cleanup (:meth:`close`, also run when any exception, ``KeyboardInterrupt`` included, escapes
``reset``/``step``, at interpreter exit, and on SIGTERM): sensors stopped, the original world
settings restored (synchronous mode off), Traffic Manager synchronous mode off, then every
actor of ours destroyed in one batch. A server left in synchronous mode would freeze waiting
for a tick that never comes.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import logging
import math
import signal
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from liquid_drive.errors import LiquidDriveError
from sim import spec
from sim.carla.connection import (
    CarlaConnectionError,
    connect,
    import_carla,
    is_spawn_collision,
    is_timeout_error,
)
from sim.carla.convert import (
    bgra_to_rgb,
    curvature_from_steer,
    max_curvature,
    steer_from_curvature,
    steering_curve_factor,
    vehicle_geometry_from_wheels,
    xy_from_carla,
    xy_to_carla,
    yaw_from_carla,
    yaw_to_carla,
)
from sim.carla.route import Projection, Route, plan_route
from sim.carla.sensors import EventBuffer, FrameQueue, camera_blueprint, camera_transform
from sim.carla.suites import WEATHERS

logger = logging.getLogger(__name__)


class CarlaSpawnError(LiquidDriveError, RuntimeError):
    """No free spawn point was found for the ego vehicle."""


class CarlaServerBusyError(LiquidDriveError, RuntimeError):
    """Another environment of this process still drives the same server."""


_OPEN_ENVS: dict[tuple[str, int], weakref.ReferenceType[CarlaDrivingEnv]] = {}
"""The open environment per server: only one client may tick a synchronous server."""


@dataclass(frozen=True)
class CarlaEnvConfig:
    """Configuration of :class:`CarlaDrivingEnv`; every field has a unit where one applies."""

    host: str = "127.0.0.1"
    """CARLA server host."""
    port: int = 2000
    """CARLA server RPC port (streaming uses ``port + 1``)."""
    timeout_s: float = 10.0
    """How long any server call (connect, tick, spawn) may wait before failing, s."""
    load_timeout_s: float = 60.0
    """Client timeout while loading a town (loading takes longer than a tick), s."""
    tm_port: int = 8000
    """Traffic Manager port; distinct per server when several run on one machine."""
    town: str = "Town01"
    """CARLA map name, e.g. ``Town01``, ``Town02``, ``Town10HD``."""
    weather: str = "ClearNoon"
    """A ``carla.WeatherParameters`` preset name (see ``sim.carla.suites.WEATHERS``)."""
    camera: spec.CameraSpec = field(default_factory=spec.CameraSpec)
    """The forward RGB camera (same spec as the builtin simulator)."""
    control_rate_hz: float = spec.CONTROL_RATE_HZ
    """Steps per simulated second; CARLA's ``fixed_delta_seconds`` is its inverse (>= 10 Hz)."""
    target_speed_mps: float | None = None
    """Cruise speed, m/s; None = drawn per episode from ``target_speed_range_mps``."""
    target_speed_range_mps: tuple[float, float] = (5.0, 8.0)
    """Range of the per-episode cruise speed when ``target_speed_mps`` is None, m/s."""
    route_length_m: float = 300.0
    """Route length; the episode is truncated when the car has progressed this far, m."""
    max_time_s: float | None = None
    """Simulated time limit (truncation), s; None = twice the route's duration at the
    target speed plus 10 s (as builtin)."""
    intervention_mode: bool = False
    """Count a lane departure as an intervention and put the car back (instead of ending)."""
    departure_margin_m: float = 0.25
    """Departure = ``|lateral offset| > lane half width + this margin``, m (as builtin)."""
    max_lateral_accel_mps2: float = 3.0
    """The cruise controller slows below the target speed where the route ahead bends so
    tightly (CARLA's junction turns: radius ~10 m) that the target speed would exceed this
    lateral acceleration, m/s^2."""
    max_curvature_per_m: float = 0.25
    """Action limit, 1/m (also clipped to the vehicle's own full-lock curvature)."""
    vehicle_blueprint: str = "vehicle.tesla.model3"
    """Blueprint id of the ego vehicle."""
    role_name: str = "liquid_drive"
    """``role_name`` of every actor we spawn; leftovers with it are destroyed on connect."""
    settle_time_s: float = 1.0
    """Time the new car spends braking while it drops onto the road before the episode, s."""
    sensor_timeout_s: float = 5.0
    """How long to wait for the camera image of a ticked frame, s."""
    collision_min_impulse_ns: float = 0.0
    """Collisions with a smaller normal impulse are ignored, N*s (0 = every collision)."""
    destroy_leftovers: bool = True
    """Destroy actors with our ``role_name`` left by a crashed earlier run, on connect."""
    fallback_wheelbase_m: float = 2.9
    """Wheelbase used if the vehicle's wheel positions are unusable, m."""
    max_spawn_attempts: int = 20
    """Spawn points tried (shuffled) before giving up."""
    image_noise_std: float = 0.0
    """Std of Gaussian noise added to the image, on [0, 1] images (the noise suite)."""
    frame_time_jitter: float = 0.0
    """Accepted for the builtin's interface; must be 0 (CARLA steps a fixed delta)."""

    def __post_init__(self) -> None:
        if not isinstance(self.camera, spec.CameraSpec):
            raise ValueError(f"camera must be a sim.spec.CameraSpec, got {self.camera!r}")
        if not 0 < self.port < 65536 or not 0 < self.tm_port < 65536:
            raise ValueError(
                f"ports must be in 1..65535, got port={self.port}, tm_port={self.tm_port}"
            )
        if self.timeout_s <= 0 or self.load_timeout_s <= 0 or self.sensor_timeout_s <= 0:
            raise ValueError(
                "timeouts must be positive, got "
                f"timeout_s={self.timeout_s}, load_timeout_s={self.load_timeout_s}, "
                f"sensor_timeout_s={self.sensor_timeout_s}"
            )
        if not 10.0 <= self.control_rate_hz <= 1000.0:
            raise ValueError(
                f"control_rate_hz must be in [10, 1000] (CARLA: fixed delta <= 0.1 s), "
                f"got {self.control_rate_hz}"
            )
        if self.weather not in WEATHERS and not self.weather.endswith(("Night", "DustStorm")):
            raise ValueError(f"unknown CARLA weather {self.weather!r}; presets: {WEATHERS}")
        lo, hi = self.target_speed_range_mps
        if not 0 < lo <= hi:
            raise ValueError(
                f"target_speed_range_mps must be 0 < lo <= hi, got {self.target_speed_range_mps}"
            )
        if self.target_speed_mps is not None and self.target_speed_mps <= 0:
            raise ValueError(f"target_speed_mps must be positive, got {self.target_speed_mps}")
        if self.route_length_m <= 0 or (self.max_time_s is not None and self.max_time_s <= 0):
            raise ValueError(
                "route_length_m and max_time_s must be positive, got "
                f"{self.route_length_m}, {self.max_time_s}"
            )
        if self.max_lateral_accel_mps2 <= 0:
            raise ValueError(
                f"max_lateral_accel_mps2 must be positive, got {self.max_lateral_accel_mps2}"
            )
        if self.departure_margin_m < 0 or self.max_curvature_per_m <= 0:
            raise ValueError(
                f"need departure_margin_m >= 0 and max_curvature_per_m > 0, got "
                f"{self.departure_margin_m}, {self.max_curvature_per_m}"
            )
        if not 0.0 <= self.image_noise_std <= 1.0:
            raise ValueError(f"image_noise_std must be in [0, 1], got {self.image_noise_std}")
        if self.frame_time_jitter != 0.0:
            raise ValueError(
                f"frame_time_jitter={self.frame_time_jitter}: the CARLA backend steps a fixed "
                "delta (fixed_delta_seconds); use control_rate_hz for rate changes"
            )
        if self.settle_time_s < 0 or self.max_spawn_attempts < 1:
            raise ValueError(
                f"need settle_time_s >= 0 and max_spawn_attempts >= 1, got "
                f"{self.settle_time_s}, {self.max_spawn_attempts}"
            )

    @property
    def dt_s(self) -> float:
        """CARLA's ``fixed_delta_seconds``, s."""
        return 1.0 / self.control_rate_hz


@dataclass(frozen=True)
class VehicleState:
    """The ego vehicle measured after a tick, in our frame (rear axle reference)."""

    x_m: float
    y_m: float
    yaw_rad: float
    speed_mps: float
    """Forward speed (velocity along the heading), m/s, clipped at 0."""
    projection: Projection
    """The pose projected onto the episode's route."""


# Cruise controller gains (throttle per m/s of error, per m of integrated error), braking.
_KP_THROTTLE = 0.35
_KI_THROTTLE = 0.05
_MAX_THROTTLE = 0.8
_KP_BRAKE = 0.3
_BRAKE_DEADBAND_MPS = 0.5
_ROUTE_LOOKAHEAD_M = 30.0
"""Route planned beyond ``route_length_m`` so the expert always has a target ahead, m."""


def _close_weak(ref: weakref.ReferenceType[CarlaDrivingEnv]) -> None:
    env = ref()
    if env is not None:
        env.close()


class CarlaDrivingEnv(gym.Env):
    """The driving contract of ``sim/spec.py`` on a CARLA server (see the module docstring).

    Args:
        config: The configuration; default :class:`CarlaEnvConfig`.
        render_mode: None or ``"rgb_array"`` (the last camera image).
        **overrides: Fields of the config to replace.

    Raises:
        CarlaNotInstalledError: If the ``carla`` client is not installed.
        CarlaConnectionError: If no server answers within ``timeout_s``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": spec.CONTROL_RATE_HZ}  # noqa: RUF012

    def __init__(
        self, config: CarlaEnvConfig | None = None, render_mode: str | None = None, **overrides: Any
    ) -> None:
        cfg = config or CarlaEnvConfig()
        if overrides:
            names = {f.name for f in dataclasses.fields(CarlaEnvConfig)}
            unknown = sorted(set(overrides) - names)
            if unknown:
                raise ValueError(
                    f"unknown CARLA env option(s) {unknown}; valid: {', '.join(sorted(names))}"
                )
            cfg = dataclasses.replace(cfg, **overrides)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = cfg
        self.render_mode = render_mode
        self.observation_space = spec.observation_space(cfg.camera)
        self.action_space = spec.action_space(cfg.max_curvature_per_m)
        self._carla = import_carla()

        self._client: Any = None
        self._world: Any = None
        self._map: Any = None
        self._tm: Any = None
        self._original_settings: Any = None
        self._sync_applied = False
        self._tm_sync_applied = False
        self._closed = False
        self._vehicle: Any = None
        self._sensors: list[Any] = []
        self._camera_q: FrameQueue | None = None
        self._collisions: EventBuffer | None = None
        self._invasions: EventBuffer | None = None
        self._route: Route | None = None
        self._state: VehicleState | None = None
        self._last_image: np.ndarray | None = None
        self._wheelbase_m = cfg.fallback_wheelbase_m
        self._rear_axle_x_m = 0.0
        self._max_steer_rad = math.radians(70.0)
        self._steering_curve: list[Any] = []
        self._max_kappa = cfg.max_curvature_per_m
        self._target_speed = 0.0
        self._speed_integral = 0.0
        self._t0 = 0.0
        self._t_s = 0.0
        self._start_s = 0.0
        self._route_length = cfg.route_length_m
        self._max_time_s = 0.0
        self._episode_done = True

        self._key = (cfg.host, cfg.port)
        other = _OPEN_ENVS.get(self._key)
        if other is not None and other() is not None and not other()._closed:
            self._closed = True
            raise CarlaServerBusyError(
                f"another CARLA environment is still open on {cfg.host}:{cfg.port}; close it "
                "first (only one client may tick a synchronous server)"
            )
        _OPEN_ENVS[self._key] = weakref.ref(self)
        self._atexit = functools.partial(_close_weak, weakref.ref(self))
        atexit.register(self._atexit)
        self._previous_sigterm: Any = None
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        ):
            self._previous_sigterm = signal.SIG_DFL
            signal.signal(signal.SIGTERM, _sigterm_to_exit)
        try:
            self._connect()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------
    # Connection and cleanup

    def _connect(self) -> None:
        cfg, carla = self.config, self._carla
        self._client, server_version = connect(carla, cfg.host, cfg.port, cfg.timeout_s)
        logger.info("connected to CARLA %s at %s:%d", server_version, cfg.host, cfg.port)
        world = self._client.get_world()
        self._original_settings = world.get_settings()
        current_map = world.get_map()  # fetches and parses the OpenDRIVE: once per world
        if current_map.name.rsplit("/", 1)[-1] != cfg.town:
            logger.info("loading %s", cfg.town)
            self._client.set_timeout(cfg.load_timeout_s)
            try:
                world = self._client.load_world(cfg.town)
                current_map = world.get_map()
            finally:
                self._client.set_timeout(cfg.timeout_s)
        self._world, self._map = world, current_map
        if cfg.destroy_leftovers:
            leftovers = [
                a for a in world.get_actors() if a.attributes.get("role_name") == cfg.role_name
            ]
            if leftovers:
                logger.warning("destroying %d actors left by an earlier run", len(leftovers))
                self._client.apply_batch_sync([carla.command.DestroyActor(a.id) for a in leftovers])
        settings = world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = cfg.dt_s
        self._sync_applied = True
        world.apply_settings(settings)
        self._tm = self._client.get_trafficmanager(cfg.tm_port)
        self._tm_sync_applied = True
        self._tm.set_synchronous_mode(True)
        self._blueprints = world.get_blueprint_library()

    def close(self) -> None:
        """Stops sensors, restores the server's settings and destroys our actors (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._episode_done = True
        try:
            self._destroy_episode_actors(restore_first=True)
        finally:
            atexit.unregister(self._atexit)
            mine = _OPEN_ENVS.get(self._key)
            if mine is not None and mine() is self:
                del _OPEN_ENVS[self._key]
            if (
                self._previous_sigterm is not None
                and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is _sigterm_to_exit
            ):  # restore only if nobody replaced our handler since
                signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def _destroy_episode_actors(self, restore_first: bool = False) -> None:
        """Stops sensors, optionally restores settings, then batch-destroys our actors."""

        def attempt(what: str, fn: Any) -> None:  # each step runs even if another failed
            try:
                fn()
            except Exception as err:
                logger.error("cleanup: %s failed: %s", what, err)

        for sensor in self._sensors:
            attempt(f"stopping sensor {getattr(sensor, 'id', '?')}", sensor.stop)
        if restore_first:
            if self._sync_applied:
                attempt("restoring world settings", self._restore_settings)
            if self._tm_sync_applied:
                attempt(
                    "turning Traffic Manager sync off", lambda: self._tm.set_synchronous_mode(False)
                )
        actors = [*self._sensors, *([self._vehicle] if self._vehicle is not None else [])]
        if actors:
            command = self._carla.command
            attempt(
                "destroying actors",
                lambda: self._client.apply_batch_sync([command.DestroyActor(a.id) for a in actors]),
            )
        self._sensors = []
        self._vehicle = None
        self._camera_q = self._collisions = self._invasions = None

    def _restore_settings(self) -> None:
        original = self._original_settings
        if original.synchronous_mode:
            logger.warning(
                "the server was in synchronous mode before we connected (a crashed client?); "
                "leaving it asynchronous so it does not freeze"
            )
            original.synchronous_mode = False
        self._world.apply_settings(original)
        self._sync_applied = False

    # ------------------------------------------------------------------------------------------
    # Episode

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Starts an episode at a random free spawn point.

        Args:
            seed: Seeds the spawn point, route choices at junctions, target speed and the
                Traffic Manager. CARLA's physics is not bit-for-bit reproducible, so unlike
                the builtin simulator the same seed gives the same start and route but not
                identical frames.
            options: ``start_offset_m`` (lateral, m, positive = left of the lane centre) and
                ``start_heading_rad`` (relative to the lane, positive = left).
        """
        super().reset(seed=seed)
        if self._closed:
            raise RuntimeError("this CARLA environment is closed; create a new one")
        options = dict(options or {})
        unknown = set(options) - {"start_offset_m", "start_heading_rad"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}")
        try:
            return self._reset(seed, options)
        except BaseException as err:
            self.close()
            if is_timeout_error(err):
                raise self._lost(err) from err
            raise

    def _reset(
        self, seed: int | None, options: dict[str, Any]
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        cfg, carla, rng = self.config, self._carla, self.np_random
        self._destroy_episode_actors()
        self._world.set_weather(getattr(carla.WeatherParameters, cfg.weather))
        if seed is not None:
            self._tm.set_random_device_seed(int(seed))
        lo, hi = cfg.target_speed_range_mps
        self._target_speed = cfg.target_speed_mps or float(rng.uniform(lo, hi))
        self._max_time_s = (
            cfg.max_time_s
            if cfg.max_time_s is not None
            else 2.0 * cfg.route_length_m / self._target_speed + 10.0
        )
        self._speed_integral = 0.0

        start_wp = self._spawn_vehicle(
            rng,
            float(options.get("start_offset_m", 0.0)),
            float(options.get("start_heading_rad", 0.0)),
        )
        # The car drops onto the road with the brake on. Wheel positions are only valid once
        # the vehicle has been ticked; the camera listens from then on so that its exposure
        # has adapted when the episode starts (the images of these ticks are discarded by the
        # frame matcher); the event sensors come last so the landing is not a collision.
        settle_ticks = max(round(cfg.settle_time_s * cfg.control_rate_hz), 1)
        self._brake_tick()
        self._read_vehicle_geometry()
        self._spawn_camera()
        for _ in range(settle_ticks - 1):
            self._brake_tick()
        self._spawn_event_sensors()
        self._route = plan_route(
            start_wp, cfg.route_length_m + _ROUTE_LOOKAHEAD_M, lambda n: int(rng.integers(n))
        )
        self._route_length = cfg.route_length_m
        if self._route.length_m - _ROUTE_LOOKAHEAD_M < cfg.route_length_m - 1.0:
            self._route_length = max(self._route.length_m - _ROUTE_LOOKAHEAD_M, 1.0)
            logger.warning(
                "route dead-ends: %.0f m instead of %.0f m", self._route_length, cfg.route_length_m
            )
        self._state = None
        # Like the builtin simulator, the episode starts at the target speed.
        forward = self._vehicle.get_transform().get_forward_vector()
        v = self._target_speed
        self._vehicle.set_target_velocity(carla.Vector3D(x=forward.x * v, y=forward.y * v, z=0.0))
        self._vehicle.apply_control(carla.VehicleControl(throttle=0.0, steer=0.0, brake=0.0))
        frame = self._world.tick(cfg.timeout_s)
        image = self._camera_q.get(frame, cfg.sensor_timeout_s)
        self._t0 = float(image.timestamp)
        self._collisions.drain()
        self._invasions.drain()
        self._state = self._measure()
        self._start_s = self._state.projection.s_m
        self._episode_done = False
        obs = self._observation(image)
        info = self._info(0.0, collision=False, intervention=False, invasions=[])
        return obs, info

    def _spawn_vehicle(self, rng: np.random.Generator, offset_m: float, heading_rad: float) -> Any:
        """Spawns the ego car at a shuffled free spawn point; returns the start waypoint."""
        cfg, carla = self.config, self._carla
        bp = self._blueprints.find(cfg.vehicle_blueprint)
        bp.set_attribute("role_name", cfg.role_name)
        points = self._map.get_spawn_points()
        if not points:
            raise CarlaSpawnError(f"map {cfg.town} has no spawn points")
        for i in rng.permutation(len(points))[: cfg.max_spawn_attempts]:
            point = points[int(i)]
            wp = self._map.get_waypoint(
                point.location, project_to_road=True, lane_type=carla.LaneType.Driving
            )
            if wp is None:
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
                self._vehicle = self._world.spawn_actor(bp, transform)
            except RuntimeError as err:
                if not is_spawn_collision(err):
                    raise
                logger.info("spawn point %d occupied, trying another", int(i))
                continue
            return wp
        raise CarlaSpawnError(
            f"no free spawn point in {cfg.town} after {cfg.max_spawn_attempts} attempts "
            "(actors left by another client? restart the server or reload the world)"
        )

    def _read_vehicle_geometry(self) -> None:
        physics = self._vehicle.get_physics_control()
        wheels = list(physics.wheels)
        tf = self._vehicle.get_transform()
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
                self.config.fallback_wheelbase_m,
            )
            wheelbase, rear_x = (
                self.config.fallback_wheelbase_m,
                -self.config.fallback_wheelbase_m / 2,
            )
        self._wheelbase_m, self._rear_axle_x_m = wheelbase, rear_x
        self._steering_curve = list(getattr(physics, "steering_curve", []))
        steer_deg = max((float(w.max_steer_angle) for w in wheels[:2]), default=70.0)
        self._max_steer_rad = math.radians(steer_deg if steer_deg > 0 else 70.0)
        self._max_kappa = min(
            self.config.max_curvature_per_m, max_curvature(wheelbase, self._max_steer_rad)
        )

    def _brake_tick(self) -> None:
        self._vehicle.apply_control(self._carla.VehicleControl(throttle=0.0, steer=0.0, brake=1.0))
        self._world.tick(self.config.timeout_s)

    def _spawn_sensor(self, bp: Any, transform: Any, callback: Any) -> None:
        bp.set_attribute("role_name", self.config.role_name)
        sensor = self._world.spawn_actor(bp, transform, attach_to=self._vehicle)
        self._sensors.append(sensor)  # tracked before listening, so cleanup always sees it
        sensor.listen(callback)

    def _spawn_camera(self) -> None:
        cfg = self.config
        self._camera_q = FrameQueue("camera")
        self._spawn_sensor(
            camera_blueprint(self._blueprints, cfg.camera),
            camera_transform(self._carla, cfg.camera, self._rear_axle_x_m),
            self._camera_q.put,
        )

    def _spawn_event_sensors(self) -> None:
        self._collisions, self._invasions = EventBuffer(), EventBuffer()
        identity = self._carla.Transform()
        col_bp = self._blueprints.find("sensor.other.collision")
        self._spawn_sensor(col_bp, identity, self._collisions.put)
        lane_bp = self._blueprints.find("sensor.other.lane_invasion")
        self._spawn_sensor(lane_bp, identity, self._invasions.put)

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Applies a curvature (1/m, positive = left), ticks once, returns the contract's tuple."""
        if self._episode_done or self._state is None:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        kappa = spec.check_action(action, self._max_kappa)
        try:
            return self._step(kappa)
        except BaseException as err:
            self.close()
            if is_timeout_error(err):
                raise self._lost(err) from err
            raise

    def _step(
        self, kappa: float
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        cfg, carla = self.config, self._carla
        factor = steering_curve_factor(self._steering_curve, self._state.speed_mps)
        steer = steer_from_curvature(kappa, self._wheelbase_m, self._max_steer_rad, factor)
        applied = curvature_from_steer(steer, self._wheelbase_m, self._max_steer_rad, factor)
        throttle, brake = self._cruise(self._state.speed_mps)
        self._vehicle.apply_control(
            carla.VehicleControl(throttle=throttle, steer=steer, brake=brake)
        )
        image = self._tick()
        collisions = [
            e for e in self._collisions.drain() if _impulse(e) >= cfg.collision_min_impulse_ns
        ]
        invasions = self._invasions.drain()
        self._state = self._measure()
        p = self._state.projection
        departed = abs(p.lateral_offset_m) > p.lane_half_width_m + cfg.departure_margin_m
        intervention = False
        if departed and cfg.intervention_mode:
            image = self._put_back_on_lane()
            intervention, departed = True, False
        terminated = bool(collisions) or departed
        obs = self._observation(image)  # sets the episode time self._t_s
        progress = self._state.projection.s_m - self._start_s
        truncated = not terminated and (
            progress >= self._route_length or self._t_s >= self._max_time_s
        )
        self._episode_done = terminated or truncated
        info = self._info(
            applied, collision=bool(collisions), intervention=intervention, invasions=invasions
        )
        reward = 1.0 - (p.lateral_offset_m / p.lane_half_width_m) ** 2  # as builtin; unused by IL
        return obs, reward, terminated, truncated, info

    def _tick(self) -> Any:
        frame = self._world.tick(self.config.timeout_s)
        return self._camera_q.get(frame, self.config.sensor_timeout_s)

    def _put_back_on_lane(self) -> Any:
        """Teleports the car onto the lane centre, heading along it, and ticks once.

        The step that counts an intervention therefore spans two ticks (``t_s`` advances by
        ``2 * dt``) and returns the first image after the teleport.
        """
        carla, p, speed = self._carla, self._state.projection, self._state.speed_mps
        fwd = -self._rear_axle_x_m
        x, y = p.x_m + fwd * math.cos(p.yaw_rad), p.y_m + fwd * math.sin(p.yaw_rad)
        cx, cy = xy_to_carla(x, y)
        z = self._vehicle.get_transform().location.z
        yaw_c = yaw_to_carla(p.yaw_rad)
        self._vehicle.set_transform(
            carla.Transform(
                carla.Location(x=cx, y=cy, z=z), carla.Rotation(pitch=0.0, yaw=yaw_c, roll=0.0)
            )
        )
        vx, vy = xy_to_carla(speed * math.cos(p.yaw_rad), speed * math.sin(p.yaw_rad))
        self._vehicle.set_target_velocity(carla.Vector3D(x=vx, y=vy, z=0.0))
        image = self._tick()
        self._collisions.drain()  # events of the teleport itself are not the driver's
        self._invasions.drain()
        self._state = self._measure()
        return image

    def _speed_setpoint(self, speed_mps: float) -> float:
        """The target speed, lowered for tight bends within the next ``2 s + 5 m`` of route."""
        horizon = 2.0 * max(speed_mps, self._target_speed) + 5.0
        v_bend = self._route.bend_speed_limit(
            self._state.projection.s_m, horizon, self.config.max_lateral_accel_mps2
        )
        return min(self._target_speed, max(v_bend, 2.0))

    def _cruise(self, speed_mps: float) -> tuple[float, float]:
        """PI throttle towards the speed set-point; proportional brake when clearly too fast."""
        err = self._speed_setpoint(speed_mps) - speed_mps
        self._speed_integral = min(max(self._speed_integral + err * self.config.dt_s, -20.0), 20.0)
        if err < -_BRAKE_DEADBAND_MPS:
            return 0.0, min(_KP_BRAKE * -err, 1.0)
        throttle = _KP_THROTTLE * err + _KI_THROTTLE * self._speed_integral
        return min(max(throttle, 0.0), _MAX_THROTTLE), 0.0

    # ------------------------------------------------------------------------------------------
    # Measurements

    def _measure(self) -> VehicleState:
        tf = self._vehicle.get_transform()
        vel = self._vehicle.get_velocity()
        yaw_c = math.radians(tf.rotation.yaw)
        fx, fy = math.cos(yaw_c), math.sin(yaw_c)
        rear = (tf.location.x + self._rear_axle_x_m * fx, tf.location.y + self._rear_axle_x_m * fy)
        x, y = rear[0], -rear[1]
        yaw = yaw_from_carla(tf.rotation.yaw)
        speed = max(vel.x * fx + vel.y * fy, 0.0)
        hint = self._state.projection.index if self._state is not None else 0
        proj = self._route.project(x, y, yaw, hint)
        return VehicleState(x, y, yaw, float(speed), proj)

    def _observation(self, image: Any) -> dict[str, np.ndarray]:
        cam = self.config.camera
        if (image.height, image.width) != (cam.height_px, cam.width_px):
            raise ValueError(
                f"camera delivered {image.width}x{image.height}, "
                f"spec is {cam.width_px}x{cam.height_px}"
            )
        rgb = bgra_to_rgb(image.raw_data, image.height, image.width)
        if self.config.image_noise_std > 0:
            noise = self.np_random.standard_normal(rgb.shape, dtype=np.float32)
            noisy = rgb + noise * np.float32(255.0 * self.config.image_noise_std)
            rgb = np.clip(noisy, 0, 255).astype(np.uint8)
        self._last_image = rgb
        self._t_s = max(float(image.timestamp) - self._t0, 0.0)
        return {
            spec.IMAGE: rgb,
            spec.SPEED_MPS: np.array([self._state.speed_mps], dtype=np.float32),
            spec.T_S: np.array([self._t_s], dtype=np.float64),
        }

    def _info(
        self, curvature_applied: float, *, collision: bool, intervention: bool, invasions: list[Any]
    ) -> dict[str, Any]:
        s, p = self._state, self._state.projection
        return {
            spec.INFO_LATERAL_OFFSET_M: p.lateral_offset_m,
            spec.INFO_HEADING_ERROR_RAD: p.heading_error_rad,
            spec.INFO_ROAD_CURVATURE: p.road_curvature,
            spec.INFO_PROGRESS_M: p.s_m - self._start_s,
            spec.INFO_LANE_HALF_WIDTH_M: p.lane_half_width_m,
            spec.INFO_POSE: (s.x_m, s.y_m, s.yaw_rad),
            spec.INFO_TOWN: self.config.town,
            spec.INFO_WEATHER: self.config.weather,
            spec.INFO_CURVATURE_APPLIED: float(curvature_applied),
            spec.INFO_NOISE_ACTIVE: False,
            spec.INFO_INTERVENTION: intervention,
            spec.INFO_COLLISION: collision,
            spec.INFO_ROUTE_LENGTH_M: float(self._route_length),
            "lane_invasion": bool(invasions),
            "target_speed_mps": self._target_speed,
        }

    def _lost(self, err: BaseException) -> CarlaConnectionError:
        cfg = self.config
        return CarlaConnectionError(
            f"the CARLA server at {cfg.host}:{cfg.port} stopped answering ({err}); the "
            "environment has been closed"
        )

    # ------------------------------------------------------------------------------------------
    # Privileged access for the expert and tools

    @property
    def route(self) -> Route:
        """The current episode's route (privileged)."""
        if self._route is None:
            raise RuntimeError("no episode yet: call reset()")
        return self._route

    @property
    def vehicle_state(self) -> VehicleState:
        """The ego vehicle's latest measured state (privileged)."""
        if self._state is None:
            raise RuntimeError("no episode yet: call reset()")
        return self._state

    @property
    def max_curvature_per_m(self) -> float:
        """The curvature limit actions are clipped to, 1/m."""
        return self._max_kappa

    @property
    def wheelbase_m(self) -> float:
        """The ego vehicle's wheelbase (from its wheel positions), m."""
        return self._wheelbase_m

    @property
    def camera(self) -> spec.CameraSpec:
        """The forward camera (``sim.spec.DrivingEnv``)."""
        return self.config.camera

    @property
    def control_rate_hz(self) -> float:
        """Nominal control steps per simulated second, Hz (``sim.spec.DrivingEnv``)."""
        return self.config.control_rate_hz

    def make_expert(self) -> spec.Driver:
        """The privileged pure-pursuit expert for this environment (a ``sim.spec.Driver``)."""
        from sim.carla.expert import CarlaExpert

        return CarlaExpert(self)

    def render(self) -> np.ndarray | None:
        """The last camera image (``rgb_array`` mode), else None."""
        return self._last_image if self.render_mode == "rgb_array" else None


def _impulse(event: Any) -> float:
    i = event.normal_impulse
    return math.sqrt(i.x * i.x + i.y * i.y + i.z * i.z)


def _sigterm_to_exit(signum: int, frame: Any) -> None:
    """SIGTERM -> SystemExit, so ``finally`` blocks and ``atexit`` cleanup run."""
    raise SystemExit(128 + signum)

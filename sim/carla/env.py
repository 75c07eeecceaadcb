"""The CARLA backend: the ``sim/spec.py`` contract over a CARLA 0.9.16 server.

One environment owns one client connection, a :class:`sim.carla.session.ServerSession`. On
construction it connects (a clear :class:`CarlaConnectionError` if nothing answers), loads the
town, remembers the world's settings, and switches the world and the Traffic Manager to
synchronous mode with ``fixed_delta_seconds = 1 / control_rate_hz``: the server then advances
only when this environment calls ``world.tick()``, exactly once per :meth:`step`.

Each :meth:`reset` destroys the previous episode's actors, sets the weather, spawns the ego vehicle
at a random free spawn point (retrying on CARLA's spawn-collision error), lets it settle onto the
road with the brake on, attaches an RGB camera from the camera spec and collision and lane-invasion
sensors (:mod:`sim.carla.spawning`), with a route planned over the map's lane graph with random
branches at junctions, reproducible per seed, and a command per junction (:mod:`sim.carla.planner`),
and sets the car going at the episode's target speed; a spawn point with no route of the requested
length is skipped. Each :meth:`step` converts the curvature to CARLA's steer
(:mod:`sim.carla.convert`), holds the target speed with a PI cruise controller, ticks, takes the
camera image of exactly that frame (older, late images are discarded), drains the event sensors
without waiting, and measures the privileged ``info`` against the route. After ``terminated`` or
``truncated``, :meth:`step` raises :class:`sim.spec.ResetNeededError` until the next :meth:`reset`.

Cleanup (:meth:`close`; also run when any exception, ``KeyboardInterrupt`` included, escapes
``reset``/``step``, when the environment is dropped without ``close()``, at interpreter exit,
and on SIGTERM) is the session's: settings restored first and last, every actor we spawned
destroyed with its errors retried and reported, SIGINT/SIGTERM held until it ends, and
idempotent (see :mod:`sim.carla.session`). After it, :meth:`reset` and :meth:`step` raise
:class:`sim.spec.EnvClosedError`.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import weakref
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from sim import spec
from sim.carla.calibration import load_calibration
from sim.carla.config import CarlaEnvConfig
from sim.carla.connection import (
    CarlaConfigError,
    CarlaConnectionError,
    CarlaDataError,
    CarlaServerBusyError,
    CarlaSpawnError,
    import_carla,
    is_timeout_error,
)
from sim.carla.convert import (
    bgra_to_rgb,
    curvature_from_steer,
    steer_from_curvature,
    steering_curve_factor,
    xy_to_carla,
    yaw_from_carla,
    yaw_to_carla,
)
from sim.carla.planner import LaneGraph, RouteRequest, plan_route
from sim.carla.route import Projection, Route
from sim.carla.session import ServerSession
from sim.carla.spawning import (
    VehicleGeometry,
    read_vehicle_geometry,
    spawn_camera,
    spawn_event_sensors,
    spawn_vehicle,
)

__all__ = [
    "CarlaDrivingEnv",
    "CarlaEnvConfig",
    "CarlaServerBusyError",
    "CarlaSpawnError",
    "VehicleState",
]

logger = logging.getLogger(__name__)

_OPEN_ENVS: dict[tuple[str, int], weakref.ReferenceType[CarlaDrivingEnv]] = {}
"""The open environment per server: only one client may tick a synchronous server."""


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


def _open_env(key: tuple[str, int]) -> CarlaDrivingEnv | None:
    """The environment of this process still open on a server, if any."""
    ref = _OPEN_ENVS.get(key)
    if ref is not None and ref() is not None and not ref()._closed:
        gc.collect()  # one dropped in a reference cycle is closed by its finaliser now
    env = ref() if ref is not None else None
    return env if env is not None and not env._closed else None


class CarlaDrivingEnv(spec.ConfiguredEnv, gym.Env):
    """The driving contract of ``sim/spec.py`` on a CARLA server (see the module docstring).

    Args:
        config: The configuration; default :class:`CarlaEnvConfig`.
        render_mode: None or ``"rgb_array"`` (the last camera image).
        **overrides: Fields of the config to replace.

    Raises:
        CarlaConfigError: For an unknown option or a bad value.
        CarlaNotInstalledError: If the ``carla`` client is not installed.
        CarlaConnectionError: If no server answers within ``timeout_s``.
        CarlaServerBusyError: If another environment of this process is open on the server.
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
                raise CarlaConfigError(
                    f"unknown CARLA env option(s) {unknown}; valid: {', '.join(sorted(names))}"
                )
            cfg = dataclasses.replace(cfg, **overrides)
        if render_mode not in (None, "rgb_array"):
            raise CarlaConfigError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = cfg
        self.render_mode = render_mode
        self.observation_space = spec.observation_space(cfg.camera)
        self.action_space = spec.action_space(cfg.max_curvature_per_m)
        self._calibration = (
            load_calibration(cfg.steering_calibration) if cfg.steering_calibration else None
        )
        self._carla = import_carla()

        self._closed = False
        self._vehicle: Any = None
        self._camera_q = self._collisions = self._invasions = None
        self._route: Route | None = None
        self._graph: LaneGraph | None = None
        self._route_commands: tuple[spec.Command, ...] = ()
        self._state: VehicleState | None = None
        self._last_image: np.ndarray | None = None
        self._geometry = VehicleGeometry.fallback(cfg.fallback_wheelbase_m, cfg.max_curvature_per_m)
        self._target_speed = 0.0
        self._speed_integral = 0.0
        self._t0 = 0.0
        self._t_s = 0.0
        self._start_s = 0.0
        self._route_length = cfg.route_length_m
        self._max_time_s = 0.0
        self._episode_done = True

        self._key = (cfg.host, cfg.port)
        if _open_env(self._key) is not None:
            self._closed = True
            raise CarlaServerBusyError(
                f"another CARLA environment is still open on {cfg.host}:{cfg.port}; close it "
                "first (only one client may tick a synchronous server)"
            )
        self._session = ServerSession(self._carla, cfg)
        # Runs the session's cleanup when this env is garbage-collected or at interpreter exit
        # (the session holds no reference back to the env).
        self._finalizer = weakref.finalize(self, self._session.close)
        _OPEN_ENVS[self._key] = weakref.ref(self)
        try:
            self._session.open()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------
    # Cleanup

    def close(self) -> None:
        """Restores the server's settings and destroys our actors (see :mod:`sim.carla.session`).

        Safe to call any number of times; a call after an incomplete cleanup (a server that
        stopped answering) tries again, and what is still left is logged as an error and tried
        once more at exit. A SIGINT or SIGTERM received during the cleanup is delivered when
        it ends. Later :meth:`reset`/:meth:`step` calls raise :class:`sim.spec.EnvClosedError`.
        """
        self._closed = True
        self._episode_done = True
        try:
            session = getattr(self, "_session", None)
            if session is not None:
                session.close()
        finally:
            mine = _OPEN_ENVS.get(self._key)
            if mine is not None and mine() is self:
                del _OPEN_ENVS[self._key]
            self._vehicle = None
            self._camera_q = self._collisions = self._invasions = None

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

        Raises:
            EnvClosedError: After :meth:`close` (also after an earlier reset or step failed).
            CarlaConfigError: For an unknown option.
            CarlaCleanupError: If the previous episode's actors could not be destroyed.
            RoutePlanError: If no route of ``route_length_m`` leads on from any spawn point
                tried (naming the town, seed and why).
        """
        spec.check_env_state("reset", closed=self._closed)
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"start_offset_m", "start_heading_rad"}
        if unknown:
            raise CarlaConfigError(f"unknown reset options {sorted(unknown)}")
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
        cfg, carla, rng, session = self.config, self._carla, self.np_random, self._session
        self._episode_done = True
        self._vehicle = None
        self._camera_q = self._collisions = self._invasions = None
        session.destroy_actors()
        session.world.set_weather(getattr(carla.WeatherParameters, cfg.weather))
        if seed is not None:
            session.tm.set_random_device_seed(int(seed))
        lo, hi = cfg.target_speed_range_mps
        self._target_speed = cfg.target_speed_mps or float(rng.uniform(lo, hi))
        self._max_time_s = (
            cfg.max_time_s
            if cfg.max_time_s is not None
            else 2.0 * cfg.route_length_m / self._target_speed + 10.0
        )
        self._speed_integral = 0.0
        if self._graph is None:
            self._graph = LaneGraph(session.map)
        request = RouteRequest(cfg.route_length_m + _ROUTE_LOOKAHEAD_M, cfg.town, seed)
        route_seed = int(rng.integers(2**32))

        def plan(start_wp: Any) -> Route:
            return plan_route(self._graph, start_wp, request, np.random.default_rng(route_seed))

        self._vehicle, self._route = spawn_vehicle(
            session,
            rng,
            float(options.get("start_offset_m", 0.0)),
            float(options.get("start_heading_rad", 0.0)),
            plan,
        )
        # The car drops onto the road with the brake on. Wheel positions are only valid once
        # the vehicle has been ticked; the camera listens from then on so that its exposure
        # has adapted when the episode starts (the images of these ticks are discarded by the
        # frame matcher); the event sensors come last so the landing is not a collision.
        settle_ticks = max(round(cfg.settle_time_s * cfg.control_rate_hz), 1)
        self._brake_tick()
        self._geometry = read_vehicle_geometry(
            self._vehicle, cfg.fallback_wheelbase_m, cfg.max_curvature_per_m
        )
        self._camera_q = spawn_camera(
            session, self._vehicle, cfg.camera, self._geometry.rear_axle_x_m
        )
        for _ in range(settle_ticks - 1):
            self._brake_tick()
        self._collisions, self._invasions = spawn_event_sensors(session, self._vehicle)
        self._route_length = cfg.route_length_m
        self._state = None
        # Like the builtin simulator, the episode starts at the target speed.
        forward = self._vehicle.get_transform().get_forward_vector()
        v = self._target_speed
        self._vehicle.set_target_velocity(carla.Vector3D(x=forward.x * v, y=forward.y * v, z=0.0))
        self._vehicle.apply_control(carla.VehicleControl(throttle=0.0, steer=0.0, brake=0.0))
        image = self._tick()
        self._t0 = float(image.timestamp)
        self._collisions.drain()
        self._invasions.drain()
        self._state = self._measure()
        self._start_s = self._state.projection.s_m
        end_s = self._start_s + self._route_length
        self._route_commands = tuple(
            j.command for j in self._route.junctions if j.entry_s_m - spec.COMMAND_LEAD_M < end_s
        )
        self._episode_done = False
        obs = self._observation(image)
        info = self._info(0.0, collision=False, intervention=False, invasions=[])
        info[spec.RESET_INFO_ROUTE_COMMANDS] = self._route_commands
        return obs, info

    def _brake_tick(self) -> None:
        self._vehicle.apply_control(self._carla.VehicleControl(throttle=0.0, steer=0.0, brake=1.0))
        self._session.world.tick(self.config.timeout_s)

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Applies a curvature (1/m, positive = left), ticks once, returns the contract's tuple.

        Raises:
            ContractError: For an action that is not one finite real number.
            ResetNeededError: Before :meth:`reset`, or after the episode ended.
            EnvClosedError: After :meth:`close`.
        """
        spec.check_env_state(
            "step", closed=self._closed, started=self._state is not None, ended=self._episode_done
        )
        kappa = spec.check_action(action, self._geometry.max_curvature_per_m)
        try:
            return self._step(kappa)
        except BaseException as err:
            self.close()
            if is_timeout_error(err):
                raise self._lost(err) from err
            raise

    def step_steer(
        self, steer: float
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """As :meth:`step`, with CARLA's normalised steer (``[-1, 1]``, + = right) given directly.

        Privileged, for measuring the vehicle's steering response (the calibration);
        ``info["curvature_applied"]`` is then the mapping's estimate for that steer.
        """
        spec.check_env_state(
            "step", closed=self._closed, started=self._state is not None, ended=self._episode_done
        )
        if not (math.isfinite(steer) and -1.0 <= steer <= 1.0):
            raise spec.ContractError(f"steer must be finite in [-1, 1], got {steer!r}")
        try:
            return self._step(0.0, steer)
        except BaseException as err:
            self.close()
            if is_timeout_error(err):
                raise self._lost(err) from err
            raise

    def _steer(self, kappa: float, steer: float | None) -> tuple[float, float]:
        """The steer for a curvature (or the given steer) and the curvature it executes."""
        geo, speed, cal = self._geometry, self._state.speed_mps, self._calibration
        if cal is not None:
            steer = cal.steer_for(kappa, speed) if steer is None else steer
            return steer, cal.curvature_for(steer, speed)
        factor = steering_curve_factor(geo.steering_curve, speed)
        if steer is None:
            steer = steer_from_curvature(kappa, geo.wheelbase_m, geo.max_steer_rad, factor)
        return steer, curvature_from_steer(steer, geo.wheelbase_m, geo.max_steer_rad, factor)

    def _step(
        self, kappa: float, steer: float | None = None
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        cfg, carla = self.config, self._carla
        steer, applied = self._steer(kappa, steer)
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
        frame = self._session.world.tick(self.config.timeout_s)
        return self._camera_q.get(frame, self.config.sensor_timeout_s)

    def _put_back_on_lane(self) -> Any:
        """Teleports the car onto the lane centre, heading along it, and ticks once.

        The step that counts an intervention therefore spans two ticks (``t_s`` advances by
        ``2 * dt``) and returns the first image after the teleport.
        """
        carla, p, speed = self._carla, self._state.projection, self._state.speed_mps
        fwd = -self._geometry.rear_axle_x_m
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
        rear = (
            tf.location.x + self._geometry.rear_axle_x_m * fx,
            tf.location.y + self._geometry.rear_axle_x_m * fy,
        )
        x, y = rear[0], -rear[1]
        yaw = yaw_from_carla(tf.rotation.yaw)
        speed = max(vel.x * fx + vel.y * fy, 0.0)
        hint = self._state.projection.index if self._state is not None else 0
        proj = self._route.project(x, y, yaw, hint)
        return VehicleState(x, y, yaw, float(speed), proj)

    def _observation(self, image: Any) -> dict[str, np.ndarray]:
        cam = self.config.camera
        if (image.height, image.width) != (cam.height_px, cam.width_px):
            raise CarlaDataError(
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
            spec.COMMAND: np.array([self._command()[1]], dtype=np.int64),
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
            spec.INFO_JUNCTION: self._command()[0],
            "lane_invasion": bool(invasions),
            "target_speed_mps": self._target_speed,
        }

    def _command(self) -> tuple[int, spec.Command]:
        """The active junction's index and command at the car's projection (see the spec)."""
        index, command = self._route.command_at(self._state.projection.s_m)
        if index >= len(self._route_commands):  # a junction beyond the episode's end
            return -1, spec.Command.FOLLOW_LANE
        return index, command

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
            raise spec.ResetNeededError("no episode yet: call reset()")
        return self._route

    @property
    def vehicle_state(self) -> VehicleState:
        """The ego vehicle's latest measured state (privileged)."""
        if self._state is None:
            raise spec.ResetNeededError("no episode yet: call reset()")
        return self._state

    @property
    def max_curvature_per_m(self) -> float:
        """The curvature limit actions are clipped to, 1/m."""
        return self._geometry.max_curvature_per_m

    @property
    def wheelbase_m(self) -> float:
        """The ego vehicle's wheelbase (from its wheel positions), m."""
        return self._geometry.wheelbase_m

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

"""The builtin driving environment: a gymnasium env over roads, camera, car and weather.

Registered as ``LiquidDrive/Builtin-v0`` (see :mod:`sim`). It follows the contract in
:mod:`sim.spec`.

## Description
A car drives in the right lane of a two-lane road in a named town and weather. A forward
camera (:class:`~sim.spec.CameraSpec`) sees it; the speed is held by a cruise controller at a
per-episode target speed; the agent steers.

## Action Space
``Box(-k_max, k_max, (1,), float32)``: the path curvature in 1/m, positive = left. The car
turns it into a road-wheel angle ``delta = atan(wheelbase * kappa)`` clipped to its limit. A
NaN or infinite action, or anything but one real number (a bool, a complex number, ``None``,
a string, an array of another size), raises :class:`sim.spec.ContractError` (a
``ValueError``).

## Observation Space
``Dict(image=Box(0, 255, (H, W, 3), uint8), speed_mps=Box(0, 60, (1,), float32),
t_s=Box(0, 1e6, (1,), float64))``.

## Rewards
``1 - (lateral_offset / lane_half_width)^2`` per step (1 on the lane centre, 0 at the lane
edge, negative beyond). Imitation learning does not use it.

## Starting State
The car starts 30 m into the road on the right-lane centre, heading along the lane, at the
target speed; ``options={"start_offset_m": ..., "start_heading_rad": ...}`` offsets it.

## Episode Termination
``terminated`` when ``|lateral_offset_m| > lane_half_width_m + departure_margin_m`` (unless
``intervention_mode``, which counts the departure, puts the car back on the lane centre and
continues); ``truncated`` at the end of the route or after ``max_time_s``. After either the
episode is over: ``step()`` raises :class:`sim.spec.ResetNeededError` until ``reset()``; after
``close()``, ``reset()`` and ``step()`` raise :class:`sim.spec.EnvClosedError`.

## Arguments
``BuiltinDrivingEnv(config=None, render_mode=None, **overrides)``: the fields of
:class:`BuiltinEnvConfig`, e.g. ``town="suburb", weather="fog"``. ``reset(seed=...)``: the
seed picks the road within the town; the same (town, seed) gives the same road, frames and
trajectory.

## Version History
* v0: first version.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from sim import spec
from sim.builtin.camera import CameraModel
from sim.builtin.expert import PurePursuitExpert
from sim.builtin.junction_paint import clear_junctions
from sim.builtin.randomize import (
    DomainRandomization,
    as_randomization,
    car_limit_radius_m,
    draw_world,
)
from sim.builtin.recovery import OffsetSchedule, RecoveryViews, render_views
from sim.builtin.render import VIEW_DISTANCE_M, Renderer
from sim.builtin.roads import Road, generate_road
from sim.builtin.route_plan import Junction, JunctionRoute, build_route
from sim.builtin.texture import GroundTexture
from sim.builtin.towns import get_town, place_props
from sim.builtin.vehicle import Vehicle, VehicleParams
from sim.builtin.weather import get_weather

START_S_M = 30.0
"""Arc length of the road at which every route starts, m (road behind it is drawn too)."""
MAX_SPEED_MPS = 60.0
"""Upper bound of the speed observation, m/s."""


class EnvConfigError(spec.SimConfigError):
    """A bad environment configuration value."""


@dataclass(frozen=True)
class CameraJitter:
    """Random camera-pose offsets drawn once per episode (zero-mean Gaussians)."""

    pitch_std_deg: float = 0.0
    """Std of the extra downward pitch, degrees."""
    yaw_std_deg: float = 0.0
    """Std of the extra yaw, degrees."""
    height_std_m: float = 0.0
    """Std of the extra mount height, m."""

    def __post_init__(self) -> None:
        for name in ("pitch_std_deg", "yaw_std_deg", "height_std_m"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise EnvConfigError(f"camera_jitter.{name} must be finite and >= 0, got {v}")


@dataclass(frozen=True)
class BuiltinEnvConfig:
    """Configuration of :class:`BuiltinDrivingEnv`."""

    town: str = "countryside"
    """Town name (``sim.builtin.towns.TOWNS``)."""
    weather: str = "clear_noon"
    """Weather name (``sim.builtin.weather.WEATHERS``)."""
    camera: spec.CameraSpec = field(default_factory=spec.CameraSpec)
    """The forward camera."""
    control_rate_hz: float = spec.CONTROL_RATE_HZ
    """Steps per simulated second, Hz (the evaluation rate suite uses 10, 20 and 30)."""
    frame_time_jitter: float = 0.0
    """Each step lasts ``dt * (1 + u)`` with ``u`` uniform in ``[-jitter, jitter]`` (0 = none)."""
    target_speed_mps: float | None = None
    """Cruise speed, m/s; ``None`` = drawn per episode from ``target_speed_range_mps``."""
    target_speed_range_mps: tuple[float, float] | None = None
    """Range of the per-episode cruise speed, m/s; ``None`` = the town's own range."""
    route_length_m: float = 2000.0
    """Length of the route, m; the episode is truncated at its end."""
    max_time_s: float | None = None
    """Time limit, s; ``None`` = twice the route's duration at the target speed plus 10 s."""
    intervention_mode: bool = False
    """Count a lane departure as an intervention and reset to the lane centre, not terminate."""
    departure_margin_m: float = 0.25
    """How far beyond the lane half width the car may go before a departure, m."""
    image_noise_std: float = 0.0
    """Std of Gaussian noise added to the image, on [0, 1] images (the noise suite)."""
    camera_jitter: CameraJitter = field(default_factory=CameraJitter)
    """Per-episode random camera-pose offsets."""
    supersample: int = 2
    """Supersampling factor of the ground rendering (1 = off)."""
    texture_res_m: float = 0.12
    """Resolution of the top-down world texture, m per pixel."""
    vehicle: VehicleParams = field(default_factory=VehicleParams)
    """Constants of the car."""
    camera_offset: spec.CameraOffset = field(default_factory=spec.CameraOffset)
    """Fixed shift of the camera mount from ``camera`` (the camera suite); ``camera`` stays the
    nominal camera."""
    randomize: DomainRandomization | None = None
    """Redraw the world's factors at every reset from this training town and weather
    (``sim.builtin.randomize``; a mapping of its fields or True is accepted); None = off."""
    recovery: RecoveryViews = field(default_factory=RecoveryViews)
    """Extra camera views from shifted poses with the expert's labels (info only; 0 = off;
    a dict of its fields is accepted)."""

    def __post_init__(self) -> None:
        get_town(self.town)
        get_weather(self.weather)
        if not isinstance(self.camera, spec.CameraSpec):
            raise EnvConfigError(f"camera must be a CameraSpec, got {type(self.camera).__name__}")
        lo_hz, hi_hz = spec.BUILTIN_CONTROL_RATE_RANGE_HZ
        if not (math.isfinite(self.control_rate_hz) and lo_hz <= self.control_rate_hz <= hi_hz):
            raise EnvConfigError(
                f"control_rate_hz must be in [{lo_hz:g}, {hi_hz:g}], got {self.control_rate_hz}"
            )
        if not 0.0 <= self.frame_time_jitter < 1.0:
            raise EnvConfigError(
                f"frame_time_jitter must be in [0, 1), got {self.frame_time_jitter}"
            )
        if self.target_speed_mps is not None and not 0.5 <= self.target_speed_mps <= MAX_SPEED_MPS:
            raise EnvConfigError(
                f"target_speed_mps must be in [0.5, {MAX_SPEED_MPS}] or None, "
                f"got {self.target_speed_mps}"
            )
        if self.target_speed_range_mps is not None:
            lo, hi = self.target_speed_range_mps
            if not 0.5 <= lo <= hi <= MAX_SPEED_MPS:
                raise EnvConfigError(
                    f"target_speed_range_mps must be (lo, hi) in [0.5, {MAX_SPEED_MPS}], "
                    f"got {lo, hi}"
                )
        if not 10.0 <= self.route_length_m <= 100_000.0:
            raise EnvConfigError(
                f"route_length_m must be in [10, 100000], got {self.route_length_m}"
            )
        if self.max_time_s is not None and not 0.0 < self.max_time_s <= 1.0e5:
            raise EnvConfigError(f"max_time_s must be in (0, 1e5] or None, got {self.max_time_s}")
        if not (math.isfinite(self.departure_margin_m) and self.departure_margin_m >= 0):
            raise EnvConfigError(f"departure_margin_m must be >= 0, got {self.departure_margin_m}")
        if not (math.isfinite(self.image_noise_std) and 0.0 <= self.image_noise_std <= 1.0):
            raise EnvConfigError(f"image_noise_std must be in [0, 1], got {self.image_noise_std}")
        if not isinstance(self.camera_jitter, CameraJitter):
            raise EnvConfigError(
                f"camera_jitter must be a CameraJitter, got {self.camera_jitter!r}"
            )
        if self.supersample not in (1, 2, 3, 4):
            raise EnvConfigError(f"supersample must be 1, 2, 3 or 4, got {self.supersample}")
        if not 0.03 <= self.texture_res_m <= 0.5:
            raise EnvConfigError(f"texture_res_m must be in [0.03, 0.5], got {self.texture_res_m}")
        if not isinstance(self.camera_offset, spec.CameraOffset):
            raise EnvConfigError(
                f"camera_offset must be a sim.spec.CameraOffset, got {self.camera_offset!r}"
            )
        object.__setattr__(self, "randomize", as_randomization(self.randomize))
        if self.randomize is not None and get_town(self.town).junctions is not None:
            raise EnvConfigError(
                f"randomize does not support junction towns (got town {self.town!r}); use a "
                "lane-keeping training town"
            )
        if self.randomize is not None:
            draw_world(self.randomize, self.town, self.weather, 0)  # refuses held-out presets
            limit = car_limit_radius_m(self.vehicle, self.randomize.lane_width_m[1])
            if self.randomize.min_bend_radius_m[0] < limit:
                raise EnvConfigError(
                    f"randomize.min_bend_radius_m starts below this car's limit of {limit:.2f} m"
                )
        if isinstance(self.recovery, dict):  # the plain form other packages pass
            object.__setattr__(self, "recovery", RecoveryViews(**self.recovery))
        if not isinstance(self.recovery, RecoveryViews):
            raise EnvConfigError(f"recovery must be a RecoveryViews, got {self.recovery!r}")
        half = 0.5 * get_town(self.town).lane_width_m[0]
        self.recovery.check_lane(half, f"town {self.town!r}")

    @property
    def dt_s(self) -> float:
        """Nominal step length, s."""
        return 1.0 / self.control_rate_hz


def _stable_id(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


class BuiltinDrivingEnv(spec.ConfiguredEnv, gym.Env):
    """Lane keeping from a forward camera in the builtin simulator (see the module doc)."""

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "render_fps": int(spec.CONTROL_RATE_HZ),
    }

    def __init__(
        self,
        config: BuiltinEnvConfig | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        base = config if config is not None else BuiltinEnvConfig()
        if overrides:
            names = {f.name for f in dataclasses.fields(BuiltinEnvConfig)}
            unknown = sorted(set(overrides) - names)
            if unknown:
                raise EnvConfigError(
                    f"unknown config field(s) {unknown}; valid fields: {', '.join(sorted(names))}"
                )
            base = dataclasses.replace(base, **overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise EnvConfigError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}"
            )
        self.config = base
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": base.control_rate_hz}
        self.town = get_town(base.town)
        self.weather = get_weather(base.weather)
        self.vehicle = Vehicle(base.vehicle)
        self.max_curvature_per_m = base.vehicle.max_curvature_per_m
        self.observation_space = spec.observation_space(base.camera, MAX_SPEED_MPS)
        self.action_space = spec.action_space(self.max_curvature_per_m)
        self.road: Road | None = None
        self.route: JunctionRoute | None = None
        """A junction town's route (its road, junctions, arms, speed limit), else None."""
        self.junctions: tuple[Junction, ...] = ()
        """The junctions of the episode's route whose command starts before its end, in
        route order (``INFO_JUNCTION`` indexes them); empty in a town without junctions."""
        self._junction = -1
        self.road_index = 0
        self.road_seed = 0
        self.lane_offset_m = 0.0
        self.world_factors: dict[str, Any] | None = None
        self._renderer: Renderer | None = None
        self._road_cache: tuple | None = None
        self._last_image: np.ndarray | None = None
        self._recovery: OffsetSchedule | None = None
        self._recovery_info: dict[str, np.ndarray] = {}
        self._expert_law = PurePursuitExpert(self)
        self._episode_over = True
        self._closed = False

    # -----------------------------------------------------------------------------------------
    def make_expert(self) -> PurePursuitExpert:
        """The privileged expert driver for this env (a ``sim.spec.Driver``)."""
        return PurePursuitExpert(self)

    def _world(self, road_seed: int):
        cfg = self.config
        key = (cfg.town, road_seed, cfg.route_length_m)
        if self._road_cache is not None and self._road_cache[0] == key:
            return self._road_cache[1:]
        rng = np.random.default_rng([_stable_id(cfg.town), road_seed])
        lane_w = float(rng.uniform(*self.town.lane_width_m))
        length = START_S_M + cfg.route_length_m + VIEW_DISTANCE_M + 40.0
        route = None
        if self.town.junctions is not None:
            route = build_route(self.town.junctions, length, lane_w, rng)
            road = route.road
        else:
            road = generate_road(self.town.layout, length, lane_w, rng)
        props = place_props(road, self.town, (_stable_id(cfg.town), road_seed))
        if route is not None:
            props = clear_junctions(props, route, self.town)
        self._road_cache = (key, road, props, route)
        return road, props, route

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Starts an episode on the road picked by ``seed`` (see the module doc)."""
        spec.check_env_state("reset", closed=self._closed)
        super().reset(seed=seed)
        self._episode_over = True  # until this reset has succeeded
        options = dict(options or {})
        unknown = set(options) - {"start_offset_m", "start_heading_rad"}
        if unknown:
            raise EnvConfigError(
                f"unknown reset option(s) {sorted(unknown)}; "
                "valid: start_offset_m, start_heading_rad"
            )
        cfg = self.config
        rng = self.np_random
        self.road_seed = int(seed) if seed is not None else int(rng.integers(0, 2**31 - 1))
        offset = cfg.camera_offset
        self.world_factors = None
        if cfg.randomize is not None:
            drawn = draw_world(cfg.randomize, cfg.town, cfg.weather, self.road_seed)
            self.town, self.weather = drawn.town, drawn.weather
            offset, self.world_factors = offset + drawn.camera_offset, drawn.factors
        road, props, route = self._world(self.road_seed)
        self.road, self.props, self.route = road, props, route
        self.lane_offset_m = -0.5 * road.lane_width_m
        if cfg.target_speed_mps is not None:
            self.target_speed_mps = float(cfg.target_speed_mps)
        else:
            lo, hi = cfg.target_speed_range_mps or self.town.speed_range_mps
            self.target_speed_mps = float(rng.uniform(lo, hi))
        jit = cfg.camera_jitter
        pitch = math.radians(jit.pitch_std_deg) * float(rng.standard_normal())
        yaw = math.radians(jit.yaw_std_deg) * float(rng.standard_normal())
        height = jit.height_std_m * float(rng.standard_normal())
        camera = CameraModel(
            cfg.camera,
            1,
            pitch + math.radians(offset.pitch_deg),
            yaw + math.radians(offset.yaw_deg),
            height + offset.height_m,
        )
        texture = GroundTexture(
            road,
            self.town,
            self.weather,
            props,
            self.road_seed,
            res_m=cfg.texture_res_m,
            route=route,
        )
        self._renderer = Renderer(
            camera,
            road,
            texture,
            props,
            self.weather,
            cfg.supersample,
            rain_seed=self.road_seed,
            backdrop=self.town.theme.backdrop,
            backdrop_seed=_stable_id(cfg.town),
        )
        if cfg.recovery.views:
            self._recovery = OffsetSchedule(cfg.recovery, self.road_seed)
        self.route_start_s = START_S_M
        self.route_end_s = START_S_M + cfg.route_length_m
        self.junctions = tuple(
            j
            for j in (route.junctions if route is not None else ())
            if j.entry_s_m - spec.COMMAND_LEAD_M < self.route_end_s
        )
        self.max_time_s = (
            cfg.max_time_s
            if cfg.max_time_s is not None
            else 2.0 * cfg.route_length_m / self.target_speed_mps + 10.0
        )
        offset = float(options.get("start_offset_m", 0.0))
        dheading = float(options.get("start_heading_rad", 0.0))
        if not (math.isfinite(offset) and abs(offset) <= road.lane_width_m * 1.5):
            raise EnvConfigError(
                f"start_offset_m must be finite and within 1.5 lane widths, got {offset}"
            )
        if not (math.isfinite(dheading) and abs(dheading) < math.pi / 2):
            raise EnvConfigError(
                f"start_heading_rad must be finite and in (-pi/2, pi/2), got {dheading}"
            )
        x, y, h = road.locate_scalar(START_S_M, self.lane_offset_m + offset)
        self.vehicle.reset(x, y, h + dheading, self.target_speed_mps, 0.0)
        self.road_index = int(START_S_M / (road.s[1] - road.s[0]))
        self.t_s = 0.0
        self.progress_m = 0.0
        self._curvature_applied = 0.0
        self._intervention = False
        self._measure()
        self._s_prev = self._s
        obs = self._observe()
        self._episode_over = False
        info = self._info()
        info[spec.RESET_INFO_ROUTE_COMMANDS] = tuple(int(j.command) for j in self.junctions)
        if self.world_factors is not None:
            info[spec.RESET_INFO_WORLD_FACTORS] = self.world_factors
        return obs, info

    def step(self, action: Any):
        """Applies a curvature command for one control period (see the module doc)."""
        spec.check_env_state(
            "step", closed=self._closed, started=self.road is not None, ended=self._episode_over
        )
        kappa = spec.check_action(action, self.max_curvature_per_m)
        cfg = self.config
        dt = cfg.dt_s
        if cfg.frame_time_jitter > 0:
            dt *= 1.0 + cfg.frame_time_jitter * float(self.np_random.uniform(-1.0, 1.0))
        self._curvature_applied = kappa
        self.vehicle.step(kappa, self._speed_target(), dt)
        self.t_s += dt
        self._measure()
        self.progress_m += self._s - self._s_prev
        self._s_prev = self._s
        half = 0.5 * self.road.lane_width_m
        departed = abs(self._lateral) > half + cfg.departure_margin_m
        terminated = False
        self._intervention = False
        if departed:
            if cfg.intervention_mode:
                self._intervention = True
                x, y, h = self.road.locate_scalar(self._s, self.lane_offset_m)
                steer = self.vehicle.steer_for_curvature(self._lane_curvature)
                st = self.vehicle.state
                self.vehicle.reset(x, y, h, st.speed_mps, steer)
                self._measure()
            else:
                terminated = True
        truncated = (not terminated) and (
            self._s >= self.route_end_s or self.t_s >= self.max_time_s
        )
        reward = 1.0 - (self._lateral / half) ** 2
        self._episode_over = terminated or truncated
        obs = self._observe()
        return obs, float(reward), terminated, truncated, self._info()

    # -----------------------------------------------------------------------------------------
    def _speed_target(self) -> float:
        """The cruise speed, or a junction route's lower speed limit a little ahead, m/s.

        The lower of the limit here and ``speed / speed_gain`` metres ahead, the distance the
        proportional cruise controller lags behind a falling target, so the car is slow
        enough when it reaches a turn and does not speed up before it has left it.
        """
        if self.route is None:
            return self.target_speed_mps
        p, route = self.vehicle.params, self.route
        stretch = 1.0 - self.lane_offset_m * route.road.curvature_at(self._s)
        ahead = 2.0 * self.vehicle.state.speed_mps / p.speed_gain_per_s / stretch
        here = route.speed_limit_at(self._s, p.max_accel_mps2)
        limit = min(here, route.speed_limit_at(self._s + ahead, p.max_accel_mps2))
        return min(self.target_speed_mps, limit)

    def _measure(self) -> None:
        st = self.vehicle.state
        i, s, lat, h, k = self.road.project(st.x_m, st.y_m, self.road_index)
        self.road_index = i
        self._s = s
        self._lateral = lat - self.lane_offset_m
        self._heading_error = math.remainder(st.yaw_rad - h, math.tau)
        self._lane_curvature = k / (1.0 - self.lane_offset_m * k)
        j = self.route.junction_at(s) if self.route is not None else -1
        self._junction = j if j < len(self.junctions) else -1

    def _observe(self) -> dict[str, np.ndarray]:
        st = self.vehicle.state
        use_rng = (
            self.config.image_noise_std > 0 or self.weather.grain_std > 0 or self.weather.rain > 0
        )
        image = self._renderer.render(
            st.x_m,
            st.y_m,
            st.yaw_rad,
            self._s,
            self.config.image_noise_std,
            self.np_random if use_rng else None,
        )
        self._last_image = image
        if self._recovery is not None:
            self._recovery_info = self._render_recovery()
        return {
            spec.IMAGE: image,
            spec.SPEED_MPS: np.array([st.speed_mps], dtype=np.float32),
            spec.T_S: np.array([self.t_s], dtype=np.float64),
            spec.COMMAND: np.array(
                [self.junctions[self._junction].command if self._junction >= 0 else 0],
                dtype=np.int64,
            ),
        }

    def _info(self) -> dict[str, Any]:
        st = self.vehicle.state
        return {
            spec.INFO_LATERAL_OFFSET_M: self._lateral,
            spec.INFO_HEADING_ERROR_RAD: self._heading_error,
            spec.INFO_ROAD_CURVATURE: self._lane_curvature,
            spec.INFO_PROGRESS_M: self.progress_m,
            spec.INFO_LANE_HALF_WIDTH_M: 0.5 * self.road.lane_width_m,
            spec.INFO_POSE: (st.x_m, st.y_m, st.yaw_rad),
            spec.INFO_TOWN: self.config.town,
            spec.INFO_WEATHER: self.config.weather,
            spec.INFO_CURVATURE_APPLIED: self._curvature_applied,
            spec.INFO_NOISE_ACTIVE: False,
            spec.INFO_INTERVENTION: self._intervention,
            spec.INFO_COLLISION: False,
            spec.INFO_ROUTE_LENGTH_M: self.config.route_length_m,
            spec.INFO_JUNCTION: self._junction,
            "target_speed_mps": self.target_speed_mps,
            "steer_rad": st.steer_rad,
            "road_seed": self.road_seed,
            **self._recovery_info,
        }

    def _render_recovery(self) -> dict[str, np.ndarray]:
        """The recovery views of the current step (``sim.spec.RECOVERY_*``)."""
        st = self.vehicle.state
        noise = self.config.image_noise_std
        views = render_views(
            self._recovery,
            self.t_s,
            (st.x_m, st.y_m, st.yaw_rad),
            st.yaw_rad - self._heading_error,
            lambda x, y, yaw, rng: self._renderer.render(x, y, yaw, self._s, noise, rng),
            self._expert_law.curvature_at,
        )
        return {
            spec.RECOVERY_IMAGES: views.images,
            spec.RECOVERY_OFFSETS: views.offsets,
            spec.RECOVERY_LABELS: views.labels,
        }

    def render(self) -> np.ndarray | None:
        """``rgb_array``: a bird's-eye view with the route ahead, the car and the camera frame."""
        if self.render_mode != "rgb_array" or self._renderer is None:
            return None
        st = self.vehicle.state
        p = self.config.vehicle
        return self._renderer.birdseye(
            st.x_m,
            st.y_m,
            st.yaw_rad,
            self._s,
            camera_image=self._last_image,
            route_end_s=self.route_end_s,
            vehicle_size=(p.length_m, p.width_m),
        )

    def close(self) -> None:
        """Releases the renderer; later ``reset``/``step`` are refused (safe to call twice)."""
        self._renderer = None
        self._closed = True

"""The configuration of the CARLA backend: one frozen dataclass, validated on construction.

Every field has a unit where one applies; a bad value is a :class:`CarlaConfigError` (a
``sim.spec.SimConfigError``, hence a ``ValueError``) naming the field and the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim import spec
from sim.carla.connection import CarlaConfigError
from sim.carla.suites import WEATHERS


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
    steering_calibration: str | None = None
    """Path of a measured steering calibration JSON (``tools/carla_check.py`` writes one,
    :mod:`sim.carla.calibration`): curvature is mapped to steer by interpolating it; None =
    the kinematic bicycle with the vehicle's steering curve."""

    def __post_init__(self) -> None:
        if not isinstance(self.camera, spec.CameraSpec):
            raise CarlaConfigError(f"camera must be a sim.spec.CameraSpec, got {self.camera!r}")
        if not 0 < self.port < 65536 or not 0 < self.tm_port < 65536:
            raise CarlaConfigError(
                f"ports must be in 1..65535, got port={self.port}, tm_port={self.tm_port}"
            )
        if self.timeout_s <= 0 or self.load_timeout_s <= 0 or self.sensor_timeout_s <= 0:
            raise CarlaConfigError(
                "timeouts must be positive, got "
                f"timeout_s={self.timeout_s}, load_timeout_s={self.load_timeout_s}, "
                f"sensor_timeout_s={self.sensor_timeout_s}"
            )
        lo_hz, hi_hz = spec.CARLA_CONTROL_RATE_RANGE_HZ
        if not lo_hz <= self.control_rate_hz <= hi_hz:
            raise CarlaConfigError(
                f"control_rate_hz must be in [{lo_hz:g}, {hi_hz:g}] (CARLA: fixed delta <= "
                f"0.1 s), got {self.control_rate_hz}"
            )
        if self.weather not in WEATHERS and not self.weather.endswith(("Night", "DustStorm")):
            raise CarlaConfigError(f"unknown CARLA weather {self.weather!r}; presets: {WEATHERS}")
        lo, hi = self.target_speed_range_mps
        if not 0 < lo <= hi:
            raise CarlaConfigError(
                f"target_speed_range_mps must be 0 < lo <= hi, got {self.target_speed_range_mps}"
            )
        if self.target_speed_mps is not None and self.target_speed_mps <= 0:
            raise CarlaConfigError(
                f"target_speed_mps must be positive, got {self.target_speed_mps}"
            )
        if self.route_length_m <= 0 or (self.max_time_s is not None and self.max_time_s <= 0):
            raise CarlaConfigError(
                "route_length_m and max_time_s must be positive, got "
                f"{self.route_length_m}, {self.max_time_s}"
            )
        if self.max_lateral_accel_mps2 <= 0:
            raise CarlaConfigError(
                f"max_lateral_accel_mps2 must be positive, got {self.max_lateral_accel_mps2}"
            )
        if self.departure_margin_m < 0 or self.max_curvature_per_m <= 0:
            raise CarlaConfigError(
                f"need departure_margin_m >= 0 and max_curvature_per_m > 0, got "
                f"{self.departure_margin_m}, {self.max_curvature_per_m}"
            )
        if not 0.0 <= self.image_noise_std <= 1.0:
            raise CarlaConfigError(f"image_noise_std must be in [0, 1], got {self.image_noise_std}")
        if self.frame_time_jitter != 0.0:
            raise CarlaConfigError(
                f"frame_time_jitter={self.frame_time_jitter}: the CARLA backend steps a fixed "
                "delta (fixed_delta_seconds); use control_rate_hz for rate changes"
            )
        if self.settle_time_s < 0 or self.max_spawn_attempts < 1:
            raise CarlaConfigError(
                f"need settle_time_s >= 0 and max_spawn_attempts >= 1, got "
                f"{self.settle_time_s}, {self.max_spawn_attempts}"
            )

    @property
    def dt_s(self) -> float:
        """CARLA's ``fixed_delta_seconds``, s."""
        return 1.0 / self.control_rate_hz

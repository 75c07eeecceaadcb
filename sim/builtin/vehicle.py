"""The car: a kinematic bicycle with a steering actuator and a cruise controller.

Model (reference point = centre of the rear axle, ISO 8855 frame):

* Steering: the commanded path curvature ``kappa`` becomes a road-wheel angle
  ``delta_cmd = atan(wheelbase * kappa)``, clipped to ``+-max_steer_rad``. The actual angle
  follows it through a first-order lag (time constant ``steer_time_constant_s``) whose rate is
  limited to ``max_steer_rate_radps``.
* Speed: a proportional cruise controller towards the target speed, with acceleration and
  braking limits.
* Motion: during a step the car drives an exact circular arc with the curvature
  ``tan(delta) / wheelbase`` of the mean steering angle over the step and the mean speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.spec import SimConfigError


@dataclass(frozen=True)
class VehicleParams:
    """Constants of the car, with units."""

    wheelbase_m: float = 2.7
    """Distance between the axles, m."""
    max_steer_rad: float = 0.55
    """Largest road-wheel angle, rad (about 31.5 degrees: a 4.4 m turning radius)."""
    max_steer_rate_radps: float = 0.8
    """Largest rate of change of the road-wheel angle, rad/s."""
    steer_time_constant_s: float = 0.08
    """Time constant of the first-order steering actuator lag, s."""
    max_accel_mps2: float = 2.5
    """Largest acceleration of the cruise controller, m/s^2."""
    max_decel_mps2: float = 6.0
    """Largest braking deceleration of the cruise controller, m/s^2."""
    speed_gain_per_s: float = 1.5
    """Proportional gain of the cruise controller, (m/s^2) per (m/s)."""
    length_m: float = 4.5
    """Body length (for drawing), m."""
    width_m: float = 1.8
    """Body width (for drawing), m."""

    def __post_init__(self) -> None:
        for name in (
            "wheelbase_m",
            "max_steer_rad",
            "max_steer_rate_radps",
            "max_accel_mps2",
            "max_decel_mps2",
            "speed_gain_per_s",
        ):
            if getattr(self, name) <= 0:
                raise SimConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.steer_time_constant_s < 0:
            raise SimConfigError(
                f"steer_time_constant_s must be >= 0, got {self.steer_time_constant_s}"
            )
        if self.max_steer_rad >= math.pi / 2:
            raise SimConfigError(f"max_steer_rad must be < pi/2, got {self.max_steer_rad}")

    @property
    def max_curvature_per_m(self) -> float:
        """Largest path curvature the car can drive, 1/m."""
        return math.tan(self.max_steer_rad) / self.wheelbase_m


@dataclass
class VehicleState:
    """Pose, speed and steering angle of the car (rear-axle reference point)."""

    x_m: float = 0.0
    y_m: float = 0.0
    yaw_rad: float = 0.0
    speed_mps: float = 0.0
    steer_rad: float = 0.0


class Vehicle:
    """A kinematic bicycle with actuator lag, steering-rate limit and cruise control."""

    def __init__(self, params: VehicleParams | None = None) -> None:
        self.params = params or VehicleParams()
        self.state = VehicleState()

    def reset(
        self, x_m: float, y_m: float, yaw_rad: float, speed_mps: float, steer_rad: float = 0.0
    ) -> None:
        """Places the car; the steering angle is clipped to the limit."""
        lim = self.params.max_steer_rad
        self.state = VehicleState(x_m, y_m, yaw_rad, speed_mps, min(max(steer_rad, -lim), lim))

    def steer_for_curvature(self, kappa: float) -> float:
        """Road-wheel angle for a path curvature, clipped to the car's limit, rad."""
        lim = self.params.max_steer_rad
        return min(max(math.atan(self.params.wheelbase_m * kappa), -lim), lim)

    def step(self, curvature_cmd: float, target_speed_mps: float, dt_s: float) -> float:
        """Advances the car by ``dt_s`` seconds.

        Args:
            curvature_cmd: Commanded path curvature, 1/m (already finite).
            target_speed_mps: Speed the cruise controller aims for, m/s.
            dt_s: Step length, s.

        Returns:
            The distance driven during the step, m.
        """
        p = self.params
        st = self.state
        delta_cmd = self.steer_for_curvature(curvature_cmd)
        # first-order lag towards the command, then the rate limit
        if p.steer_time_constant_s > 0.0:
            lagged = delta_cmd + (st.steer_rad - delta_cmd) * math.exp(
                -dt_s / p.steer_time_constant_s
            )
        else:
            lagged = delta_cmd
        max_change = p.max_steer_rate_radps * dt_s
        change = min(max(lagged - st.steer_rad, -max_change), max_change)
        steer_new = st.steer_rad + change
        # cruise control
        accel = min(
            max(p.speed_gain_per_s * (target_speed_mps - st.speed_mps), -p.max_decel_mps2),
            p.max_accel_mps2,
        )
        speed_new = max(st.speed_mps + accel * dt_s, 0.0)
        dist = 0.5 * (st.speed_mps + speed_new) * dt_s
        kappa = math.tan(0.5 * (st.steer_rad + steer_new)) / p.wheelbase_m
        dyaw = kappa * dist
        yaw = st.yaw_rad
        if abs(dyaw) < 1e-9:
            st.x_m += dist * math.cos(yaw + 0.5 * dyaw)
            st.y_m += dist * math.sin(yaw + 0.5 * dyaw)
        else:
            st.x_m += (math.sin(yaw + dyaw) - math.sin(yaw)) / kappa
            st.y_m += (math.cos(yaw) - math.cos(yaw + dyaw)) / kappa
        st.yaw_rad = math.remainder(yaw + dyaw, math.tau)
        st.speed_mps = speed_new
        st.steer_rad = steer_new
        return dist

    @property
    def curvature_per_m(self) -> float:
        """Path curvature of the current steering angle, 1/m."""
        return math.tan(self.state.steer_rad) / self.params.wheelbase_m

"""The privileged expert: pure pursuit on the right-lane centre.

It reads the true vehicle pose and the road from the environment (it is privileged; a
policy never sees these) and aims at the lane-centre point a speed-dependent look-ahead
distance ahead: ``ld = clip(ld_min + ld_gain * v, ld_min, ld_max)``. The pursuit curvature
is ``kappa = 2 * y_t / (x_t^2 + y_t^2)`` for the target at (x_t, y_t) in the vehicle frame.

To compensate the steering actuator's lag it plans from the pose the car will reach after
``lag_s`` seconds on its current curvature. It satisfies the contract's ``Driver`` protocol
(``sim/spec.py``): ``reset() -> None`` and ``act(obs, state) -> (curvature (1,), state)``.
It reads the world through :class:`PrivilegedWorld`, the part of the env it needs, so it
does not import the env (which creates it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from sim.builtin.roads import Road
from sim.builtin.vehicle import Vehicle
from sim.spec import SimConfigError


class PrivilegedWorld(Protocol):
    """The ground truth the expert reads: the car, the road and the lane it keeps."""

    vehicle: Vehicle
    """The simulated car (true pose, speed, steering angle)."""
    road: Road | None
    """The episode's road (None before the first reset)."""
    road_index: int
    """Index of the car's last projection on the road (a search hint)."""
    lane_offset_m: float
    """Lateral offset of the driven lane's centre from the road centreline, m."""


@dataclass(frozen=True)
class ExpertConfig:
    """Gains of the pure-pursuit expert."""

    lookahead_min_m: float = 4.0
    """Shortest look-ahead distance, m."""
    lookahead_gain_s: float = 0.25
    """Look-ahead added per m/s of speed, s."""
    lookahead_max_m: float = 12.0
    """Longest look-ahead distance, m."""
    lag_s: float = 0.1
    """Prediction horizon that compensates the steering actuator lag, s."""

    def __post_init__(self) -> None:
        if not 0 < self.lookahead_min_m <= self.lookahead_max_m:
            raise SimConfigError(
                "need 0 < lookahead_min_m <= lookahead_max_m, got "
                f"{self.lookahead_min_m}, {self.lookahead_max_m}"
            )
        if self.lookahead_gain_s < 0 or self.lag_s < 0:
            raise SimConfigError(f"gains must be >= 0, got {self.lookahead_gain_s}, {self.lag_s}")


class PurePursuitExpert:
    """Pure pursuit on the ego lane centre of the builtin world (privileged)."""

    def __init__(self, env: PrivilegedWorld, config: ExpertConfig | None = None) -> None:
        self.env = env
        self.config = config or ExpertConfig()

    def reset(self) -> None:
        """Stateless: returns ``None``."""
        return None

    def curvature(self) -> float:
        """The expert's curvature command for the env's current state, 1/m."""
        st = self.env.vehicle.state
        return self.curvature_at(st.x_m, st.y_m, st.yaw_rad)

    def curvature_at(self, x_m: float, y_m: float, yaw_rad: float) -> float:
        """The expert's command if the car stood at pose (x, y, yaw), 1/m.

        The car's speed and steering angle are the real ones; only the pose differs. The
        recovery views (:mod:`sim.builtin.recovery`) label their shifted poses with it, and
        :meth:`curvature` is it at the true pose.
        """
        env = self.env
        if env.road is None:
            raise RuntimeError("the expert needs a road: call env.reset() first")
        st = env.vehicle.state
        return pursuit_curvature(
            env.road,
            env.road_index,
            env.lane_offset_m,
            (x_m, y_m, yaw_rad),
            st.speed_mps,
            math.tan(st.steer_rad) / env.vehicle.params.wheelbase_m,
            self.config,
        )

    def act(self, obs: Any, state: Any) -> tuple[np.ndarray, None]:
        """Returns the curvature command (float32 (1,), 1/m) and ``None`` as state."""
        return np.array([self.curvature()], dtype=np.float32), None


def pursuit_curvature(
    road: Road,
    road_index: int,
    lane_offset_m: float,
    pose: tuple[float, float, float],
    speed_mps: float,
    curvature_now_per_m: float,
    config: ExpertConfig,
) -> float:
    """The expert's control law: pure-pursuit curvature from a pose, 1/m (+ = left).

    Args:
        road: The road.
        road_index: Search hint for the projection on the road (the car's last index).
        lane_offset_m: Lateral offset of the driven lane's centre from the centreline, m.
        pose: (x_m, y_m, yaw_rad) of the rear axle centre, world frame.
        speed_mps: Forward speed, m/s.
        curvature_now_per_m: Curvature of the current steering angle, 1/m (lag prediction).
        config: The gains.
    """
    x0, y0, yaw0 = pose
    v, cfg = speed_mps, config
    # predicted pose after the actuator lag, on the current curvature
    d = v * cfg.lag_s
    k_now = curvature_now_per_m
    yaw = yaw0 + k_now * d
    x = x0 + d * math.cos(yaw0 + 0.5 * k_now * d)
    y = y0 + d * math.sin(yaw0 + 0.5 * k_now * d)
    _, s, _, _, _ = road.project(x, y, road_index)
    ld = min(
        max(cfg.lookahead_min_m + cfg.lookahead_gain_s * v, cfg.lookahead_min_m),
        cfg.lookahead_max_m,
    )
    tx, ty, _ = road.locate_scalar(s + ld, lane_offset_m)
    dx, dy = tx - x, ty - y
    c, sn = math.cos(yaw), math.sin(yaw)
    xl = c * dx + sn * dy
    yl = -sn * dx + c * dy
    return 2.0 * yl / max(xl * xl + yl * yl, 1e-6)

"""The privileged CARLA expert: pure pursuit on the route's lane-centre waypoints.

The route (planned by the environment at reset) walks ``Waypoint.next`` and takes a
uniformly random branch wherever a junction offers several, seeded by the episode's seed;
so the expert "turns at random" at junctions and the recorded data cover left, right and
straight through. The expert steers the rear axle towards the lane-centre point a
speed-dependent lookahead ahead of its projection: ``kappa = 2 * y / L**2`` with ``(x, y)``
the target in the vehicle frame and ``L`` its distance. It satisfies the ``Driver`` protocol
(``reset()``, ``act(obs, state) -> (float32 (1,) curvature, state)``) and reads the pose and
route from the environment, never from the observation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.carla.connection import CarlaConfigError


@dataclass(frozen=True)
class PurePursuitConfig:
    """Lookahead of the pure-pursuit expert.

    Chosen on the test stand-in (kinematic car) over real OpenDRIVE bends of radius 32-42 m:
    at 7-10 m/s the expert stays within 0.25-0.37 m of the lane centre (4 m + 0.8 s cut the
    corners by up to 0.84 m). Not yet tuned against a real server's vehicle dynamics.
    """

    lookahead_min_m: float = 3.0
    """Lookahead at standstill, m."""
    lookahead_time_s: float = 0.5
    """Extra lookahead per m/s of speed, s."""
    lookahead_max_m: float = 12.0
    """Largest lookahead, m."""

    def __post_init__(self) -> None:
        if not 0 < self.lookahead_min_m <= self.lookahead_max_m or self.lookahead_time_s < 0:
            raise CarlaConfigError(
                "need 0 < lookahead_min_m <= lookahead_max_m and lookahead_time_s >= 0, got "
                f"{self.lookahead_min_m}, {self.lookahead_max_m}, {self.lookahead_time_s}"
            )


class CarlaExpert:
    """Pure pursuit on the episode's route of a :class:`sim.carla.env.CarlaDrivingEnv`.

    Args:
        env: The environment (unwrapped) whose route and vehicle state are read.
        config: Lookahead settings.
    """

    def __init__(self, env: Any, config: PurePursuitConfig | None = None) -> None:
        self.env = env
        self.config = config or PurePursuitConfig()

    def reset(self) -> None:
        """The expert is stateless."""
        return None

    def act(self, obs: Any, state: Any) -> tuple[np.ndarray, Any]:
        """Returns the pure-pursuit curvature (1/m, float32 (1,)) and the unchanged state."""
        cfg, veh, route = self.config, self.env.vehicle_state, self.env.route
        lookahead = min(
            cfg.lookahead_min_m + cfg.lookahead_time_s * veh.speed_mps, cfg.lookahead_max_m
        )
        tx, ty, _ = route.point_at(veh.projection.s_m + lookahead)
        dx, dy = tx - veh.x_m, ty - veh.y_m
        c, s = math.cos(veh.yaw_rad), math.sin(veh.yaw_rad)
        x_v, y_v = c * dx + s * dy, -s * dx + c * dy
        dist2 = max(x_v * x_v + y_v * y_v, 1e-6)
        kappa = 2.0 * y_v / dist2
        limit = self.env.max_curvature_per_m
        return np.array([min(max(kappa, -limit), limit)], dtype=np.float32), state

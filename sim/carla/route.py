"""A route along lane-centre waypoints, in our frame, its junctions, and projecting onto it.

The environment plans one route per episode over the map's lane graph
(:mod:`sim.carla.planner`). Every privileged quantity of the contract (lateral offset,
heading error, road curvature, progress, lane half width) is measured against this route, so
the expert and the metrics agree on which way the car should go through a junction; the
route's junctions carry the command the car is given before and inside each
(:meth:`Route.command_at`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liquid_drive.errors import LiquidDriveError
from sim import spec
from sim.carla.convert import wrap_angle


class RouteError(LiquidDriveError, RuntimeError):
    """The map gave no usable route from the start waypoint."""


@dataclass(frozen=True)
class RouteJunction:
    """One junction a route passes, and the branch it takes there."""

    index: int
    """Position among the route's junctions (0-based, route order): ``info["junction"]``."""
    junction_id: int
    """The map's id of the junction (``Waypoint.junction_id``)."""
    entry_s_m: float
    """Route arc length where the route enters the junction, m."""
    exit_s_m: float
    """Route arc length where it leaves the junction, m."""
    command: spec.Command
    """``LEFT``, ``RIGHT`` or ``STRAIGHT``: the branch the route takes."""


@dataclass(frozen=True)
class Projection:
    """The vehicle reference point projected onto the route."""

    index: int
    """Index of the route segment ``[index, index + 1]`` holding the projection."""
    s_m: float
    """Arc length along the route at the projection, m."""
    lateral_offset_m: float
    """Signed distance from the lane centre, m, positive = left of it."""
    heading_error_rad: float
    """Vehicle yaw minus lane heading, rad, wrapped, positive = pointing left."""
    road_curvature: float
    """Curvature of the lane centre at the projection, 1/m, positive = bends left."""
    lane_half_width_m: float
    """Half the width of the lane at the projection, m."""
    x_m: float
    """Our-frame x of the projected point on the lane centre, m."""
    y_m: float
    """Our-frame y of the projected point on the lane centre, m."""
    yaw_rad: float
    """Lane heading at the projection, rad."""


class Route:
    """A polyline of lane-centre points with arc length, heading, curvature and lane width.

    Args:
        x_m, y_m: Lane-centre points in our frame, m, at least two, distinct neighbours.
        half_width_m: Half the lane width at each point, m.
        junction: Whether each point lies inside a junction.
        junctions: The junctions the route passes, in order (none: a road without junctions).
        curvature_window_m: Arc length over which the heading is differentiated for the
            curvature, m (waypoints are piecewise, so a point difference is noisy).
    """

    def __init__(
        self,
        x_m: np.ndarray,
        y_m: np.ndarray,
        half_width_m: np.ndarray,
        junction: np.ndarray,
        junctions: tuple[RouteJunction, ...] = (),
        curvature_window_m: float = 4.0,
    ) -> None:
        self.x = np.asarray(x_m, dtype=np.float64)
        self.y = np.asarray(y_m, dtype=np.float64)
        if self.x.shape != self.y.shape or self.x.ndim != 1 or self.x.size < 2:
            raise RouteError(f"a route needs at least two points, got {self.x.size}")
        seg = np.hypot(np.diff(self.x), np.diff(self.y))
        if np.any(seg <= 1e-6):
            raise RouteError("route has repeated points")
        self.half_width = np.asarray(half_width_m, dtype=np.float64)
        self.junction = np.asarray(junction, dtype=bool)
        self.junctions = tuple(junctions)
        self.s = np.concatenate([[0.0], np.cumsum(seg)])
        seg_yaw = np.arctan2(np.diff(self.y), np.diff(self.x))
        self.seg_yaw = seg_yaw
        # Unwrapped heading per point (segment headings averaged at the joints).
        unwrapped = np.unwrap(seg_yaw)
        pt_yaw = np.concatenate(
            [[unwrapped[0]], (unwrapped[:-1] + unwrapped[1:]) / 2, [unwrapped[-1]]]
        )
        self._yaw_unwrapped = pt_yaw
        half = curvature_window_m / 2.0
        lo = np.interp(self.s - half, self.s, pt_yaw)
        hi = np.interp(self.s + half, self.s, pt_yaw)
        span = np.minimum(self.s + half, self.s[-1]) - np.maximum(self.s - half, 0.0)
        self.curvature = np.where(span > 0, (hi - lo) / np.maximum(span, 1e-9), 0.0)

    @property
    def length_m(self) -> float:
        """Total arc length, m."""
        return float(self.s[-1])

    def bend_speed_limit(
        self, s_m: float, horizon_m: float, max_lateral_accel_mps2: float
    ) -> float:
        """Highest speed keeping ``v**2 * |curvature|`` within a lateral-acceleration limit.

        Args:
            s_m: Arc length of the vehicle's projection, m.
            horizon_m: How far ahead to look, m.
            max_lateral_accel_mps2: The limit, m/s^2.

        Returns:
            The speed, m/s (infinite when the route ahead is straight).
        """
        i0, i1 = np.searchsorted(self.s, [s_m, s_m + horizon_m])
        kappa = float(np.abs(self.curvature[i0 : max(i1, i0 + 1)]).max(initial=0.0))
        return math.sqrt(max_lateral_accel_mps2 / kappa) if kappa > 1e-9 else math.inf

    @property
    def commands(self) -> tuple[spec.Command, ...]:
        """The command of each junction, in route order (reset info ``route_commands``)."""
        return tuple(j.command for j in self.junctions)

    def command_at(
        self, s_m: float, lead_m: float = spec.COMMAND_LEAD_M
    ) -> tuple[int, spec.Command]:
        """The junction whose command is active at arc length ``s_m``, and the command.

        A junction's command is active from ``lead_m`` before its entry until the route
        leaves it; where two windows overlap the earlier junction keeps it until the car has
        left that junction.

        Returns:
            ``(index, command)``, or ``(-1, FOLLOW_LANE)`` where no junction's is active.
        """
        for j in self.junctions:
            if j.entry_s_m - lead_m <= s_m < j.exit_s_m:
                return j.index, j.command
        return -1, spec.Command.FOLLOW_LANE

    def point_at(self, s_m: float) -> tuple[float, float, float]:
        """Our-frame ``(x, y, yaw)`` of the lane centre at arc length ``s_m`` (clamped)."""
        s = min(max(s_m, 0.0), self.length_m)
        x = float(np.interp(s, self.s, self.x))
        y = float(np.interp(s, self.s, self.y))
        yaw = wrap_angle(float(np.interp(s, self.s, self._yaw_unwrapped)))
        return x, y, yaw

    def project(
        self, x_m: float, y_m: float, yaw_rad: float, hint: int = 0, window_m: float = 60.0
    ) -> Projection:
        """Projects a pose onto the route near segment ``hint``.

        Only segments from 5 m behind segment ``hint`` to ``window_m`` ahead of it are
        searched, so a route that passes the same place twice (a loop, a crossing) is
        followed in order.
        """
        n = self.x.size - 1
        hint = min(max(hint, 0), n - 1)
        lo = max(int(np.searchsorted(self.s, self.s[hint] - 5.0)) - 1, 0)
        hi = min(int(np.searchsorted(self.s, self.s[hint] + window_m)) + 1, n)
        ax, ay = self.x[lo:hi], self.y[lo:hi]
        dx, dy = self.x[lo + 1 : hi + 1] - ax, self.y[lo + 1 : hi + 1] - ay
        seg_len2 = dx * dx + dy * dy
        t = np.clip(((x_m - ax) * dx + (y_m - ay) * dy) / seg_len2, 0.0, 1.0)
        px, py = ax + t * dx, ay + t * dy
        d2 = (x_m - px) ** 2 + (y_m - py) ** 2
        k = int(np.argmin(d2))
        i = lo + k
        seg_len = math.sqrt(seg_len2[k])
        tx, ty = dx[k] / seg_len, dy[k] / seg_len
        # Positive when the point is left of the direction of travel (z of t x d).
        lateral = tx * (y_m - py[k]) - ty * (x_m - px[k])
        s = float(self.s[i] + t[k] * seg_len)
        lane_yaw = self.point_at(s)[2]
        return Projection(
            index=i,
            s_m=s,
            lateral_offset_m=float(lateral),
            heading_error_rad=wrap_angle(yaw_rad - lane_yaw),
            road_curvature=float(np.interp(s, self.s, self.curvature)),
            lane_half_width_m=float(np.interp(s, self.s, self.half_width)),
            x_m=float(px[k]),
            y_m=float(py[k]),
            yaw_rad=lane_yaw,
        )

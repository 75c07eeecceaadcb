"""Recovery views: the camera rendered from poses beside the car's, each with its own label.

NVIDIA's PilotNet recorded two extra cameras beside the centre one and labelled their frames
with the steering that would bring the car back to the lane centre; the CfC driving work
synthesised such views. In our own simulator they are exact: each step the renderer draws
the frame seen from the car's pose shifted sideways by ``lateral`` (m, + = left, along the
lane normal) and turned by ``yaw`` (rad, + = left), and the label is the expert's own control
law (:func:`sim.builtin.expert.pursuit_curvature`) evaluated at that pose, with the car's
real speed and steering angle. A view with zero offset gets exactly the true label.

The offsets are temporally consistent so that a training window of a view is a plausible
trajectory: each view holds a random target offset (uniform in ``+-max_lateral_m`` and
``+-max_yaw_deg``, independently) for ``hold_s`` seconds, then moves to the next target along
a smooth ramp (``3u^2 - 2u^3`` over ``ramp_s``), so offsets are continuous with a continuous
rate and any window sees a held or smoothly varied offset. The targets and the views' sensor
noise come from their own random stream seeded from the episode seed, so the car's own frames
and trajectory are bit-identical with the views on or off.

The views are privileged (the policy never sees them): they are info entries
(``sim.spec.RECOVERY_*``), present only when the option is on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.spec import SimConfigError

MAX_VIEWS = 8
"""Upper bound of :attr:`RecoveryViews.views`."""
_STREAM = 0x5EC0_7E55
"""Tag of the recovery views' random stream (with the episode seed)."""


@dataclass(frozen=True)
class RecoveryViews:
    """Extra camera views from shifted and rotated poses, labelled by the expert (0 = off)."""

    views: int = 0
    """Extra views rendered per step (0 = off)."""
    max_lateral_m: float = 1.0
    """Largest sideways offset of a view from the car, m; must stay within the lane."""
    max_yaw_deg: float = 6.0
    """Largest yaw offset of a view from the car, degrees."""
    hold_s: float = 3.0
    """Each view draws a fresh target offset every this many seconds, s."""
    ramp_s: float = 1.5
    """Time a view takes to move smoothly to its next target offset, s (<= hold_s)."""

    def __post_init__(self) -> None:
        if isinstance(self.views, bool) or not 0 <= int(self.views) <= MAX_VIEWS:
            raise SimConfigError(f"recovery views must be in [0, {MAX_VIEWS}], got {self.views}")
        if not (math.isfinite(self.max_lateral_m) and self.max_lateral_m >= 0):
            raise SimConfigError(
                f"recovery max_lateral_m must be finite and >= 0, got {self.max_lateral_m}"
            )
        if not (math.isfinite(self.max_yaw_deg) and 0 <= self.max_yaw_deg <= 30.0):
            raise SimConfigError(f"recovery max_yaw_deg must be in [0, 30], got {self.max_yaw_deg}")
        if not (math.isfinite(self.hold_s) and self.hold_s > 0):
            raise SimConfigError(f"recovery hold_s must be positive, got {self.hold_s}")
        if not (math.isfinite(self.ramp_s) and 0 <= self.ramp_s <= self.hold_s):
            raise SimConfigError(
                f"recovery ramp_s must be in [0, hold_s={self.hold_s}], got {self.ramp_s}"
            )

    def check_lane(self, lane_half_width_m: float, where: str) -> None:
        """Refuses a lateral offset that would put a view's camera beyond the lane.

        A view of a car on the lane centre must stay inside the lane's edges, so
        ``max_lateral_m`` may not exceed the narrowest lane half width.

        Args:
            lane_half_width_m: The narrowest lane half width the views may see, m.
            where: What that lane is (named in the message, e.g. ``"town 'suburb'"``).

        Raises:
            SimConfigError: Naming the value and the limit.
        """
        if self.views and self.max_lateral_m > lane_half_width_m:
            raise SimConfigError(
                f"recovery max_lateral_m={self.max_lateral_m} m is beyond the lane: the lanes "
                f"of {where} are as narrow as {2 * lane_half_width_m:.2f} m, so a view may be "
                f"shifted at most {lane_half_width_m:.2f} m from the lane centre"
            )

    def to_dict(self) -> dict[str, float | int]:
        """Plain-JSON form (recorded in episode metadata)."""
        return {
            "views": int(self.views),
            "max_lateral_m": float(self.max_lateral_m),
            "max_yaw_deg": float(self.max_yaw_deg),
            "hold_s": float(self.hold_s),
            "ramp_s": float(self.ramp_s),
        }


def _smoothstep(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


class OffsetSchedule:
    """The views' offsets over an episode: held random targets joined by smooth ramps.

    Args:
        config: The views' settings.
        seed: The episode seed (the stream is ``(seed, tag)``, apart from the env's own).
    """

    def __init__(self, config: RecoveryViews, seed: int) -> None:
        self.config = config
        self.rng = np.random.default_rng([int(seed) & 0xFFFF_FFFF, _STREAM])
        self.noise_rng = np.random.default_rng([int(seed) & 0xFFFF_FFFF, _STREAM, 1])
        """Source of the views' sensor noise and rain (apart from the offsets' stream)."""
        self._limits = np.array([config.max_lateral_m, math.radians(config.max_yaw_deg)])
        self._targets: list[np.ndarray] = []  # segment j -> (K, 2) lateral m, yaw rad

    def _target(self, j: int) -> np.ndarray:
        while len(self._targets) <= j:  # drawn in segment order: independent of the queries
            u = self.rng.uniform(-1.0, 1.0, size=(self.config.views, 2))
            self._targets.append(u * self._limits)
        return self._targets[j]

    def offsets(self, t_s: float) -> np.ndarray:
        """(K, 2) float64 offsets at time ``t_s``: lateral m (+ = left), yaw rad (+ = left)."""
        cfg = self.config
        j = max(math.floor(t_s / cfg.hold_s), 0)
        now = self._target(j)
        if j == 0:
            return now.copy()
        before = self._target(j - 1)
        w = _smoothstep((t_s - j * cfg.hold_s) / cfg.ramp_s) if cfg.ramp_s > 0 else 1.0
        return before + (now - before) * w


def shifted_pose(
    pose: tuple[float, float, float], lane_heading_rad: float, lateral_m: float, yaw_rad: float
) -> tuple[float, float, float]:
    """The pose ``lateral_m`` to the left of ``pose`` along the lane normal, turned ``yaw_rad``."""
    x, y, yaw = pose
    return (
        x - math.sin(lane_heading_rad) * lateral_m,
        y + math.cos(lane_heading_rad) * lateral_m,
        yaw + yaw_rad,
    )


@dataclass
class RecoveryFrame:
    """The views of one step."""

    images: np.ndarray
    """uint8 (K, H, W, 3) RGB frames of the views."""
    offsets: np.ndarray
    """float64 (K, 2): lateral offset m (+ = left), yaw offset rad (+ = left)."""
    labels: np.ndarray
    """float64 (K,): the expert's curvature at each view's pose, 1/m (+ = left)."""


def render_views(
    schedule: OffsetSchedule,
    t_s: float,
    pose: tuple[float, float, float],
    lane_heading_rad: float,
    render: Callable[[float, float, float, np.random.Generator], np.ndarray],
    label: Callable[[float, float, float], float],
) -> RecoveryFrame:
    """Renders and labels every view of one step.

    Args:
        schedule: The episode's offsets.
        t_s: Simulation time of the step, s.
        pose: The car's (x_m, y_m, yaw_rad).
        lane_heading_rad: Heading of the lane at the car's projection, rad.
        render: ``f(x, y, yaw, rng) -> uint8 (H, W, 3)``, the camera frame from a pose (the
            same renderer as the car's; ``rng`` for its noise).
        label: ``f(x, y, yaw) -> curvature`` 1/m, the expert's law at a pose.
    """
    offsets = schedule.offsets(t_s)  # (K, 2)
    images, labels = [], np.empty(len(offsets))
    for k, (lateral, yaw) in enumerate(offsets):
        x, y, h = shifted_pose(pose, lane_heading_rad, float(lateral), float(yaw))
        images.append(render(x, y, h, schedule.noise_rng))
        labels[k] = label(x, y, h)
    return RecoveryFrame(np.stack(images), offsets, labels)

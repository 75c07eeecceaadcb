"""The contract every simulator follows and every driver relies on.

Both the builtin simulator and the CARLA backend implement it, so a policy trained in one
can be evaluated in the other and the recording and evaluation code never branch on the
simulator.

Conventions:
    * SI units everywhere; names carry units where it helps (``speed_mps``, ``t_s``).
    * Vehicle frame ISO 8855: x forward, y left, z up; yaw counter-clockwise positive.
    * The vehicle pose is the centre of the rear axle (the kinematic bicycle's reference).

Observation (a dict, what a policy may see):
    * ``image``: uint8 (H, W, 3) RGB from the forward camera described by :class:`CameraSpec`.
    * ``speed_mps``: float32 (1,), forward speed in m/s.
    * ``t_s``: float64 (1,), simulation time in seconds. Policies derive their elapsed-time
      input from differences of ``t_s``, never from an assumed control rate.

Action:
    float32 (1,), the path curvature kappa in 1/m, positive = turning left. It is
    vehicle-independent; each simulator converts it to its own steering and clips it to the
    car's limit (:func:`action_space`). A NaN or infinite action is an error.

Info (privileged ground truth for experts and metrics, never for the policy): see the
``INFO_*`` keys below.

Episode end:
    * ``terminated`` when the car leaves its lane (``|lateral_offset_m| > lane_half_width_m +
      departure margin``) or collides.
    * ``truncated`` at the end of the route or at the time limit.
    * In intervention mode a departure instead sets ``info["intervention"] = True``, the car is
      put back on the lane centre (heading along the lane) and the route continues.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

# ---------------------------------------------------------------------------------------------
# Observation keys
IMAGE = "image"
SPEED_MPS = "speed_mps"
T_S = "t_s"

# ---------------------------------------------------------------------------------------------
# Info keys (privileged)
INFO_LATERAL_OFFSET_M = "lateral_offset_m"
"""Signed distance of the vehicle reference point from its lane centre, m, positive = left."""
INFO_HEADING_ERROR_RAD = "heading_error_rad"
"""Vehicle yaw minus lane heading, rad, wrapped to (-pi, pi], positive = pointing left."""
INFO_ROAD_CURVATURE = "road_curvature"
"""Curvature of the lane centre at the vehicle's projection, 1/m, positive = bends left."""
INFO_PROGRESS_M = "progress_m"
"""Arc length driven along the route since the episode start, m."""
INFO_LANE_HALF_WIDTH_M = "lane_half_width_m"
"""Half the width of the current lane, m."""
INFO_POSE = "pose"
"""(x_m, y_m, yaw_rad) of the vehicle in the world frame, a tuple of floats."""
INFO_TOWN = "town"
INFO_WEATHER = "weather"
INFO_CURVATURE_APPLIED = "curvature_applied"
"""Curvature the car actually executed this step (after noise injection and clipping), 1/m."""
INFO_NOISE_ACTIVE = "noise_active"
"""True while injected steering noise is active (set by the noise wrapper)."""
INFO_INTERVENTION = "intervention"
"""True on a step where a lane departure was counted and the car was reset to the lane centre."""
INFO_COLLISION = "collision"
"""True on a step where the vehicle collided with something."""
INFO_ROUTE_LENGTH_M = "route_length_m"
"""Total length of the route for this episode, m."""

# ---------------------------------------------------------------------------------------------
# Timing
CONTROL_RATE_HZ = 20.0
"""Default control rate; CARLA's ``fixed_delta_seconds`` is ``1 / CONTROL_RATE_HZ``."""
DT_S = 1.0 / CONTROL_RATE_HZ


@dataclass(frozen=True)
class CameraSpec:
    """Forward RGB camera, shared by every simulator so that policies transfer.

    The default is the NCP paper's network input: 200 px wide by 78 px high.
    """

    width_px: int = 200
    """Image width in pixels."""
    height_px: int = 78
    """Image height in pixels."""
    hfov_deg: float = 70.0
    """Horizontal field of view in degrees."""
    mount_height_m: float = 1.4
    """Height of the optical centre above the ground, m."""
    pitch_deg: float = 6.0
    """Downward pitch of the optical axis, degrees (positive = looking down)."""
    forward_offset_m: float = 1.6
    """Distance of the camera ahead of the vehicle reference point (rear axle), m."""

    def __post_init__(self) -> None:
        if self.width_px <= 0 or self.height_px <= 0:
            raise ValueError(f"camera size must be positive, got {self.width_px}x{self.height_px}")
        if not 10.0 <= self.hfov_deg <= 170.0:
            raise ValueError(f"hfov_deg must be in [10, 170], got {self.hfov_deg}")
        if self.mount_height_m <= 0:
            raise ValueError(f"mount_height_m must be positive, got {self.mount_height_m}")

    @property
    def focal_px(self) -> float:
        """Focal length in pixels, from the width and horizontal field of view."""
        return (self.width_px / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, stored in dataset and checkpoint metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CameraSpec:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return cls(**d)


def observation_space(
    camera: CameraSpec, max_speed_mps: float = 60.0, max_time_s: float = 1.0e6
) -> spaces.Dict:
    """The observation space of every simulator for a camera spec.

    ``max_time_s`` bounds ``t_s``; it is finite so that gymnasium's ``check_env`` does not warn
    about an infinite Box bound.
    """
    return spaces.Dict(
        {
            IMAGE: spaces.Box(0, 255, (camera.height_px, camera.width_px, 3), np.uint8),
            SPEED_MPS: spaces.Box(0.0, max_speed_mps, (1,), np.float32),
            T_S: spaces.Box(0.0, max_time_s, (1,), np.float64),
        }
    )


def action_space(max_curvature_per_m: float) -> spaces.Box:
    """The action space: one path curvature in 1/m, symmetric about zero."""
    k = np.float32(max_curvature_per_m)
    return spaces.Box(-k, k, (1,), np.float32)


def check_action(action: Any, max_curvature_per_m: float) -> float:
    """Validates an action and returns the curvature clipped to the car's limit.

    Args:
        action: A scalar or a one-element array, curvature in 1/m.
        max_curvature_per_m: The car's curvature limit, 1/m.

    Returns:
        The curvature as a float in ``[-max_curvature_per_m, max_curvature_per_m]``.

    Raises:
        ValueError: If the action is not a single finite number.
    """
    arr = np.asarray(action, dtype=np.float64).reshape(-1)
    if arr.size != 1:
        raise ValueError(f"action must be one curvature in 1/m, got shape {np.shape(action)}")
    kappa = float(arr[0])
    if not math.isfinite(kappa):
        raise ValueError(f"action must be a finite curvature in 1/m, got {kappa}")
    return min(max(kappa, -max_curvature_per_m), max_curvature_per_m)

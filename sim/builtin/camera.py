"""The pinhole camera: ground-plane homography and projection of 3-D points.

Frames: the vehicle frame is ISO 8855 (x forward, y left, z up, origin at the rear axle on
the ground). The camera frame is the usual computer-vision one (x right, y down, z along the
optical axis). The camera sits ``forward_offset_m`` ahead of the rear axle at
``mount_height_m``, pitched down by ``pitch_deg`` and optionally yawed (pose jitter).

For the flat ground ``z = 0`` a vehicle-frame point ``(X, Y, 0)`` maps to the pixel
``G @ (X, Y, 1)`` with ``G = K [r1 r2 -R C]`` (``r1``, ``r2`` the first two columns of the
vehicle-to-camera rotation ``R``, ``C`` the camera centre). Its inverse ``M = G^-1`` maps a
pixel to the ground point it sees: one 3x3 matrix per frame turns a top-down texture into
the perspective view (``cv2.warpPerspective``).
"""

from __future__ import annotations

import math

import numpy as np

from sim.spec import CameraSpec, SimConfigError


class CameraModel:
    """A :class:`~sim.spec.CameraSpec` at a given supersampling factor and pose jitter.

    Args:
        spec: The camera spec (size, field of view, mount).
        supersample: Render at this many times the spec's width and height.
        pitch_offset_rad: Extra downward pitch (pose jitter), rad.
        yaw_offset_rad: Extra yaw to the left (pose jitter), rad.
        height_offset_m: Extra mount height (pose jitter), m.
    """

    def __init__(
        self,
        spec: CameraSpec,
        supersample: int = 1,
        pitch_offset_rad: float = 0.0,
        yaw_offset_rad: float = 0.0,
        height_offset_m: float = 0.0,
    ) -> None:
        if supersample < 1:
            raise SimConfigError(f"supersample must be >= 1, got {supersample}")
        self.spec = spec
        self.ss = int(supersample)
        self.width = spec.width_px * self.ss
        self.height = spec.height_px * self.ss
        self.f = spec.focal_px * self.ss
        self.cx = (self.width - 1) / 2.0
        self.cy = (self.height - 1) / 2.0
        self.pitch = math.radians(spec.pitch_deg) + pitch_offset_rad
        self.yaw = yaw_offset_rad
        self.h = spec.mount_height_m + height_offset_m
        if self.h <= 0.05:
            raise SimConfigError(f"camera height must stay above 5 cm, got {self.h} m")
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        cy_, sy_ = math.cos(self.yaw), math.sin(self.yaw)
        z_c = np.array([cp * cy_, cp * sy_, -sp])  # optical axis in the vehicle frame
        x_c = np.array([sy_, -cy_, 0.0])  # image right
        y_c = np.cross(z_c, x_c)  # image down
        self.R = np.stack([x_c, y_c, z_c])  # vehicle -> camera rotation
        self.C = np.array([spec.forward_offset_m, 0.0, self.h])
        self.K = np.array([[self.f, 0.0, self.cx], [0.0, self.f, self.cy], [0.0, 0.0, 1.0]])
        G = self.K @ np.column_stack([self.R[:, 0], self.R[:, 1], -self.R @ self.C])
        self.G = G / G[2, 2] if abs(G[2, 2]) > 1e-12 else G
        """Homography vehicle ground (X, Y, 1) -> pixel (u, v, 1)."""
        self.M = np.linalg.inv(self.G)
        """Homography pixel (u, v, 1) -> vehicle ground (X, Y, 1)."""

    @property
    def horizon_row(self) -> float:
        """Image row of the horizon (rays parallel to the ground), px."""
        return self.cy - self.f * math.tan(self.pitch)

    def row_at_distance(self, distance_m: float) -> float:
        """Image row of ground points ``distance_m`` ahead of the camera (on the axis), px."""
        depression = math.atan2(self.h, distance_m)
        return self.cy + self.f * math.tan(depression - self.pitch)

    def ground_points(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vehicle-frame ground points (X, Y) seen by pixels (u, v); NaN above the horizon."""
        u = np.asarray(u, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        M = self.M
        w = M[2, 0] * u + M[2, 1] * v + M[2, 2]
        X = (M[0, 0] * u + M[0, 1] * v + M[0, 2]) / w
        Y = (M[1, 0] * u + M[1, 1] * v + M[1, 2]) / w
        ahead = (
            self.R[2, 0] * (X - self.C[0]) + self.R[2, 1] * (Y - self.C[1]) - self.R[2, 2] * self.h
        )
        bad = ~(ahead > 0)  # rays above the horizon meet the ground behind the camera
        X = np.where(bad, np.nan, X)
        Y = np.where(bad, np.nan, Y)
        return X, Y

    def project(
        self, X: np.ndarray, Y: np.ndarray, Z: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Projects vehicle-frame points to pixels.

        Returns:
            (u, v, depth) with depth along the optical axis in m (points behind the camera
            have depth <= 0 and meaningless u, v).
        """
        dx = np.asarray(X, dtype=np.float64) - self.C[0]
        dy = np.asarray(Y, dtype=np.float64) - self.C[1]
        dz = np.asarray(Z, dtype=np.float64) - self.C[2]
        R = self.R
        xc = R[0, 0] * dx + R[0, 1] * dy + R[0, 2] * dz
        yc = R[1, 0] * dx + R[1, 1] * dy + R[1, 2] * dz
        zc = R[2, 0] * dx + R[2, 1] * dy + R[2, 2] * dz
        safe = np.where(zc > 1e-6, zc, 1e-6)
        return self.cx + self.f * xc / safe, self.cy + self.f * yc / safe, zc

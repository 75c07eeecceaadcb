"""Road centrelines: curvature-continuous chains of straights, clothoids and arcs.

A road is generated as a curvature profile ``kappa(s)`` sampled every :data:`DS_M` metres.
The profile is piecewise linear in arc length (clothoid ramps between constant-curvature
holds), so curvature, heading and position are all continuous. Heading and position are
integrated from it. The heading stays within ``max_heading_rad`` of the road's mean direction
(the world x axis), so ``x`` grows monotonically and a road never crosses or touches itself.

Everything is a pure function of the layout and a ``numpy.random.Generator``, so the same
(town, seed) always gives the same road.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.spec import SimConfigError

DS_M = 0.5
"""Spacing of the centreline samples, m."""


@dataclass(frozen=True)
class RoadLayout:
    """How a family of roads bends (the layout half of a town)."""

    max_curvature_per_m: float = 1.0 / 60.0
    """Largest |curvature| of a bend, 1/m (1/25 is a tight mountain hairpin)."""
    min_curvature_per_m: float = 1.0 / 400.0
    """Smallest |curvature| of a bend, 1/m."""
    straight_share: float = 0.3
    """Probability that the next piece is a straight instead of a bend."""
    piece_length_m: tuple[float, float] = (40.0, 160.0)
    """Range of the length of a constant-curvature hold or straight, m."""
    max_sharpness_per_m2: float = 1.0 / 1500.0
    """Largest rate of change of curvature along the road (clothoid sharpness), 1/m^2."""
    max_heading_rad: float = math.radians(75.0)
    """Largest deviation of the heading from the world x axis, rad (< pi/2: no self-crossing)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.min_curvature_per_m <= self.max_curvature_per_m <= 0.2:
            raise SimConfigError(
                "need 0 < min_curvature_per_m <= max_curvature_per_m <= 0.2, got "
                f"{self.min_curvature_per_m}, {self.max_curvature_per_m}"
            )
        if not 0.0 <= self.straight_share <= 1.0:
            raise SimConfigError(f"straight_share must be in [0, 1], got {self.straight_share}")
        lo, hi = self.piece_length_m
        if not 0.0 < lo <= hi:
            raise SimConfigError(f"piece_length_m must be (lo, hi) with 0 < lo <= hi, got {lo, hi}")
        if self.max_sharpness_per_m2 <= 0.0:
            raise SimConfigError(
                f"max_sharpness_per_m2 must be positive, got {self.max_sharpness_per_m2}"
            )
        if not 0.0 < self.max_heading_rad < math.pi / 2:
            raise SimConfigError(
                f"max_heading_rad must be in (0, pi/2), got {self.max_heading_rad}"
            )


class Road:
    """A sampled centreline with arc length, heading and curvature, plus its cross-section.

    The road has two lanes of ``lane_width_m``; traffic drives on the right, so the ego lane
    centre lies ``lane_width_m / 2`` to the right of the centreline.

    Attributes:
        s: (N,) arc length of each sample, m (``s[i] = i * DS_M``).
        x, y: (N,) world position of each sample, m.
        heading: (N,) tangent direction, rad, counter-clockwise from the world x axis.
        curvature: (N,) signed curvature, 1/m, positive = bends left.
        lane_width_m: width of each of the two lanes, m.
    """

    def __init__(
        self, curvature: np.ndarray, lane_width_m: float, x0: float = 0.0, y0: float = 0.0
    ) -> None:
        curvature = np.asarray(curvature, dtype=np.float64)
        if curvature.ndim != 1 or curvature.size < 3:
            raise SimConfigError(
                f"curvature must be a 1-D profile of >= 3 samples, got {curvature.shape}"
            )
        if not 2.0 <= lane_width_m <= 5.0:
            raise SimConfigError(f"lane_width_m must be in [2, 5], got {lane_width_m}")
        n = curvature.size
        self.curvature = curvature
        self.lane_width_m = float(lane_width_m)
        self.s = np.arange(n, dtype=np.float64) * DS_M
        # heading: trapezoidal integral of curvature; position: exact chord of each piece
        dpsi = 0.5 * (curvature[1:] + curvature[:-1]) * DS_M
        self.heading = np.concatenate([[0.0], np.cumsum(dpsi)])
        mid = self.heading[:-1] + 0.5 * dpsi
        self.x = x0 + np.concatenate([[0.0], np.cumsum(DS_M * np.cos(mid))])
        self.y = y0 + np.concatenate([[0.0], np.cumsum(DS_M * np.sin(mid))])
        # unit tangents of each segment i -> i+1, as Python lists for fast scalar access
        seg_dx = np.diff(self.x)
        seg_dy = np.diff(self.y)
        seg_len = np.hypot(seg_dx, seg_dy)
        self._tx = (seg_dx / seg_len).tolist()
        self._ty = (seg_dy / seg_len).tolist()
        self._seg_len = seg_len.tolist()
        self._xl = self.x.tolist()
        self._yl = self.y.tolist()
        self._hl = self.heading.tolist()
        self._kl = self.curvature.tolist()

    @property
    def length_m(self) -> float:
        """Total arc length of the centreline, m."""
        return float(self.s[-1])

    @property
    def num_samples(self) -> int:
        """Number of centreline samples."""
        return int(self.s.size)

    def project(self, x: float, y: float, hint: int = 0) -> tuple[int, float, float, float, float]:
        """Projects a point onto the centreline, searching from a nearby sample.

        Walks segment by segment from ``hint``, so it costs O(1) per call while a vehicle
        moves a few samples per step.

        Args:
            x: World x of the point, m.
            y: World y of the point, m.
            hint: Index of a sample near the point (e.g. the previous result).

        Returns:
            (index of the segment start, arc length s in m, signed lateral distance from the
            centreline in m (positive = left), centreline heading at s in rad, centreline
            curvature at s in 1/m).
        """
        last = len(self._tx) - 1
        i = min(max(int(hint), 0), last)
        xl, yl, tx, ty, seg = self._xl, self._yl, self._tx, self._ty, self._seg_len
        step = 0
        for _ in range(100000):
            px = x - xl[i]
            py = y - yl[i]
            along = px * tx[i] + py * ty[i]
            if along < 0.0 and i > 0 and step <= 0:
                i -= 1
                step = -1
            elif along > seg[i] and i < last and step >= 0:
                i += 1
                step = 1
            else:
                break
        frac = min(max(along / seg[i], 0.0), 1.0)
        lateral = tx[i] * py - ty[i] * px
        s = i * DS_M + frac * DS_M
        h0, h1 = self._hl[i], self._hl[i + 1]
        k0, k1 = self._kl[i], self._kl[i + 1]
        return i, s, lateral, h0 + frac * (h1 - h0), k0 + frac * (k1 - k0)

    def locate(self, s: np.ndarray | float, offset_m: np.ndarray | float = 0.0):
        """World points at arc length ``s`` and lateral offset (positive = left).

        Args:
            s: Arc length(s), m; clipped to the road.
            offset_m: Lateral offset(s) from the centreline, m.

        Returns:
            (x, y, heading) arrays (or floats for scalar input).
        """
        s_arr = np.clip(np.asarray(s, dtype=np.float64), 0.0, self.length_m)
        h = np.interp(s_arr, self.s, self.heading)
        px = np.interp(s_arr, self.s, self.x) - np.sin(h) * offset_m
        py = np.interp(s_arr, self.s, self.y) + np.cos(h) * offset_m
        if np.ndim(px) == 0:
            return float(px), float(py), float(h)
        return px, py, h

    def locate_scalar(self, s: float, offset_m: float = 0.0) -> tuple[float, float, float]:
        """Scalar version of :meth:`locate` without numpy overhead."""
        s = min(max(s, 0.0), self.length_m)
        i = min(int(s / DS_M), len(self._tx) - 1)
        f = (s - i * DS_M) / DS_M
        xl, yl, hl = self._xl, self._yl, self._hl
        h = hl[i] + f * (hl[i + 1] - hl[i])
        px = xl[i] + f * (xl[i + 1] - xl[i]) - math.sin(h) * offset_m
        py = yl[i] + f * (yl[i + 1] - yl[i]) + math.cos(h) * offset_m
        return px, py, h

    def curvature_at(self, s: float) -> float:
        """Centreline curvature at arc length ``s``, 1/m."""
        s = min(max(s, 0.0), self.length_m)
        i = min(int(s / DS_M), len(self._tx) - 1)
        f = (s - i * DS_M) / DS_M
        return self._kl[i] + f * (self._kl[i + 1] - self._kl[i])


def curvature_profile(layout: RoadLayout, length_m: float, rng: np.random.Generator) -> np.ndarray:
    """Draws a curvature profile of at least ``length_m`` metres.

    The profile alternates holds (straights or constant-curvature bends) joined by linear
    ramps whose slope is at most ``layout.max_sharpness_per_m2`` (clothoids). A bend's
    direction and length are chosen so that the heading stays within
    ``layout.max_heading_rad`` of the x axis.

    Args:
        layout: The road family.
        length_m: Minimum length of the profile, m.
        rng: Source of randomness (the only one).

    Returns:
        (N,) curvature samples every :data:`DS_M` metres, starting and ending straight.
    """
    if length_m <= 0:
        raise SimConfigError(f"length_m must be positive, got {length_m}")
    pieces: list[np.ndarray] = [np.zeros(int(30.0 / DS_M))]  # a straight run-up
    kappa = 0.0
    heading = 0.0
    total = pieces[0].size * DS_M
    hmax = layout.max_heading_rad
    lo, hi = layout.piece_length_m
    while total < length_m:
        if rng.random() < layout.straight_share:
            target = 0.0
        else:
            mag = math.exp(
                rng.uniform(
                    math.log(layout.min_curvature_per_m), math.log(layout.max_curvature_per_m)
                )
            )
            sign = 1.0 if rng.random() < 0.5 else -1.0
            # turn back towards the mean direction when the heading is already large
            if abs(heading) > 0.4 * hmax:
                sign = -math.copysign(1.0, heading)
            target = sign * mag
        hold = rng.uniform(lo, hi)
        ramp = max(abs(target - kappa) / layout.max_sharpness_per_m2, 2.0 * DS_M)
        # heading at the end of the ramp, the hold, and a later ramp back to straight
        h_ramp = heading + 0.5 * (kappa + target) * ramp
        back = abs(target) / layout.max_sharpness_per_m2 * 0.5 * target
        if target != 0.0:
            limit = math.copysign(hmax, target) - h_ramp - back
            hold = min(hold, max(limit / target, 0.0))
        n_ramp = max(math.ceil(ramp / DS_M - 1e-9), 1)
        n_hold = round(hold / DS_M)
        ramp_samples = kappa + (target - kappa) * (np.arange(1, n_ramp + 1) / n_ramp)
        piece = np.concatenate([ramp_samples, np.full(n_hold, target)])
        pieces.append(piece)
        heading += float(np.sum(piece)) * DS_M
        kappa = target
        total += piece.size * DS_M
    # ramp back to straight and end with a straight
    n_ramp = max(math.ceil(abs(kappa) / layout.max_sharpness_per_m2 / DS_M - 1e-9), 1)
    pieces.append(kappa * (1.0 - np.arange(1, n_ramp + 1) / n_ramp))
    pieces.append(np.zeros(int(30.0 / DS_M)))
    return np.concatenate(pieces)


def generate_road(
    layout: RoadLayout, length_m: float, lane_width_m: float, rng: np.random.Generator
) -> Road:
    """Generates a road of at least ``length_m`` metres (see :func:`curvature_profile`)."""
    return Road(curvature_profile(layout, length_m, rng), lane_width_m)

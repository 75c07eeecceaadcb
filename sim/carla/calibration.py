"""The measured steering response of a CARLA vehicle: curvature per normalised steer and speed.

``sim/carla/convert.py`` maps curvature to steer with the kinematic bicycle and the vehicle's
steering curve, an assumption (tyre slip at speed makes the real curvature smaller).
``tools/carla_check.py`` measures the real response on a server (constant steer, curvature =
yaw rate / speed once steady) and writes it as JSON; an env given the file
(``steering_calibration``) maps curvature to steer by interpolating it.

File format (plain JSON)::

    {"format": "liquid-drive/carla-steering-calibration", "version": 1,
     "vehicle_blueprint": "vehicle.tesla.model3", "server_version": "0.9.16",
     "points": [{"speed_mps": 5.0, "steer": -0.2, "curvature_per_m": 0.031}, ...]}

Each speed needs at least two steers, curvature strictly decreasing with steer (steer
positive = right, curvature positive = left).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim.carla.connection import CarlaConfigError

FORMAT = "liquid-drive/carla-steering-calibration"
VERSION = 1


@dataclass(frozen=True)
class SteeringCalibration:
    """Measured curvature per steer at a few speeds (each table sorted by steer)."""

    vehicle_blueprint: str
    """The vehicle measured."""
    server_version: str
    """The CARLA server release measured on."""
    speeds_mps: tuple[float, ...]
    """Measured speeds, ascending, m/s."""
    steers: tuple[tuple[float, ...], ...]
    """Per speed, the normalised steers, ascending."""
    curvatures_per_m: tuple[tuple[float, ...], ...]
    """Per speed, the steady curvature at each steer, 1/m (strictly decreasing)."""

    def steer_for(self, kappa_per_m: float, speed_mps: float) -> float:
        """The steer giving a curvature at a speed (interpolated, clamped to the measured)."""
        per_speed = [
            float(np.interp(-kappa_per_m, -np.asarray(k), np.asarray(s)))
            for s, k in zip(self.steers, self.curvatures_per_m, strict=True)
        ]
        return float(np.interp(speed_mps, self.speeds_mps, per_speed))

    def curvature_for(self, steer: float, speed_mps: float) -> float:
        """The curvature a steer gives at a speed (interpolated), 1/m."""
        per_speed = [
            float(np.interp(steer, s, k))
            for s, k in zip(self.steers, self.curvatures_per_m, strict=True)
        ]
        return float(np.interp(speed_mps, self.speeds_mps, per_speed))

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        points = [
            {"speed_mps": v, "steer": s, "curvature_per_m": k}
            for v, ss, kk in zip(self.speeds_mps, self.steers, self.curvatures_per_m, strict=True)
            for s, k in zip(ss, kk, strict=True)
        ]
        return {
            "format": FORMAT,
            "version": VERSION,
            "vehicle_blueprint": self.vehicle_blueprint,
            "server_version": self.server_version,
            "points": points,
        }

    def save(self, path: str | Path) -> Path:
        """Writes the JSON file; returns its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path


def from_points(
    vehicle_blueprint: str, server_version: str, points: list[tuple[float, float, float]]
) -> SteeringCalibration:
    """A calibration from ``(speed_mps, steer, curvature_per_m)`` triples, validated.

    Raises:
        CarlaConfigError: If a value is not finite or out of range, a speed has fewer than two
            steers, or curvature does not strictly decrease with steer at a speed.
    """
    table: dict[float, list[tuple[float, float]]] = {}
    for v, s, k in points:
        if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in (v, s, k)):
            raise CarlaConfigError(f"calibration point {(v, s, k)} is not three finite numbers")
        if v <= 0 or not -1.0 <= s <= 1.0:
            raise CarlaConfigError(
                f"calibration point {(v, s, k)}: need speed_mps > 0 and steer in [-1, 1]"
            )
        table.setdefault(float(v), []).append((float(s), float(k)))
    if not table:
        raise CarlaConfigError("a calibration needs points")
    speeds = tuple(sorted(table))
    steers, curvatures = [], []
    for v in speeds:
        rows = sorted(table[v])
        s, k = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        if len(rows) < 2 or np.any(np.diff(s) <= 0) or np.any(np.diff(k) >= 0):
            raise CarlaConfigError(
                f"calibration at {v:g} m/s: need two or more distinct steers with curvature "
                f"strictly decreasing in steer, got {rows}"
            )
        steers.append(tuple(s.tolist()))
        curvatures.append(tuple(k.tolist()))
    return SteeringCalibration(
        vehicle_blueprint, server_version, speeds, tuple(steers), tuple(curvatures)
    )


def load_calibration(path: str | Path) -> SteeringCalibration:
    """Reads and validates a calibration file.

    Raises:
        CarlaConfigError: Naming the file, for a missing or unreadable file, another format or
            version, or invalid points.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CarlaConfigError(f"cannot read steering calibration {path}: {err}") from None
    expected = {"format", "version", "vehicle_blueprint", "server_version", "points"}
    if not isinstance(data, dict) or set(data) != expected:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise CarlaConfigError(f"{path}: need exactly the keys {sorted(expected)}, got {keys}")
    if data["format"] != FORMAT or data["version"] != VERSION:
        raise CarlaConfigError(
            f"{path}: not a steering calibration of format {FORMAT!r} version {VERSION} "
            f"(got {data['format']!r} version {data['version']!r})"
        )
    try:
        points = [(p["speed_mps"], p["steer"], p["curvature_per_m"]) for p in data["points"]]
        return from_points(str(data["vehicle_blueprint"]), str(data["server_version"]), points)
    except (TypeError, KeyError) as err:
        raise CarlaConfigError(f"{path}: malformed points ({err!r})") from None
    except CarlaConfigError as err:
        raise CarlaConfigError(f"{path}: {err}") from None

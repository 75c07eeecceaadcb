"""Closed-loop driving metrics of one episode, computed from its per-step columns (numpy only).

Definitions (``shared/reference/driving_papers.md`` section 5, ``DESIGN.md`` "Evaluation"):

* **distance** ``distance_km``: route arc length covered, the ``progress_m`` of the last step
  (progress is measured from the episode start). In intervention mode the car is put back on
  the lane centre at the same place, so this is the distance of the route that was driven.
* **interventions**: lane departures. In intervention mode, the number of steps whose
  ``intervention`` flag is set (the car was reset to the lane centre and went on). In
  termination mode a departure ends the episode, so an episode that ended ``terminated``
  counts one. This makes ``interventions_per_km`` comparable across both modes (the CfC 2022
  protocol counts interventions, UT-ADL counts crashes per km).
* ``interventions_per_km`` = interventions / distance_km; ``km_per_intervention`` (mean
  distance between interventions, Rally Estonia's "distance per intervention") =
  distance_km / interventions, ``None`` when there was none (it is unbounded).
* ``route_completion``: distance / route length, clipped to [0, 1]. In intervention mode it is
  1 unless the time limit cut the route; it is the headline number of termination mode.
* lateral error: ``|lateral_offset_m|`` from the lane centre over all steps: mean (MAE), RMS
  and max, in m; ``failure_rate`` is the share of steps with ``|lateral_offset_m| > 1 m``
  (Rally Estonia's failure rate).
* heading error: ``|heading_error_rad|`` over all steps, mean and max, reported in degrees.
* steering smoothness ``steering_rate_rms``: RMS of the command change per second,
  ``sqrt(mean((diff(kappa) / diff(t_s))^2))`` in 1/(m s), using the real timestamps (the
  whiteness of UT-ADL / Rally Estonia, on curvature instead of steering-wheel degrees). The
  command is the curvature the car executed, so the expert and the policies are measured
  alike. Lower is smoother.

Undefined values (for example per-km rates of an episode that covered no distance) are
``None`` so that they serialise to JSON ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from driving.data.episodes import (
    CURVATURE_APPLIED,
    HEADING_ERROR_RAD,
    INTERVENTION,
    LATERAL_OFFSET_M,
    PROGRESS_M,
    SPEED_MPS,
    T_S,
)
from liquid_drive.errors import LiquidDriveError

FAILURE_OFFSET_M = 1.0
"""|lateral offset| above which a step counts towards ``failure_rate``, m (Rally Estonia)."""


class MetricsError(LiquidDriveError, ValueError):
    """Per-step columns that cannot be scored (wrong lengths, NaNs, time not increasing)."""


@dataclass(frozen=True)
class EpisodeMetrics:
    """Closed-loop metrics of one episode (definitions in the module docstring)."""

    steps: int
    """Number of control steps."""
    duration_s: float
    """Simulation time from the first to the last step, s."""
    distance_km: float
    """Route arc length covered, km."""
    route_length_km: float
    """Length of the route the episode was asked to drive, km."""
    route_completion: float
    """distance / route length, in [0, 1]."""
    interventions: int
    """Lane departures (intervention flags, or 1 for a terminated episode)."""
    interventions_per_km: float | None
    """interventions / distance_km; None when no distance was covered."""
    km_per_intervention: float | None
    """Mean distance between interventions, km; None when there was no intervention."""
    terminated: bool
    """True when the episode ended by a departure or collision (termination mode)."""
    lateral_error_mean_m: float
    """Mean |lateral offset| from the lane centre, m."""
    lateral_error_rms_m: float
    """RMS lateral offset, m."""
    lateral_error_max_m: float
    """Max |lateral offset|, m."""
    failure_rate: float
    """Share of steps with |lateral offset| > FAILURE_OFFSET_M, in [0, 1]."""
    heading_error_mean_deg: float
    """Mean |heading error| relative to the lane, degrees."""
    heading_error_max_deg: float
    """Max |heading error|, degrees."""
    steering_rate_rms: float
    """RMS of the executed curvature's change per second, 1/(m s)."""
    mean_speed_mps: float
    """Mean forward speed, m/s (NaN-free; 0 when not recorded)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (floats, ints, bools and None)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EpisodeMetrics:
        """Inverse of :meth:`to_dict`; missing or unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        missing, unknown = names - set(d), set(d) - names
        if missing or unknown:
            raise MetricsError(
                f"episode metrics keys differ: missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        return cls(**d)


METRIC_NAMES: tuple[str, ...] = tuple(f.name for f in fields(EpisodeMetrics))
"""Every field of :class:`EpisodeMetrics`, in order."""


def _column(name: str, values: Any, n: int | None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if n is not None and arr.shape[0] != n:
        raise MetricsError(f"column {name!r} has {arr.shape[0]} steps, expected {n}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise MetricsError(f"column {name!r} has a non-finite value {arr[bad]} at step {bad}")
    return arr


def steering_rate_rms(command: Any, t_s: Any) -> float:
    """RMS of the command's change per second, using the real timestamps.

    Args:
        command: (N,) steering command (curvature, 1/m) per step.
        t_s: (N,) simulation time of each step, s, strictly increasing.

    Returns:
        ``sqrt(mean((diff(command) / diff(t_s))^2))`` in command units per second; 0 for
        fewer than two steps.

    Raises:
        MetricsError: If the lengths differ, a value is not finite, or time does not increase.
    """
    t = _column("t_s", t_s, None)
    k = _column("command", command, t.shape[0])
    if t.shape[0] < 2:
        return 0.0
    dt = np.diff(t)
    if np.any(dt <= 0):
        bad = int(np.flatnonzero(dt <= 0)[0])
        raise MetricsError(
            f"t_s must increase strictly, got {t[bad]} then {t[bad + 1]} at step {bad + 1}"
        )
    rate = np.diff(k) / dt
    return float(np.sqrt(np.mean(rate**2)))


def episode_metrics(
    *,
    t_s: Any,
    command: Any,
    lateral_offset_m: Any,
    heading_error_rad: Any,
    progress_m: Any,
    intervention: Any,
    route_length_m: float,
    terminated: bool = False,
    speed_mps: Any = None,
    distance_m: float | None = None,
) -> EpisodeMetrics:
    """Scores one episode from its per-step columns.

    Args:
        t_s: (N,) simulation time per step, s, strictly increasing.
        command: (N,) curvature the car executed, 1/m.
        lateral_offset_m: (N,) signed offset from the lane centre, m.
        heading_error_rad: (N,) vehicle yaw minus lane heading, rad.
        progress_m: (N,) route arc length covered since the episode start, m.
        intervention: (N,) True on a step where a departure was counted and the car reset.
        route_length_m: Length of the route the episode was asked to drive, m (> 0).
        terminated: True when the episode ended by a departure or a collision.
        speed_mps: Optional (N,) forward speed, m/s.
        distance_m: Route arc length covered by the whole episode, m, when known (rollout
            rows hold the progress *before* each step, so the progress after the last step
            is one step further); default the last ``progress_m``.

    Returns:
        The episode's :class:`EpisodeMetrics`.

    Raises:
        MetricsError: If the episode has no steps, the columns' lengths differ, a value is not
            finite, time does not increase or the route length is not positive.
    """
    t = _column("t_s", t_s, None)
    n = t.shape[0]
    if n == 0:
        raise MetricsError("an episode with no steps cannot be scored")
    if not (math.isfinite(route_length_m) and route_length_m > 0):
        raise MetricsError(f"route_length_m must be positive, got {route_length_m}")
    lat = np.abs(_column("lateral_offset_m", lateral_offset_m, n))
    head = np.abs(_column("heading_error_rad", heading_error_rad, n))
    progress = _column("progress_m", progress_m, n)
    flags = _column("intervention", intervention, n) != 0
    speed = np.zeros(n) if speed_mps is None else _column("speed_mps", speed_mps, n)

    if distance_m is None:
        distance_m = float(progress[-1])
    if not math.isfinite(distance_m):
        raise MetricsError(f"distance_m must be finite, got {distance_m}")
    distance_km = max(distance_m, 0.0) / 1000.0
    interventions = int(flags.sum()) + (1 if terminated else 0)
    return EpisodeMetrics(
        steps=n,
        duration_s=float(t[-1] - t[0]),
        distance_km=distance_km,
        route_length_km=route_length_m / 1000.0,
        route_completion=min(1000.0 * distance_km / route_length_m, 1.0),
        interventions=interventions,
        interventions_per_km=interventions / distance_km if distance_km > 0 else None,
        km_per_intervention=distance_km / interventions if interventions > 0 else None,
        terminated=bool(terminated),
        lateral_error_mean_m=float(lat.mean()),
        lateral_error_rms_m=float(np.sqrt(np.mean(lat**2))),
        lateral_error_max_m=float(lat.max()),
        failure_rate=float(np.mean(lat > FAILURE_OFFSET_M)),
        heading_error_mean_deg=math.degrees(float(head.mean())),
        heading_error_max_deg=math.degrees(float(head.max())),
        steering_rate_rms=steering_rate_rms(_column("command", command, n), t),
        mean_speed_mps=float(speed.mean()),
    )


def metrics_from_columns(
    columns: Mapping[str, Any],
    *,
    route_length_m: float,
    terminated: bool = False,
    distance_m: float | None = None,
) -> EpisodeMetrics:
    """Scores an episode from its columns as named in ``driving.data.episodes``.

    Works on an ``EpisodeLog.columns`` from ``driving.rollout.episode.run_episode`` and on the
    columns of an episode read back from disk. The steering command scored is ``curvature_applied``
    (what the car executed), for the expert and the policies alike.

    Args:
        columns: Per-step columns; needs ``t_s``, ``curvature_applied``, ``lateral_offset_m``,
            ``heading_error_rad``, ``progress_m`` and ``intervention`` (``speed_mps`` optional).
        route_length_m: Length of the route, m.
        terminated: True when the episode ended by a departure or collision.
        distance_m: Route arc length covered (``EpisodeLog.distance_m``); default the last
            ``progress_m``.

    Raises:
        MetricsError: If a required column is missing, or as :func:`episode_metrics`.
    """
    required = (T_S, CURVATURE_APPLIED, LATERAL_OFFSET_M, HEADING_ERROR_RAD, PROGRESS_M)
    missing = [c for c in (*required, INTERVENTION) if c not in columns]
    if missing:
        raise MetricsError(f"episode columns lack {missing}; it has {sorted(columns)}")
    return episode_metrics(
        t_s=columns[T_S],
        command=columns[CURVATURE_APPLIED],
        lateral_offset_m=columns[LATERAL_OFFSET_M],
        heading_error_rad=columns[HEADING_ERROR_RAD],
        progress_m=columns[PROGRESS_M],
        intervention=columns[INTERVENTION],
        route_length_m=route_length_m,
        terminated=terminated,
        speed_mps=columns.get(SPEED_MPS),
        distance_m=distance_m,
    )

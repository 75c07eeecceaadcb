"""Per-junction success of an episode on a route with commands, and its pooling (numpy only).

A route through a junction town carries a high-level command per junction (``sim.spec``:
``Command``, ``RESET_INFO_ROUTE_COMMANDS``); the rollout records, per step, the ``command``
the car saw and ``junction``, the route index of the junction whose command is active
(from ``sim.spec.COMMAND_LEAD_M`` before its entry until the car leaves it; -1 elsewhere).

Definitions:

* A junction's **zone** is the steps from the first to the last step whose ``junction`` is its
  index (normally one maximal run: the command's onset to the junction's exit).
* A junction **passed** (reached) is one whose index appears; its command is the ``command``
  at the zone's first step.
* It **succeeded** when, in its zone, no intervention was counted and no collision happened
  (a wrong branch leaves the route's lane, which intervention mode counts and corrects), the
  car left the zone in its lane (``|lateral_offset_m| <= lane_half_width_m`` on the zone's last
  step) and the episode did not end inside the zone (a terminated episode, or a time limit
  inside the junction). Otherwise the first failed reason is kept: ``intervention``,
  ``collision``, ``ended inside``, ``left outside the lane``.
* **Not reached**: junctions of the route (its ``route_commands``) whose index never appears.

Pooled over episodes (:func:`pool_junctions`): counts and success rates overall and per
command (left, right, straight), and the junctions not reached. An episode without a
``junction`` column (older rollouts) or on a route without junctions has no junction metrics
(None), and pooling such episodes gives None: the lane-keeping suites' results do not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from driving.data.format import (
    COLLISION,
    COMMAND,
    INTERVENTION,
    JUNCTION,
    LANE_HALF_WIDTH_M,
    LATERAL_OFFSET_M,
)
from driving.evaluate.metrics import MetricsError
from sim.spec import COMMAND_NAMES, Command

TURN_COMMANDS: tuple[str, ...] = tuple(
    COMMAND_NAMES[c] for c in (Command.LEFT, Command.RIGHT, Command.STRAIGHT)
)
"""The junction commands reported one by one (``left``, ``right``, ``straight``)."""
FAILURES: tuple[str, ...] = ("intervention", "collision", "ended inside", "left outside the lane")
"""Why a junction failed, in the order they are checked."""


@dataclass(frozen=True)
class JunctionOutcome:
    """One junction of the route that the car reached."""

    index: int
    """The junction's index on the route (0-based, route order)."""
    command: str
    """Its command's name (``left``, ``right``, ``straight``; ``sim.spec.COMMAND_NAMES``)."""
    first_step: int
    """The zone's first step (the command's onset)."""
    last_step: int
    """The zone's last step (the car leaves the junction after it)."""
    failure: str | None
    """None for a success, else the first reason of :data:`FAILURES`."""

    @property
    def success(self) -> bool:
        """True when the junction was passed as commanded (no failure)."""
        return self.failure is None


@dataclass(frozen=True)
class JunctionMetrics:
    """The junctions of one episode: those reached, with their outcome, and the others."""

    route_junctions: int
    """Junctions on the episode's route."""
    passed: tuple[JunctionOutcome, ...]
    """The junctions reached, in route order."""

    @property
    def not_reached(self) -> int:
        """Junctions of the route the car never reached (the episode ended first)."""
        return max(self.route_junctions - len(self.passed), 0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``episodes[i]["junctions"]`` of ``metrics.json``)."""
        return {
            "route_junctions": self.route_junctions,
            "not_reached": self.not_reached,
            "passed": [asdict(j) for j in self.passed],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JunctionMetrics:
        """Inverse of :meth:`to_dict` (``not_reached`` is derived, so it is not read)."""
        try:
            passed = tuple(JunctionOutcome(**j) for j in d["passed"])
            return cls(int(d["route_junctions"]), passed)
        except (KeyError, TypeError) as e:
            raise MetricsError(f"malformed junction metrics {dict(d)!r}: {e}") from e


def _command_name(value: int) -> str:
    if not 0 <= value < len(COMMAND_NAMES):
        raise MetricsError(f"column {COMMAND!r} holds {value}, not a sim.spec.Command value")
    return COMMAND_NAMES[value]


def junction_metrics(
    columns: Mapping[str, Any],
    *,
    route_commands: Sequence[int] = (),
    route_completed: bool = False,
) -> JunctionMetrics | None:
    """The per-junction outcomes of one episode from its per-step columns.

    Args:
        columns: Per-step columns as named in ``driving.data.format`` (an
            ``EpisodeLog.columns`` or an episode read back): ``junction`` (-1 = none),
            ``command``, ``intervention``, ``lateral_offset_m``, ``lane_half_width_m`` and,
            when present, ``collision``.
        route_commands: The commands of the route's junctions in route order
            (``EpisodeLog.route_commands``); their number counts the junctions not reached.
        route_completed: The episode ended at its route's end (outcome ``route_complete``):
            a junction whose zone the route end cuts is then not scored (it counts as not
            reached), since the car was stopped by the route, not by a failure.

    Returns:
        The :class:`JunctionMetrics`, or None when the episode has no ``junction`` column and
        its route no junctions (a lane-keeping episode, or an older rollout).

    Raises:
        MetricsError: If a needed column is missing or of another length, a command is not a
            ``sim.spec.Command`` value, or a junction's command differs from the route's.
    """
    if JUNCTION not in columns:
        return None if not route_commands else JunctionMetrics(len(route_commands), ())
    junction = np.asarray(columns[JUNCTION]).astype(np.int64).reshape(-1)
    n = junction.shape[0]
    seen = np.unique(junction[junction >= 0])
    if not route_commands and seen.size == 0:
        return None
    need = (INTERVENTION, LATERAL_OFFSET_M, LANE_HALF_WIDTH_M)
    missing = [c for c in need if c not in columns]
    if COMMAND not in columns and not route_commands:
        missing.append(COMMAND)
    if missing and seen.size:
        raise MetricsError(f"episode columns lack {missing} to score its junctions")

    def col(name: str, dtype: type) -> np.ndarray:
        arr = np.asarray(columns[name]).astype(dtype).reshape(-1)
        if arr.shape[0] != n:
            raise MetricsError(f"column {name!r} has {arr.shape[0]} steps, {JUNCTION!r} has {n}")
        return arr

    outcomes = []
    for index in (int(i) for i in seen):
        steps = np.flatnonzero(junction == index)
        first, last = int(steps[0]), int(steps[-1])
        zone = slice(first, last + 1)
        if route_completed and last == n - 1:
            continue  # the route ends inside this junction: not scored
        if COMMAND in columns:
            command = _command_name(int(col(COMMAND, np.int64)[first]))
            if index < len(route_commands) and command != _command_name(route_commands[index]):
                raise MetricsError(
                    f"junction {index}: the rollout's command is {command!r} but the route's "
                    f"is {_command_name(route_commands[index])!r}"
                )
        elif index < len(route_commands):
            command = _command_name(int(route_commands[index]))
        else:
            raise MetricsError(f"junction {index} is not on the route {tuple(route_commands)}")
        checks = (
            bool(col(INTERVENTION, np.float64)[zone].any()),
            COLLISION in columns and bool(col(COLLISION, np.float64)[zone].any()),
            last == n - 1,
            abs(col(LATERAL_OFFSET_M, np.float64)[last]) > col(LANE_HALF_WIDTH_M, np.float64)[last],
        )
        failure = next((why for why, bad in zip(FAILURES, checks, strict=True) if bad), None)
        outcomes.append(JunctionOutcome(index, command, first, last, failure))
    total = max(len(route_commands), int(seen.max()) + 1 if seen.size else 0)
    return JunctionMetrics(total, tuple(outcomes))


def _rate(n: int, ok: int) -> dict[str, Any]:
    return {"n": n, "succeeded": ok, "success_rate": ok / n if n else None}


def pool_junctions(episodes: Iterable[JunctionMetrics | None]) -> dict[str, Any] | None:
    """Junction counts and success rates pooled over episodes (None: no junction episode).

    Returns:
        ``{"n", "succeeded", "success_rate", "not_reached", "route_junctions", "by_command":
        {"left": {"n", "succeeded", "success_rate"}, "right": ..., "straight": ...}}``;
        ``success_rate`` is succeeded / n, null when n is 0. A command outside
        :data:`TURN_COMMANDS` (``follow_lane`` inside a zone) gets its own entry.
    """
    chosen = [e for e in episodes if e is not None]
    if not chosen:
        return None
    passed = [j for e in chosen for j in e.passed]
    names = list(TURN_COMMANDS) + sorted({j.command for j in passed} - set(TURN_COMMANDS))
    by_command = {}
    for name in names:
        mine = [j for j in passed if j.command == name]
        by_command[name] = _rate(len(mine), sum(j.success for j in mine))
    return {
        **_rate(len(passed), sum(j.success for j in passed)),
        "not_reached": sum(e.not_reached for e in chosen),
        "route_junctions": sum(e.route_junctions for e in chosen),
        "failures": {why: sum(j.failure == why for j in passed) for why in FAILURES},
        "by_command": by_command,
    }

"""Route planning over the map's lane graph, and the route's junction commands.

As CARLA's ``GlobalRoutePlanner`` (PythonAPI ``agents/navigation``), the graph comes from
``Map.get_topology()``: one node per lane segment (a lane of a lane section, keyed by its
``(road_id, section_id, lane_id)``), an edge from a segment to each segment its end leads to;
a segment is a junction segment when its entry waypoint ``is_junction`` (its
``junction_id`` names the junction). A route is a random walk over that graph from the start
waypoint, reproducible per generator: at each segment end with several successors (a
junction's entry) a branch is drawn; branches that cannot reach the requested length are
backtracked, so the route is long enough whenever the network allows it, and a network that
does not is an error (:class:`RoutePlanError`) naming the town, the seed and why.

Each junction the route passes gets a command from the heading change between the lane
entering it and the lane leaving it (CARLA's ``_turn_decision`` idea): within
:data:`STRAIGHT_MAX_TURN_RAD` of straight on it is ``STRAIGHT``, otherwise ``LEFT`` for a
counter-clockwise change (ours: positive yaw), ``RIGHT`` for a clockwise one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim import spec
from sim.carla.convert import wrap_angle, xy_from_carla, yaw_from_carla
from sim.carla.route import Route, RouteError, RouteJunction

STRAIGHT_MAX_TURN_RAD = math.radians(35.0)
"""Largest heading change through a junction that is still ``STRAIGHT``, rad (CARLA's
``_turn_decision`` threshold)."""

SegmentKey = tuple[int, int, int]
"""A lane segment: ``(road_id, section_id, lane_id)``."""


class RoutePlanError(RouteError):
    """No route of the requested length leads on from the start waypoint."""


def segment_key(waypoint: Any) -> SegmentKey:
    """The lane segment a waypoint lies on."""
    return (int(waypoint.road_id), int(waypoint.section_id), int(waypoint.lane_id))


def turn_command(entry_yaw_rad: float, exit_yaw_rad: float) -> spec.Command:
    """The command of a junction from the lane headings entering and leaving it (ours, rad)."""
    turn = wrap_angle(exit_yaw_rad - entry_yaw_rad)
    if abs(turn) < STRAIGHT_MAX_TURN_RAD:
        return spec.Command.STRAIGHT
    return spec.Command.LEFT if turn > 0 else spec.Command.RIGHT


@dataclass
class _Segment:
    entry: Any
    """The segment's first waypoint (CARLA ``Waypoint`` or the stand-in's)."""
    successors: list[SegmentKey]
    is_junction: bool
    junction_id: int
    path: list[Any] | None = None
    """Waypoints from the entry to the segment's end, filled on first use."""


class LaneGraph:
    """The map's lane segments and which segment each one leads to.

    Args:
        cmap: A CARLA ``Map`` (or the stand-in's) with ``get_topology()``.
        step_m: Spacing of the route's waypoints, m.
    """

    def __init__(self, cmap: Any, step_m: float = 1.0) -> None:
        self.step_m = step_m
        self.segments: dict[SegmentKey, _Segment] = {}
        pairs = cmap.get_topology()
        for entry, _ in pairs:
            self.add(entry)
        for entry, exit_wp in pairs:
            # The exit is the first waypoint of the successor; a successor that is no
            # topology entry (a lane that dead-ends) becomes a segment without successors.
            seg, nxt = self.segments[segment_key(entry)], self.add(exit_wp)
            if nxt != segment_key(entry) and nxt not in seg.successors:
                seg.successors.append(nxt)

    def add(self, entry: Any) -> SegmentKey:
        """The key of a waypoint's segment, added (without successors) if it is new."""
        key = segment_key(entry)
        if key not in self.segments:
            self.segments[key] = _Segment(entry, [], bool(entry.is_junction), _junction_id(entry))
        return key

    def walk(self, waypoint: Any) -> list[Any]:
        """Waypoints from ``waypoint`` to the end of its segment, ``step_m`` apart."""
        key, out, wp = segment_key(waypoint), [waypoint], waypoint
        while True:
            same = [w for w in wp.next(self.step_m) if segment_key(w) == key]
            if not same:
                return out
            # Where several stay on the segment, the one nearest the straight continuation.
            wp = min(same, key=lambda w: abs(abs(float(w.s) - float(wp.s)) - self.step_m))
            out.append(wp)
            if len(out) > 100_000:
                raise RouteError(f"lane segment {key} does not end (a zero-step waypoint loop)")

    def path(self, key: SegmentKey) -> list[Any]:
        """The waypoints of a whole segment (cached)."""
        seg = self.segments[key]
        if seg.path is None:
            seg.path = self.walk(seg.entry)
        return seg.path

    def length_m(self, key: SegmentKey) -> float:
        """Length of a segment along its waypoints, m."""
        return _polyline_length(self.path(key))


def _junction_id(waypoint: Any) -> int:
    return int(waypoint.junction_id) if waypoint.is_junction else -1


def _polyline_length(wps: list[Any]) -> float:
    pts = [xy_from_carla(w.transform.location) for w in wps]
    return float(sum(math.dist(a, b) for a, b in itertools.pairwise(pts)))


@dataclass(frozen=True)
class RouteRequest:
    """What the route must satisfy, and what names it in errors."""

    length_m: float
    """Arc length the route must cover from the start, m; it then runs on to the end of the
    junction it is in, if any."""
    town: str
    """Named in errors."""
    seed: int | None
    """The episode's seed, named in errors."""


def plan_route(
    graph: LaneGraph, start: Any, request: RouteRequest, rng: np.random.Generator
) -> Route:
    """A random route over the lane graph from ``start`` with its junction commands.

    Args:
        graph: The map's lane graph.
        start: The start waypoint (on a lane centre).
        request: The length wanted, and the town and seed for error messages.
        rng: Draws the branch at each junction (a seeded generator: reproducible routes).

    Returns:
        The route in our frame; ``route.junctions`` holds each junction it passes with its
        command, in order.

    Raises:
        RoutePlanError: If the start's lane leads nowhere soon enough (a dead end, a lane
            connected to nothing) or no sequence of branches reaches ``request.length_m``.
    """
    where = f"town {request.town}, seed {request.seed}"
    key = graph.add(start)  # a lane the topology does not list connects to nothing
    head = graph.walk(start)
    head_len = _polyline_length(head)
    first_junction = bool(start.is_junction)
    keys = _search(graph, key, head_len, first_junction, request.length_m, rng)
    if keys is None:
        if not graph.segments[key].successors and head_len < request.length_m:
            why = f"its lane dead-ends after {head_len:.0f} m"
        else:
            why = (
                f"no sequence of branches from it reaches {request.length_m:.0f} m (the network "
                "ahead dead-ends or is too small)"
            )
        loc = xy_from_carla(start.transform.location)
        raise RoutePlanError(
            f"cannot plan a route ({where}) from the waypoint at ({loc[0]:.1f}, {loc[1]:.1f}) "
            f"on lane {key} (road, section, lane): {why}"
        )
    wps = head + [w for k in keys for w in graph.path(k)]
    return _route_from_waypoints(wps, request.length_m)


def _search(
    graph: LaneGraph,
    start_key: SegmentKey,
    head_len: float,
    head_junction: bool,
    length_m: float,
    rng: np.random.Generator,
) -> list[SegmentKey] | None:
    """Depth-first search over random branch orders; the segments after the start's, or None.

    Done when the route covers ``length_m`` and its last segment is not a junction's (so no
    junction is cut off). ``failed[k]`` is the least length that could not be reached from
    the entry of segment ``k``: a larger one fails too, which keeps the search linear in the
    number of segments.
    """
    failed: dict[SegmentKey, float] = {}
    step = graph.step_m
    if head_len >= length_m and not head_junction:
        return []

    def branches(k: SegmentKey) -> Iterator[SegmentKey]:
        succ = graph.segments[k].successors
        return iter([succ[int(i)] for i in rng.permutation(len(succ))])

    # (segment, arc length to its last point, length still wanted at its entry, branches left)
    stack: list[tuple[SegmentKey, float, float, Iterator[SegmentKey]]] = [
        (start_key, head_len, math.inf, branches(start_key))
    ]
    path: list[SegmentKey] = []
    while stack:
        k, covered, wanted_at_entry, it = stack[-1]
        wanted = length_m - covered - step  # at the entry of a successor
        nxt = next((n for n in it if failed.get(n, math.inf) > wanted), None)
        if nxt is None:
            failed[k] = min(failed.get(k, math.inf), wanted_at_entry)
            stack.pop()
            if path:
                path.pop()
            continue
        path.append(nxt)
        reached = covered + step + graph.length_m(nxt)
        if reached >= length_m and not graph.segments[nxt].is_junction:
            return path
        stack.append((nxt, reached, wanted, branches(nxt)))
    return None


def _route_from_waypoints(wps: list[Any], length_m: float) -> Route:
    """The route of the waypoints, cut where it has covered ``length_m`` outside a junction."""
    xs, ys, hw, junc, jid, yaw = [], [], [], [], [], []
    covered = 0.0
    for w in wps:
        x, y = xy_from_carla(w.transform.location)
        attrs = (
            float(w.lane_width) / 2.0,
            bool(w.is_junction),
            _junction_id(w),
            yaw_from_carla(w.transform.rotation.yaw),
        )
        if xs:
            d = math.hypot(x - xs[-1], y - ys[-1])
            if d < 1e-3:  # a segment's end is the next one's entry: the entry's lane counts
                hw[-1], junc[-1], jid[-1], yaw[-1] = attrs
                continue
            if covered >= length_m and not junc[-1]:
                break
            covered += d
        xs.append(x)
        ys.append(y)
        for column, value in zip((hw, junc, jid, yaw), attrs, strict=True):
            column.append(value)
    if len(xs) < 2:
        raise RoutePlanError("no lane continues from the start waypoint (a dead end)")
    xy = (np.array(xs), np.array(ys), np.array(hw), np.array(junc))
    junctions = _junctions(Route(*xy), np.array(jid), np.array(yaw))
    return Route(*xy, junctions=junctions)


def _junctions(
    route: Route, junction_id: np.ndarray, lane_yaw: np.ndarray
) -> tuple[RouteJunction, ...]:
    """The junctions of a route: runs of points inside one junction, with their commands."""
    out: list[RouteJunction] = []
    n = route.x.size
    i = 0
    while i < n:
        if not route.junction[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and route.junction[j + 1] and junction_id[j + 1] == junction_id[i]:
            j += 1
        entry_yaw = lane_yaw[i - 1] if i > 0 else lane_yaw[i]
        exit_i = min(j + 1, n - 1)
        out.append(
            RouteJunction(
                index=len(out),
                junction_id=int(junction_id[i]),
                entry_s_m=float(route.s[i]),
                exit_s_m=float(route.s[exit_i]),
                command=turn_command(float(entry_yaw), float(lane_yaw[exit_i])),
            )
        )
        i = j + 1
    return tuple(out)

"""Routes through a junction town: the planner, the route's centreline and its junctions.

A route is the sequence of junction choices a (town, seed) draws on its network
(:mod:`sim.builtin.network`), as CARLA's random routes: at each junction one of the arms it
has, other than the one the route came by. Routes never head west (their heading stays east,
north or south of the world frame, plus the gentle bends between junctions) and never visit
a junction twice, so a route cannot cross itself.

The route's own centreline is one :class:`~sim.builtin.roads.Road` through every junction:
straight through, or a 90 degree turn made of a clothoid, an arc and a clothoid (curvature
continuous). Each junction is a :class:`Junction` record; the arms the route does not take are
straight :class:`Arm` stubs from the junction centre, checked to keep
``layout.clearance_m`` from the rest of the route (the network and route are re-drawn from
the same random stream when one is too close). Everything is a function of the layout, the
lane width and the random stream.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from sim.builtin.network import (
    EAST,
    WEST,
    JunctionLayout,
    RoadNetwork,
    RoutePlanningError,
    draw_network,
)
from sim.builtin.roads import DS_M, Road
from sim.spec import COMMAND_LEAD_M, Command

MAX_ATTEMPTS = 8
"""Networks drawn for one route before :class:`RoutePlanningError` (a stub too close)."""
_RELATIVE_COMMAND = {0: Command.STRAIGHT, 1: Command.LEFT, 3: Command.RIGHT}
"""Quarter turns from the heading in to the heading out -> the command."""


@dataclass(frozen=True)
class PlannedStep:
    """One junction choice of a planned route."""

    node: int
    """The junction's node in the network."""
    heading_in: int
    """Direction of travel into the junction (quarter turns, ``network.EAST`` ...)."""
    heading_out: int
    """Direction of travel out of it: the arm the route takes."""
    command: Command
    """``LEFT``, ``RIGHT`` or ``STRAIGHT``."""
    link_m: float
    """Centre-to-centre length of the road the route takes out of the junction, m."""


def plan_route(
    network: RoadNetwork, length_m: float, rng: np.random.Generator
) -> tuple[PlannedStep, ...]:
    """Draws junction choices until the route is at least ``length_m`` metres long.

    Args:
        network: The graph (its ``start`` node is entered heading east).
        length_m: Least centre-to-centre length of the route from its start, m.
        rng: The random stream (one draw per junction).

    Raises:
        RoutePlanningError: At a dead end: a junction where no linked arm leads east, north
            or south to a junction the route has not visited yet.
    """
    targets = network.targets
    node, heading, total = network.start, EAST, network.lead_m
    visited, steps = {node}, []
    while True:
        came = (heading + 2) % 4
        options = [
            d
            for d in sorted(network.nodes[node].arms - {came, WEST})
            if (node, d) in targets and targets[(node, d)][0] not in visited
        ]
        if not options:
            raise RoutePlanningError(
                f"dead end at node {node} after {len(steps)} junction(s) "
                f"({total:.0f} m of {length_m:.0f} m): no linked arm east, north or south "
                "to a junction not yet visited"
            )
        out = options[int(rng.integers(len(options)))]
        nxt, link = targets[(node, out)]
        steps.append(PlannedStep(node, heading, out, _RELATIVE_COMMAND[(out - heading) % 4], link))
        total += link
        if total >= length_m:
            return tuple(steps)
        node, heading = nxt, out
        visited.add(node)


@dataclass(frozen=True)
class Junction:
    """One junction on a route (arc lengths along the route's centreline)."""

    index: int
    """Position in the route's junction order (0-based)."""
    kind: str
    """``"T"`` (three arms) or ``"X"`` (four)."""
    centre_m: tuple[float, float]
    """World (x, y) of the junction centre (where the arms' centrelines meet), m."""
    entry_s_m: float
    """Route arc length where the route enters the junction box (the stop line), m."""
    centre_s_m: float
    """Route arc length of the middle of the route's way through the box, m."""
    exit_s_m: float
    """Route arc length where the route leaves the box, m."""
    box_half_m: float
    """Half the side of the square junction box (no markings inside it), m."""
    arms_rad: tuple[float, ...]
    """World heading of each of its arms, from the centre outwards, rad."""
    branch_rad: float
    """World heading of the arm the route leaves by, rad."""
    command: Command
    """The route's branch: ``LEFT``, ``RIGHT`` or ``STRAIGHT``."""


@dataclass(frozen=True)
class Arm:
    """A straight road from a junction centre outwards (drawn by the texture)."""

    junction: int
    """Index of its junction."""
    x_m: float
    """World x of its start (the junction centre), m."""
    y_m: float
    """World y of its start, m."""
    heading_rad: float
    """World direction from the centre outwards, rad."""
    length_m: float
    """Length from the centre, m: a stub's length, or just past the box for an arm the route
    drives on (the route's own road draws the rest)."""
    taken: bool
    """Whether the route drives along it (in or out)."""


class JunctionRoute:
    """A route's centreline, its junctions, its stubs and its speed limit.

    Attributes:
        road: The route's centreline (:class:`~sim.builtin.roads.Road`).
        junctions: Every junction on ``road``, in route order.
        arms: Every arm of those junctions (taken and stubs).
        layout: The layout the route came from.
        lane_offset_m: Lateral offset of the ego lane centre from the centreline, m.
    """

    def __init__(
        self,
        road: Road,
        junctions: tuple[Junction, ...],
        arms: tuple[Arm, ...],
        layout: JunctionLayout,
    ) -> None:
        self.road, self.junctions, self.arms, self.layout = road, junctions, arms, layout
        self.lane_offset_m = -0.5 * road.lane_width_m
        self._starts = [j.entry_s_m - COMMAND_LEAD_M for j in junctions]
        self._ends = [j.exit_s_m for j in junctions]
        self._limit: tuple[float, np.ndarray] | None = None

    def junction_at(self, s_m: float) -> int:
        """Index of the junction whose command is active at route arc length ``s_m``, or -1.

        Active from :data:`~sim.spec.COMMAND_LEAD_M` before its entry until its exit.
        """
        i = bisect.bisect_right(self._starts, s_m) - 1
        return i if i >= 0 and s_m < self._ends[i] else -1

    def command_at(self, s_m: float) -> Command:
        """The route command at route arc length ``s_m``."""
        i = self.junction_at(s_m)
        return self.junctions[i].command if i >= 0 else Command.FOLLOW_LANE

    def speed_limit(self, accel_mps2: float) -> np.ndarray:
        """(N,) speed limit at each road sample, m/s (cached per acceleration).

        ``sqrt(a_lat_max / |lane curvature|)``, lowered before each bend so that the car can
        slow down at ``layout.decel_mps2`` and after it so that it speeds up at
        ``accel_mps2``.
        """
        if self._limit is not None and self._limit[0] == accel_mps2:
            return self._limit[1]
        k = self.road.curvature
        stretch = 1.0 - self.lane_offset_m * k  # lane arc length per centreline arc length
        lane_k = np.abs(k / stretch)
        v = np.sqrt(self.layout.a_lat_max_mps2 / np.maximum(lane_k, 1e-9)).tolist()
        # the car covers the lane's arc length: v^2 changes by 2 a ds_lane per sample
        ds = (0.5 * DS_M * (stretch[1:] + stretch[:-1])).tolist()
        back, fwd = 2.0 * self.layout.decel_mps2, 2.0 * accel_mps2
        for i in range(len(v) - 2, -1, -1):
            v[i] = min(v[i], math.sqrt(v[i + 1] ** 2 + back * ds[i]))
        for i in range(1, len(v)):
            v[i] = min(v[i], math.sqrt(v[i - 1] ** 2 + fwd * ds[i - 1]))
        limit = np.asarray(v)
        self._limit = (accel_mps2, limit)
        return limit

    def speed_limit_at(self, s_m: float, accel_mps2: float) -> float:
        """The speed limit at route arc length ``s_m`` (linear between samples), m/s."""
        limit = self.speed_limit(accel_mps2)
        i = min(max(int(s_m / DS_M), 0), limit.size - 2)
        f = min(max(s_m / DS_M - i, 0.0), 1.0)
        return float(limit[i] + f * (limit[i + 1] - limit[i]))


def build_route(
    layout: JunctionLayout, length_m: float, lane_width_m: float, rng: np.random.Generator
) -> JunctionRoute:
    """Draws a network, plans a route on it and builds its geometry (see the module doc).

    Args:
        layout: The town's junction layout.
        length_m: Least length of the route's centreline, m.
        lane_width_m: Width of each lane, m.
        rng: The random stream (the only one).

    Raises:
        RoutePlanningError: If no drawn network gives a route clear of its stubs in
            :data:`MAX_ATTEMPTS` attempts.
    """
    for _ in range(MAX_ATTEMPTS):
        network = draw_network(layout, length_m, rng)
        steps = plan_route(network, length_m + 20.0, rng)
        route = route_geometry(network, steps, layout, length_m, lane_width_m, rng)
        if stub_clearance_m(route) >= layout.clearance_m:
            return route
    raise RoutePlanningError(
        f"no route of {length_m:.0f} m kept its stubs {layout.clearance_m} m clear of the "
        f"route in {MAX_ATTEMPTS} drawn networks"
    )


def turn_profile(radius_m: float, clothoid_m: float, sign: float) -> np.ndarray:
    """Curvature samples of a 90 degree clothoid-arc-clothoid turn (``sign`` +1 = left).

    Starts and ends at zero curvature; scaled so that the heading the road integrates
    (trapezoidal) turns by exactly pi/2.
    """
    n_ramp = max(round(clothoid_m / DS_M), 1)
    n_hold = max(round((0.5 * math.pi * radius_m - clothoid_m) / DS_M), 0)
    ramp = np.arange(n_ramp + 1) / n_ramp
    p = np.concatenate([ramp, np.ones(n_hold), ramp[::-1]])
    return sign * p * (0.5 * math.pi / (DS_M * p.sum()))


def bend_pair_profile(curvature_per_m: float, lobe_m: float, ramp_m: float) -> np.ndarray:
    """An S-shaped pair of bends with no net change of heading or lateral position.

    Four lobes (+, -, -, +), each a ramp up, a hold and a ramp down, start and end straight.
    """
    n_ramp, n_hold = max(round(ramp_m / DS_M), 1), max(round(lobe_m / DS_M), 0)
    up = np.arange(1, n_ramp + 1) / n_ramp
    lobe = np.concatenate([up, np.ones(n_hold), up[::-1][1:], [0.0]])
    k = curvature_per_m
    return np.concatenate([[0.0], k * lobe, -k * lobe, -k * lobe, k * lobe])


def _chord(profile: np.ndarray) -> tuple[float, float]:
    """(x, y) of a profile's last sample relative to its first, starting along +x (as Road)."""
    dpsi = 0.5 * (profile[1:] + profile[:-1]) * DS_M
    heading = np.concatenate([[0.0], np.cumsum(dpsi)])
    mid = heading[:-1] + 0.5 * dpsi
    return float(np.sum(DS_M * np.cos(mid))), float(np.sum(DS_M * np.sin(mid)))


def route_geometry(
    network: RoadNetwork,
    steps: tuple[PlannedStep, ...],
    layout: JunctionLayout,
    length_m: float,
    lane_width_m: float,
    rng: np.random.Generator,
) -> JunctionRoute:
    """The centreline, junction records and arms of a planned route (see the module doc)."""
    margin = round(layout.box_margin_m / DS_M)
    turns, box_in, box_out = [], [], []
    for step in steps:
        radius = float(rng.uniform(*layout.turn_radius_m))
        clothoid = float(rng.uniform(*layout.clothoid_m))
        sign = {Command.LEFT: 1.0, Command.RIGHT: -1.0}.get(step.command, 1.0)
        p = turn_profile(radius, clothoid, sign)
        a, b = _chord(p)
        if step.command == Command.STRAIGHT:  # a straight box as big as this turn's would be
            n = round(2.0 * a / DS_M)
            p = np.zeros(n + 1)
            box_in.append((0.5 * n + margin) * DS_M)
            box_out.append((0.5 * n + margin) * DS_M)
        else:
            box_in.append(a + margin * DS_M)
            box_out.append(abs(b) + margin * DS_M)
        turns.append(p)
    pieces: list[np.ndarray] = []
    spans = []  # per junction: (entry sample, turn start sample, turn end sample, exit sample)
    at = 0  # index of the next sample

    def add(piece: np.ndarray) -> None:
        nonlocal at
        pieces.append(piece)
        at += piece.size

    for k, p in enumerate(turns):
        prev_out = box_out[k - 1] if k > 0 else 0.0
        link = network.lead_m if k == 0 else steps[k - 1].link_m
        add(_link_profile(link - prev_out - box_in[k], layout, rng))
        entry = at
        add(np.zeros(margin))
        start = at
        add(p[:-1])
        end = at
        add(np.zeros(margin))
        spans.append((entry, start, end, at))
    add(_link_profile(steps[-1].link_m - box_out[-1] - 20.0, layout, rng))
    curvature = np.concatenate(pieces)
    need = math.ceil(length_m / DS_M) + 1 - curvature.size
    if need > 0:
        curvature = np.concatenate([curvature, np.zeros(need)])
    road = Road(curvature, lane_width_m)
    junctions, arms = [], []
    stub_lo, stub_hi = layout.stub_length_m
    for k, (step, (entry, start, end, exit_)) in enumerate(zip(steps, spans, strict=True)):
        h_in = float(road.heading[entry])
        base = h_in - step.heading_in * 0.5 * math.pi  # numerical drift of the heading
        ex, ey, _ = road.locate_scalar(entry * DS_M)
        half = box_in[k]
        cx, cy = ex + half * math.cos(h_in), ey + half * math.sin(h_in)
        node = network.nodes[step.node]
        arm_dirs = sorted(node.arms)
        for d in arm_dirs:
            taken = d in (step.heading_out, (step.heading_in + 2) % 4)
            length = half + 1.0 if taken else float(rng.uniform(stub_lo, stub_hi))
            arms.append(Arm(k, cx, cy, base + d * 0.5 * math.pi, length, taken))
        junctions.append(
            Junction(
                index=k,
                kind=node.kind,
                centre_m=(cx, cy),
                entry_s_m=entry * DS_M,
                centre_s_m=0.5 * (start + end) * DS_M,
                exit_s_m=exit_ * DS_M,
                box_half_m=half,
                arms_rad=tuple(base + d * 0.5 * math.pi for d in arm_dirs),
                branch_rad=base + step.heading_out * 0.5 * math.pi,
                command=step.command,
            )
        )
    return JunctionRoute(road, tuple(junctions), tuple(arms), layout)


def _link_profile(chord_m: float, layout: JunctionLayout, rng: np.random.Generator) -> np.ndarray:
    """Curvature samples of a road between two junctions covering ``chord_m`` metres.

    A straight, or (with probability ``bend_share``) a bend pair between two straights of at
    least 20 m each; the road ends where it started laterally and with the same heading.
    """
    n = max(round(chord_m / DS_M), 1)
    bend = rng.random() < layout.bend_share
    k = float(rng.uniform(*layout.bend_curvature_per_m))
    lobe = float(rng.uniform(*layout.bend_lobe_m))
    if bend:
        p = bend_pair_profile(k, lobe, 0.5 * lobe)
        chord, _ = _chord(p)
        rest = n - round(chord / DS_M)
        if rest * DS_M >= 40.0:
            before = rest // 2
            return np.concatenate([np.zeros(before), p[:-1], np.zeros(rest - before)])
    return np.zeros(n)


def stub_clearance_m(route: JunctionRoute) -> float:
    """Least distance between a stub (beyond its own junction box) and the route, m.

    Every stub point from ``box_half + clearance`` outwards (every 2 m) against every route
    centreline point (every 2 m); inf for a route without stubs.
    """
    road = route.road
    step = max(int(2.0 / DS_M), 1)
    rx, ry = road.x[::step], road.y[::step]
    best = math.inf
    for arm in route.arms:
        if arm.taken:
            continue
        half = route.junctions[arm.junction].box_half_m
        d = np.arange(half + route.layout.clearance_m, arm.length_m + 1e-9, 2.0)
        if d.size == 0:
            continue
        px = arm.x_m + d * math.cos(arm.heading_rad)
        py = arm.y_m + d * math.sin(arm.heading_rad)
        d2 = (px[:, None] - rx[None, :]) ** 2 + (py[:, None] - ry[None, :]) ** 2
        best = min(best, float(np.sqrt(d2.min())))
    return best

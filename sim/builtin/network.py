"""Road networks of the junction towns: a lattice of T and X junctions and its links.

A junction town's network for a (town, seed) is a graph: nodes are junctions, each with the
arms (roads) it has, in quarter turns of the world frame (0 = +x east, 1 = +y north, 2 = west,
3 = south); a link joins an arm of one junction to the opposite arm of its neighbour. An arm
without a link leads out of the network (it is drawn as a stub but no route may take it).

:func:`draw_network` lays the junctions on a lattice of columns and rows with drawn
spacings, then turns a share of the four-way junctions into T junctions by removing one of
their roads. The route planner (:mod:`sim.builtin.route_plan`) walks the graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.spec import SimConfigError

EAST, NORTH, WEST, SOUTH = 0, 1, 2, 3
"""Arm directions in quarter turns counter-clockwise from the world x axis."""


class RoutePlanningError(SimConfigError):
    """A network no route can be planned on (a dead end, a disconnected graph, no room)."""


@dataclass(frozen=True)
class JunctionLayout:
    """How a junction town's network and its routes are laid out (the junction half of a town).

    The ego lane's turn radius is the centreline radius minus half a lane width in a right
    turn and plus half a lane width in a left turn: with the default radii and lanes of
    3.0-3.6 m, right turns go down to about 10 m.
    """

    spacing_m: tuple[float, float] = (120.0, 250.0)
    """Range of the centre-to-centre distance of neighbouring junctions (drawn per lattice
    column and row), m; also the route's run-up from its start to the first junction."""
    x_share: float = 0.5
    """Probability that a four-way junction keeps all its roads when the network is drawn;
    otherwise one of its roads is removed, which makes it and the junction at that road's
    other end T junctions."""
    turn_radius_m: tuple[float, float] = (11.8, 16.0)
    """Range of the centreline radius of a 90 degree turn's arc, m (drawn per junction)."""
    clothoid_m: tuple[float, float] = (5.0, 9.0)
    """Range of the length of each clothoid ramp into and out of a turn's arc, m."""
    box_margin_m: float = 1.0
    """Straight inside the junction box before and after a turn, m: the box's half size is a
    turn's tangent length plus this, so the markings end before the route starts to turn."""
    stub_length_m: tuple[float, float] = (60.0, 80.0)
    """Range of the length of an arm the route does not take (from the junction centre), m."""
    a_lat_max_mps2: float = 2.5
    """Lateral acceleration the cruise control keeps to in turns, m/s^2."""
    decel_mps2: float = 2.0
    """Comfortable deceleration of the cruise control before a turn, m/s^2."""
    bend_share: float = 0.5
    """Probability that a road between two junctions has a gentle S-shaped pair of bends."""
    bend_curvature_per_m: tuple[float, float] = (1.0 / 500.0, 1.0 / 180.0)
    """Range of the curvature of those bends, 1/m."""
    bend_lobe_m: tuple[float, float] = (15.0, 30.0)
    """Range of the length of each of the four holds of such a bend pair, m."""
    rows: int = 3
    """Lattice rows on each side of the start row (routes turn back east at the edge)."""
    clearance_m: float = 14.0
    """Least distance between a stub and any other part of the route, m (else re-drawn)."""
    entry_marking: str = "stop"
    """Marking across the lane entering a junction: ``"stop"`` (a solid line) or
    ``"give_way"`` (a dashed line with triangles)."""

    def __post_init__(self) -> None:
        for name in (
            "spacing_m",
            "turn_radius_m",
            "clothoid_m",
            "stub_length_m",
            "bend_curvature_per_m",
            "bend_lobe_m",
        ):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi:
                raise SimConfigError(f"{name} must be (lo, hi) with 0 < lo <= hi, got {lo, hi}")
        for name in ("x_share", "bend_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SimConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.turn_radius_m[0] < 8.0:
            raise SimConfigError(f"turn_radius_m must start at >= 8 m, got {self.turn_radius_m}")
        if self.clothoid_m[1] > 0.5 * math.pi * self.turn_radius_m[0]:
            raise SimConfigError("clothoid_m must fit a 90 degree turn of the smallest radius")
        if self.spacing_m[0] < self.stub_length_m[1] + self.clearance_m + 20.0:
            raise SimConfigError(
                f"spacing_m {self.spacing_m} must start at least 20 m beyond the longest stub "
                f"plus the clearance ({self.stub_length_m[1]} + {self.clearance_m} m)"
            )
        for name in ("box_margin_m", "a_lat_max_mps2", "decel_mps2", "clearance_m"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0.0):
                raise SimConfigError(f"{name} must be finite and >= 0, got {getattr(self, name)}")
        if self.a_lat_max_mps2 <= 0.0 or self.decel_mps2 <= 0.0:
            raise SimConfigError("a_lat_max_mps2 and decel_mps2 must be positive")
        if not 1 <= self.rows <= 50:
            raise SimConfigError(f"rows must be in [1, 50], got {self.rows}")
        if self.entry_marking not in ("stop", "give_way"):
            raise SimConfigError(
                f"entry_marking must be 'stop' or 'give_way', got {self.entry_marking!r}"
            )


@dataclass(frozen=True)
class NetworkNode:
    """One junction of a network."""

    arms: frozenset[int]
    """Directions of its roads (:data:`EAST` ... :data:`SOUTH`); 3 = a T, 4 = an X."""

    @property
    def kind(self) -> str:
        """``"T"`` (three arms) or ``"X"`` (four)."""
        return "X" if len(self.arms) == 4 else "T"


@dataclass(frozen=True)
class RoadNetwork:
    """A graph of junctions joined by roads (see the module doc).

    Raises:
        RoutePlanningError: For a link between arms a node lacks, a node with fewer than
            three arms, a start node without a west arm, or nodes the start cannot reach.
    """

    nodes: tuple[NetworkNode, ...]
    """The junctions."""
    links: tuple[tuple[int, int, int, float], ...]
    """``(node a, direction of a's arm, node b, length m)``: a's arm in that direction joins
    b's opposite arm; length is the centre-to-centre distance."""
    start: int = 0
    """The node a route reaches first, driving east into its west arm."""
    lead_m: float = 150.0
    """Distance from the route's start to the start node's centre, m."""

    def __post_init__(self) -> None:
        n = len(self.nodes)
        if not 0 <= self.start < n:
            raise RoutePlanningError(f"start node {self.start} is not one of the {n} nodes")
        for i, node in enumerate(self.nodes):
            if len(node.arms) < 3 or not node.arms <= {EAST, NORTH, WEST, SOUTH}:
                raise RoutePlanningError(
                    f"node {i} must have 3 or 4 arms among 0-3, got {sorted(node.arms)}"
                )
        if WEST not in self.nodes[self.start].arms:
            raise RoutePlanningError(f"the start node {self.start} has no west arm to enter by")
        seen: set[tuple[int, int]] = set()
        for a, d, b, length in self.links:
            if not (0 <= a < n and 0 <= b < n and a != b):
                raise RoutePlanningError(f"link {(a, d, b)} names nodes outside 0..{n - 1}")
            back = (d + 2) % 4
            if d not in self.nodes[a].arms or back not in self.nodes[b].arms:
                raise RoutePlanningError(f"link {(a, d, b)} joins an arm a node does not have")
            if (a, d) in seen or (b, back) in seen:
                raise RoutePlanningError(f"link {(a, d, b)} reuses an arm")
            if not length > 0:
                raise RoutePlanningError(f"link {(a, d, b)} must have a positive length")
            seen.update({(a, d), (b, back)})
        reach, todo = {self.start}, [self.start]
        targets = self.targets
        while todo:
            a = todo.pop()
            for b, _ in (targets[(a, d)] for d in range(4) if (a, d) in targets):
                if b not in reach:
                    reach.add(b)
                    todo.append(b)
        if len(reach) < n:
            lost = sorted(set(range(n)) - reach)
            raise RoutePlanningError(
                f"disconnected network: nodes {lost[:10]} cannot be reached from the start"
            )

    @property
    def targets(self) -> dict[tuple[int, int], tuple[int, float]]:
        """``(node, direction) -> (neighbour, length m)`` for every linked arm, both ways."""
        out: dict[tuple[int, int], tuple[int, float]] = {}
        for a, d, b, length in self.links:
            out[(a, d)] = (b, length)
            out[(b, (d + 2) % 4)] = (a, length)
        return out


def draw_network(layout: JunctionLayout, length_m: float, rng: np.random.Generator) -> RoadNetwork:
    """Draws a lattice network big enough for a route of ``length_m`` metres.

    Columns run east from the start node (column 0, middle row); there are enough of them for
    a route that only ever drives east. Edge nodes keep all their arms: those of the outer
    columns and rows lead out of the network (stubs); only four-way junctions inside lose a
    road (so every node keeps three or four arms and the graph stays connected).
    """
    lo, hi = layout.spacing_m
    cols = math.ceil(length_m / lo) + 2
    rows = 2 * layout.rows + 1
    col_gap = rng.uniform(lo, hi, cols - 1)
    row_gap = rng.uniform(lo, hi, rows - 1)
    lead = float(rng.uniform(lo, hi))

    def node(c: int, r: int) -> int:
        return c * rows + r

    arms = [{EAST, NORTH, WEST, SOUTH} for _ in range(cols * rows)]
    edges: dict[tuple[int, int], tuple[int, float]] = {}
    for c in range(cols):
        for r in range(rows):
            if c + 1 < cols:
                edges[(node(c, r), EAST)] = (node(c + 1, r), float(col_gap[c]))
            if r + 1 < rows:
                edges[(node(c, r), NORTH)] = (node(c, r + 1), float(row_gap[r]))
    step = {EAST: rows, NORTH: 1, WEST: -rows, SOUTH: -1}
    inner = [node(c, r) for c in range(1, cols - 1) for r in range(1, rows - 1)]
    is_inner = set(inner)
    for i in (inner[k] for k in rng.permutation(len(inner))):
        u = rng.random()
        if u < layout.x_share or len(arms[i]) < 4:
            continue
        d = int(rng.integers(4))
        j = i + step[d]  # an inner node's neighbours are all in the lattice
        if j not in is_inner or len(arms[j]) < 4:
            continue
        arms[i].discard(d)
        arms[j].discard((d + 2) % 4)
        del edges[(i, d) if d in (EAST, NORTH) else (j, (d + 2) % 4)]
    links = tuple((a, d, b, length) for (a, d), (b, length) in edges.items())
    nodes = tuple(NetworkNode(frozenset(a)) for a in arms)
    return RoadNetwork(nodes, links, start=node(0, layout.rows), lead_m=lead)

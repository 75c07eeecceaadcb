"""What a junction adds to the world: its arms, corners and markings, and where props may not be.

All shapes are world-frame polygons ((n, 2) arrays of x, y in m) that
:class:`~sim.builtin.texture.GroundTexture` rasterises with the route's own bands:

* every arm of a junction: shoulder and asphalt from the centre outwards; a stub's centre and
  edge lines start at the junction box (``box_half_m`` from the centre);
* every corner between two neighbouring arms: a rounded kerb (asphalt, shoulder and an edge
  line on an arc tangent to both arms' edges at the box);
* a T junction: the bar's far edge line straight across the box;
* on every arm the lane leading into the junction ends at the box with a stop line (solid)
  or a give-way line (dashed, with a triangle before it), by the town's ``entry_marking``.

The route's own markings stop at each box (:func:`marking_intervals`), so there are none
inside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.builtin.route_plan import Arm, Junction, JunctionRoute
from sim.builtin.towns import Markings, PropSet, Town

Polygon = np.ndarray
"""(n, 2) world x, y of a polygon's corners, m."""
_STOP_LINE_M = 0.4
"""Depth of a stop line along the lane, m (a give-way line's dashes too)."""
_ARC_POINTS = 24
"""Points on each quarter-circle kerb."""


@dataclass
class JunctionShapes:
    """The polygons of the junctions near one tile, by drawing layer."""

    shoulder: list[Polygon]
    """Drawn with the route's shoulder, before any asphalt."""
    asphalt: list[Polygon]
    """Drawn with the route's asphalt."""
    paint: list[tuple[list[float], list[Polygon]]]
    """(colour, polygons) drawn with the route's markings."""


def _frame(arm: Arm) -> tuple[float, float, float, float]:
    return arm.x_m, arm.y_m, math.cos(arm.heading_rad), math.sin(arm.heading_rad)


def _local(frame: tuple[float, float, float, float], along, across) -> Polygon:
    """World points of (along, across) coordinates in an arm's frame (across + = left)."""
    x0, y0, c, s = frame
    a, b = np.asarray(along, np.float64), np.asarray(across, np.float64)
    return np.stack([x0 + c * a - s * b, y0 + s * a + c * b], axis=1)


def _rect(frame, a0: float, a1: float, b0: float, b1: float) -> Polygon:
    return _local(frame, [a0, a1, a1, a0], [b0, b0, b1, b1])


def _centre_line(frame, mk: Markings, a0: float, a1: float) -> list[Polygon]:
    """The centre line of an arm between along-distances a0 and a1 (dashes from a0)."""
    w = mk.width_m
    if mk.centre == "solid":
        return [_rect(frame, a0, a1, -w / 2, w / 2)]
    if mk.centre == "double":
        return [_rect(frame, a0, a1, 0.05, 0.05 + w), _rect(frame, a0, a1, -0.05 - w, -0.05)]
    if mk.centre == "dashed":
        period = mk.dash_on_m + mk.dash_off_m
        starts = np.arange(a0 + mk.dash_off_m / 2, a1, period)
        return [_rect(frame, a, min(a + mk.dash_on_m, a1), -w / 2, w / 2) for a in starts]
    return []


def _entry_marking(frame, box: float, lane_w: float, style: str) -> list[Polygon]:
    """The stop or give-way line across an arm's incoming lane (left of the outward axis)."""
    a0, a1 = box, box + _STOP_LINE_M
    if style == "stop":
        return [_rect(frame, a0, a1, 0.05, lane_w - 0.05)]
    dashes = [_rect(frame, a0, a1, b, b + 0.5) for b in np.arange(0.1, lane_w - 0.4, 0.8)]
    mid = 0.5 * lane_w  # a triangle pointing at the junction, 2-4 m before the line
    triangle = _local(frame, [box + 2.0, box + 4.0, box + 4.0], [mid, mid + 0.5, mid - 0.5])
    return [*dashes, triangle]


def _corner(frame, box: float, r: float) -> Polygon:
    """The corner region between an arm (along u) and the arm to its left (along v).

    Bounded by both arms' lines at distance ``box - r`` and a quarter circle of radius ``r``
    about (box, box), the kerb tangent to both at the box.
    """
    t = np.linspace(1.5 * math.pi, math.pi, _ARC_POINTS)
    e = box - r
    u = np.concatenate([[e, box], box + r * np.cos(t), [e]])
    v = np.concatenate([[e, e], box + r * np.sin(t), [box]])
    return _local(frame, u, v)


def _arc_band(frame, box: float, r0: float, r1: float) -> Polygon:
    t = np.linspace(1.5 * math.pi, math.pi, _ARC_POINTS)
    u = np.concatenate([box + r0 * np.cos(t), box + r1 * np.cos(t[::-1])])
    v = np.concatenate([box + r0 * np.sin(t), box + r1 * np.sin(t[::-1])])
    return _local(frame, u, v)


def junction_shapes(
    route: JunctionRoute,
    town: Town,
    s0: float,
    s1: float,
    paint: Callable[[tuple[int, int, int]], list[float]],
) -> JunctionShapes:
    """The shapes of every junction whose centre lies within 150 m of route arc [s0, s1].

    Args:
        route: The route.
        town: Its town (theme: shoulder width, markings; layout: the entry marking).
        s0: Start of the tile's route section, m.
        s1: End of it, m.
        paint: RGB -> the drawn colour (faded paint on the wet asphalt).
    """
    theme, mk = town.theme, town.theme.markings
    lw = route.road.lane_width_m
    half, outer = lw + 0.3, lw + 0.3 + theme.shoulder_width_m
    w = mk.width_m
    out = JunctionShapes([], [], [])
    edge, centre, white = [], [], []
    for j in route.junctions:
        if not s0 - 150.0 <= j.centre_s_m <= s1 + 150.0:
            continue
        box = j.box_half_m
        arms = [a for a in route.arms if a.junction == j.index]
        for arm in arms:
            f = _frame(arm)
            out.shoulder.append(_rect(f, 0.0, arm.length_m, -outer, outer))
            out.asphalt.append(_rect(f, 0.0, arm.length_m, -half, half))
            white += _entry_marking(f, box, lw, route.layout.entry_marking)
            if not arm.taken:
                centre += _centre_line(f, mk, box, arm.length_m)
                if mk.edge:
                    edge += [_rect(f, box, arm.length_m, o - w / 2, o + w / 2) for o in (-lw, lw)]
        headings = [a.heading_rad for a in arms]
        for arm in arms:
            left = arm.heading_rad + 0.5 * math.pi
            if not any(abs(math.remainder(h - left, math.tau)) < 0.1 for h in headings):
                if len(arms) == 3 and mk.edge:  # the bar's far edge, across the missing arm
                    f = _frame(Arm(j.index, arm.x_m, arm.y_m, left, 0.0, False))
                    edge.append(_rect(f, lw - w / 2, lw + w / 2, -box, box))
                continue
            f = _frame(arm)
            r = box - half
            out.shoulder.append(_corner(f, box, r - theme.shoulder_width_m))
            out.asphalt.append(_corner(f, box, r))
            if mk.edge:
                edge.append(_arc_band(f, box, r + 0.3 - w / 2, r + 0.3 + w / 2))
    if edge:
        out.paint.append((paint(mk.edge_colour), edge))
    if centre:
        out.paint.append((paint(mk.centre_colour), centre))
    if white:
        out.paint.append((paint(mk.edge_colour), white))
    return out


def marking_intervals(route: JunctionRoute, s0: float, s1: float) -> list[tuple[float, float]]:
    """The parts of route arc [s0, s1] outside every junction box (where its lines are)."""
    parts, a = [], s0
    for j in route.junctions:
        if j.exit_s_m <= a or j.entry_s_m >= s1:
            continue
        if j.entry_s_m > a:
            parts.append((a, j.entry_s_m))
        a = max(a, j.exit_s_m)
    if a < s1:
        parts.append((a, s1))
    return parts


def arm_extent(route: JunctionRoute, s0: float, s1: float, reach_m: float) -> Polygon:
    """World points a tile of route arc [s0, s1] must also cover: its junctions' arm ends."""
    pts = []
    for arm in route.arms:
        j = route.junctions[arm.junction]
        if s0 <= j.centre_s_m <= s1:
            f = _frame(arm)
            pts.append(_rect(f, 0.0, arm.length_m + reach_m, -reach_m, reach_m))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def clear_junctions(props: PropSet, route: JunctionRoute, town: Town) -> PropSet:
    """The props that stand neither in a junction box (with its corners) nor on any arm."""
    outer = route.road.lane_width_m + 0.3 + town.theme.shoulder_width_m
    keep = np.ones(len(props), dtype=bool)
    for j in route.junctions:
        keep &= ~_in_box(props, j, outer)
    for arm in route.arms:
        x0, y0, c, s = _frame(arm)
        dx, dy = props.x - x0, props.y - y0
        along = c * dx + s * dy
        across = np.abs(-s * dx + c * dy)
        near = across < outer + 0.5 * props.width + 0.5
        keep &= ~(near & (along > -outer) & (along < arm.length_m + outer))
    idx = np.flatnonzero(keep)
    return PropSet(
        x=props.x[idx],
        y=props.y[idx],
        s=props.s[idx],
        kind=props.kind[idx],
        height=props.height[idx],
        width=props.width[idx],
        colour=props.colour[idx],
    )


def _in_box(props: PropSet, j: Junction, outer: float) -> np.ndarray:
    """Props within the junction's box grown by the road's outer edge and their half width."""
    h = j.arms_rad[0]
    c, s = math.cos(h), math.sin(h)
    dx, dy = props.x - j.centre_m[0], props.y - j.centre_m[1]
    reach = j.box_half_m + outer + 0.5 * props.width
    return (np.abs(c * dx + s * dy) < reach) & (np.abs(-s * dx + c * dy) < reach)

"""A small OpenDRIVE network with one X junction and one T junction, for the planner tests.

Layout (OpenDRIVE frame = ours: x east, y north; 3.5 m lanes, one each way, right-hand
traffic, junction boxes 20 m wide; every outer end is a dead end)::

                 road 4                road 5
                   |                     |
    road 1 ------- X ------ road 2 ----- T
                   |                     |
                 road 3                road 6

The X junction (id 1000) at the origin connects roads 1-4 with every left, right and straight
branch; the T junction (id 2000) at (100, 0) connects roads 2, 5 and 6. Connecting roads run
from an arm's junction end to another's: a line for straight on, a quarter circle of radius
10 m (the reference line; lanes are 1.75 m inside or outside it) for a turn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HALF_BOX_M = 10.0
"""Half the size of each junction box, m: the turn radius of the connecting reference lines."""
LANE_WIDTH_M = 3.5


@dataclass(frozen=True)
class Arm:
    """A road in the network: a straight line from ``start`` of ``length`` at ``hdg``."""

    road_id: int
    start: tuple[float, float]
    hdg: float
    length: float
    start_junction: int = -1
    end_junction: int = -1

    @property
    def end(self) -> tuple[float, float]:
        return (
            self.start[0] + self.length * math.cos(self.hdg),
            self.start[1] + self.length * math.sin(self.hdg),
        )


ARMS = (
    Arm(1, (-110.0, 0.0), 0.0, 100.0, end_junction=1000),
    Arm(2, (10.0, 0.0), 0.0, 80.0, start_junction=1000, end_junction=2000),
    Arm(3, (0.0, -10.0), -math.pi / 2, 100.0, start_junction=1000),
    Arm(4, (0.0, 10.0), math.pi / 2, 100.0, start_junction=1000),
    Arm(5, (100.0, 10.0), math.pi / 2, 100.0, start_junction=2000),
    Arm(6, (100.0, -10.0), -math.pi / 2, 100.0, start_junction=2000),
)


@dataclass(frozen=True)
class _Port:
    """Where an arm meets a junction: reference point, heading into the junction, lanes."""

    arm: Arm
    point: tuple[float, float]
    inward: float
    lane_in: int
    lane_out: int
    contact: str


def _ports(junction: int) -> list[_Port]:
    out = []
    for a in ARMS:
        if a.end_junction == junction:
            out.append(_Port(a, a.end, a.hdg, -1, 1, "end"))
        if a.start_junction == junction:
            out.append(_Port(a, a.start, a.hdg + math.pi, 1, -1, "start"))
    return out


def _wrap(a: float) -> float:
    return math.remainder(a, 2 * math.pi)


def _lane(lane_id: int, link: str = "") -> str:
    return (
        f'<lane id="{lane_id}" type="driving" level="false"><link>{link}</link>'
        f'<width sOffset="0" a="{LANE_WIDTH_M}" b="0" c="0" d="0"/></lane>'
    )


def _road(rid: int, junction: int, length: float, geometry: str, link: str, lanes: str) -> str:
    return (
        f'<road name="r{rid}" length="{length:.9f}" id="{rid}" junction="{junction}">'
        f"<link>{link}</link><planView>{geometry}</planView>"
        f'<lanes><laneSection s="0.0">{lanes}</laneSection></lanes></road>'
    )


def _geometry(x: float, y: float, hdg: float, length: float, curvature: float) -> str:
    shape = "<line/>" if curvature == 0.0 else f'<arc curvature="{curvature:.9f}"/>'
    return (
        f'<geometry s="0.0" x="{x:.9f}" y="{y:.9f}" hdg="{hdg:.9f}" length="{length:.9f}">'
        f"{shape}</geometry>"
    )


def junctions_xodr() -> str:
    """The OpenDRIVE text of the network."""
    centre = '<center><lane id="0" type="none" level="false"/></center>'
    roads, junctions = [], []
    for a in ARMS:
        link = ""
        if a.start_junction >= 0:
            link += f'<predecessor elementType="junction" elementId="{a.start_junction}"/>'
        if a.end_junction >= 0:
            link += f'<successor elementType="junction" elementId="{a.end_junction}"/>'
        lanes = f"<left>{_lane(1)}</left>{centre}<right>{_lane(-1)}</right>"
        geo = _geometry(*a.start, a.hdg, a.length, 0.0)
        roads.append(_road(a.road_id, -1, a.length, geo, link, lanes))
    next_id = 100
    for junction in (1000, 2000):
        connections = []
        ports = _ports(junction)
        for p in ports:
            for q in ports:
                if q.arm.road_id == p.arm.road_id:
                    continue
                turn = _wrap(q.inward + math.pi - p.inward)
                if abs(turn) < 1e-6:
                    length, k = math.dist(p.point, q.point), 0.0
                else:
                    length, k = HALF_BOX_M * math.pi / 2, math.copysign(1 / HALF_BOX_M, turn)
                link = (
                    f'<predecessor elementType="road" elementId="{p.arm.road_id}" '
                    f'contactPoint="{p.contact}"/>'
                    f'<successor elementType="road" elementId="{q.arm.road_id}" '
                    f'contactPoint="{q.contact}"/>'
                )
                lane_link = f'<predecessor id="{p.lane_in}"/><successor id="{q.lane_out}"/>'
                lanes = f"{centre}<right>{_lane(-1, lane_link)}</right>"
                geo = _geometry(*p.point, p.inward, length, k)
                roads.append(_road(next_id, junction, length, geo, link, lanes))
                connections.append(
                    f'<connection id="{len(connections)}" incomingRoad="{p.arm.road_id}" '
                    f'connectingRoad="{next_id}" contactPoint="start">'
                    f'<laneLink from="{p.lane_in}" to="-1"/></connection>'
                )
                next_id += 1
        body = "".join(connections)
        junctions.append(f'<junction id="{junction}" name="j{junction}">{body}</junction>')
    return (
        '<?xml version="1.0" standalone="yes"?>\n<OpenDRIVE>'
        '<header revMajor="1" revMinor="4" name="test_junctions" version="1.00"/>'
        f"{''.join(roads)}{''.join(junctions)}</OpenDRIVE>\n"
    )

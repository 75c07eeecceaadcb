"""Named towns: a road-layout family plus a visual theme each.

Three towns are for training and three are held out as unseen towns for evaluation
(bends: the largest curvature; lanes: the range of the lane width drawn per road). Apart
from them, three junction towns (``Town.junctions``, :mod:`sim.builtin.route_plan`) are
road networks with T and X junctions: ``village``, ``farmland`` (training), ``old_town``
(held out):

=================  ======  ===========  ==========  ==========================================
town               split   bends        lanes       what it looks like
=================  ======  ===========  ==========  ==========================================
``countryside``    train   R >= 60 m    3.3-3.6 m   green fields, white dashes and edge lines,
                                                    trees, wooden poles, distant hills
``suburb``         train   R >= 40 m    3.1-3.4 m   lawns, houses, street lights, signs, double
                                                    yellow centre line, wide kerb, treeline
``highway``        train   R >= 250 m   3.75 m      grey shoulders, long white dashes, lamp
                                                    posts, signs, low hills
``mountain_pass``  unseen  R >= 25 m    3.0-3.2 m   rocky ground, solid yellow centre line,
                                                    pines, rocks, snow-capped mountains
``desert``         unseen  R >= 80 m    3.3-3.6 m   sand, faded white dashes, no edge lines,
                                                    cacti, boulders, mesas
``snow``           unseen  R >= 50 m    3.2-3.5 m   snow, faded yellow dashes, no edge lines,
                                                    snowy pines, white mountains
=================  ======  ===========  ==========  ==========================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.builtin.network import JunctionLayout
from sim.builtin.roads import RoadLayout
from sim.spec import SimConfigError

RGB = tuple[int, int, int]


class UnknownNameError(SimConfigError):
    """An unknown town or weather name; the message lists the valid names."""


@dataclass(frozen=True)
class Markings:
    """Lane markings painted on a road."""

    centre: str = "dashed"
    """Centre line: ``"dashed"``, ``"solid"``, ``"double"`` or ``"none"``."""
    centre_colour: RGB = (235, 235, 230)
    """RGB colour of the centre line."""
    edge: bool = True
    """Whether solid edge lines are painted."""
    edge_colour: RGB = (235, 235, 230)
    """RGB colour of the edge lines."""
    width_m: float = 0.15
    """Width of a painted line, m."""
    dash_on_m: float = 3.0
    """Length of a painted dash, m."""
    dash_off_m: float = 6.0
    """Gap between dashes, m."""
    opacity: float = 1.0
    """1 = fresh paint, lower = faded (blended into the asphalt)."""

    def __post_init__(self) -> None:
        if self.centre not in ("dashed", "solid", "double", "none"):
            raise SimConfigError(f"centre must be dashed/solid/double/none, got {self.centre!r}")
        if not 0.0 <= self.opacity <= 1.0:
            raise SimConfigError(f"opacity must be in [0, 1], got {self.opacity}")


@dataclass(frozen=True)
class Props:
    """One kind of roadside object (drawn as a billboard)."""

    kind: str
    """``tree``, ``pine``, ``pole``, ``lamp``, ``sign``, ``house``, ``cactus`` or ``rock``."""
    per_100m: float
    """Mean number per 100 m of road on each side."""
    offset_m: tuple[float, float]
    """Range of the distance beyond the shoulder's outer edge, m."""
    height_m: tuple[float, float]
    """Range of the object's height, m."""


@dataclass(frozen=True)
class Backdrop:
    """Distant hills or mountains on the horizon.

    They are drawn in the sky: they turn with the car but, being kilometres away, show no
    parallax.
    """

    colour: RGB
    """RGB colour of the slopes before aerial haze."""
    height_deg: float
    """Largest elevation of the skyline above the horizon, degrees."""
    roughness: float = 0.5
    """0 = smooth rolling hills, 1 = jagged peaks."""
    flat_tops: float = 0.0
    """Fraction of the height above which the skyline is cut flat (mesas); 0 = off."""
    cap_colour: RGB | None = None
    """RGB colour of snow caps on the upper third, or None."""

    def __post_init__(self) -> None:
        if not 0.0 < self.height_deg < 20.0:
            raise SimConfigError(f"height_deg must be in (0, 20), got {self.height_deg}")
        if not 0.0 <= self.roughness <= 1.0 or not 0.0 <= self.flat_tops < 1.0:
            raise SimConfigError(
                f"roughness must be in [0, 1] and flat_tops in [0, 1), got "
                f"{self.roughness}, {self.flat_tops}"
            )


@dataclass(frozen=True)
class Theme:
    """The look of a town."""

    ground: RGB
    """Mean RGB colour of the roadside ground."""
    ground_variation: RGB
    """RGB amplitude of the large-scale ground colour variation."""
    shoulder: RGB
    """RGB colour of the shoulder."""
    asphalt: RGB
    """RGB colour of the asphalt."""
    markings: Markings
    props: tuple[Props, ...]
    foliage: RGB = (60, 110, 45)
    """RGB colour of tree crowns and pines."""
    house_colours: tuple[RGB, ...] = ((200, 190, 170), (170, 90, 70), (220, 215, 200))
    """Wall colours of houses."""
    shoulder_width_m: float = 1.0
    """Width of the shoulder outside each edge line, m."""
    backdrop: Backdrop | None = None
    """Distant skyline, or None for an open horizon."""


@dataclass(frozen=True)
class Town:
    """A named road family plus a theme."""

    name: str
    description: str
    layout: RoadLayout
    theme: Theme
    lane_width_m: tuple[float, float] = (3.5, 3.5)
    """Range of the lane width, m (drawn per road)."""
    speed_range_mps: tuple[float, float] = (8.0, 14.0)
    """Default range of the per-episode target speed, m/s."""
    junctions: JunctionLayout | None = None
    """A junction town's network layout (routes through T and X junctions, with commands);
    None = one road without junctions (``layout`` alone)."""


_WHITE: RGB = (235, 235, 228)
_YELLOW: RGB = (230, 185, 40)

_TOWN_LIST = (
    Town(
        name="countryside",
        description="green rolling fields, broad bends, white dashes, trees and wooden poles",
        layout=RoadLayout(
            max_curvature_per_m=1 / 60, min_curvature_per_m=1 / 400, straight_share=0.3
        ),
        theme=Theme(
            ground=(92, 128, 58),
            ground_variation=(22, 26, 14),
            shoulder=(128, 116, 92),
            asphalt=(88, 88, 90),
            markings=Markings(centre="dashed", centre_colour=_WHITE),
            props=(
                Props("tree", 3.0, (2.0, 14.0), (5.0, 10.0)),
                Props("pole", 2.0, (0.5, 1.5), (6.0, 7.5)),
            ),
            backdrop=Backdrop((70, 100, 70), 2.0, roughness=0.2),
        ),
        lane_width_m=(3.3, 3.6),
        speed_range_mps=(9.0, 14.0),
    ),
    Town(
        name="suburb",
        description="lawns, houses, street lights and signs, tighter bends, double yellow line",
        layout=RoadLayout(
            max_curvature_per_m=1 / 40,
            min_curvature_per_m=1 / 200,
            straight_share=0.4,
            piece_length_m=(30.0, 90.0),
        ),
        theme=Theme(
            ground=(104, 140, 70),
            ground_variation=(12, 14, 10),
            shoulder=(165, 162, 155),
            asphalt=(78, 78, 82),
            markings=Markings(centre="double", centre_colour=_YELLOW, width_m=0.12),
            props=(
                Props("house", 2.2, (5.0, 12.0), (5.0, 8.0)),
                Props("lamp", 1.5, (0.3, 0.8), (6.0, 7.0)),
                Props("tree", 2.0, (1.0, 6.0), (4.0, 8.0)),
                Props("sign", 0.5, (0.2, 0.6), (2.2, 2.8)),
            ),
            backdrop=Backdrop((50, 80, 50), 1.2, roughness=0.9),
            shoulder_width_m=1.5,
        ),
        lane_width_m=(3.1, 3.4),
        speed_range_mps=(8.0, 12.0),
    ),
    Town(
        name="highway",
        description="wide lanes, very gentle bends, grey shoulders, white dashes, lamp posts",
        layout=RoadLayout(
            max_curvature_per_m=1 / 250,
            min_curvature_per_m=1 / 1200,
            straight_share=0.35,
            piece_length_m=(100.0, 300.0),
            max_sharpness_per_m2=1 / 8000,
        ),
        theme=Theme(
            ground=(110, 130, 70),
            ground_variation=(18, 16, 12),
            shoulder=(112, 112, 112),
            asphalt=(96, 96, 98),
            markings=Markings(centre="dashed", centre_colour=_WHITE, dash_on_m=4.0, dash_off_m=8.0),
            props=(
                Props("lamp", 1.2, (1.0, 2.0), (8.0, 10.0)),
                Props("sign", 0.3, (1.0, 3.0), (3.0, 4.0)),
                Props("tree", 1.0, (8.0, 25.0), (6.0, 12.0)),
            ),
            backdrop=Backdrop((90, 110, 90), 1.5, roughness=0.1),
            shoulder_width_m=2.5,
        ),
        lane_width_m=(3.75, 3.75),
        speed_range_mps=(15.0, 22.0),
    ),
    Town(
        name="mountain_pass",
        description="rocky slopes, hairpins down to 25 m radius, narrow lanes, pines and rocks",
        layout=RoadLayout(
            max_curvature_per_m=1 / 25,
            min_curvature_per_m=1 / 120,
            straight_share=0.15,
            piece_length_m=(15.0, 60.0),
            max_sharpness_per_m2=1 / 300,
        ),
        theme=Theme(
            ground=(118, 104, 84),
            ground_variation=(24, 20, 16),
            shoulder=(140, 128, 110),
            asphalt=(70, 70, 72),
            markings=Markings(centre="solid", centre_colour=_YELLOW, width_m=0.12),
            props=(
                Props("pine", 5.0, (1.0, 14.0), (6.0, 14.0)),
                Props("rock", 3.0, (0.3, 6.0), (0.6, 1.8)),
            ),
            backdrop=Backdrop((78, 78, 84), 12.0, roughness=1.0, cap_colour=(235, 238, 242)),
            foliage=(40, 80, 45),
            shoulder_width_m=0.6,
        ),
        lane_width_m=(3.0, 3.2),
        speed_range_mps=(7.0, 11.0),
    ),
    Town(
        name="desert",
        description="sand, faded white dashes, no edge lines, cacti and boulders",
        layout=RoadLayout(
            max_curvature_per_m=1 / 80, min_curvature_per_m=1 / 600, straight_share=0.45
        ),
        theme=Theme(
            ground=(200, 170, 120),
            ground_variation=(24, 20, 16),
            shoulder=(176, 150, 110),
            asphalt=(104, 98, 92),
            markings=Markings(centre="dashed", centre_colour=_WHITE, edge=False, opacity=0.55),
            props=(
                Props("cactus", 2.0, (1.0, 15.0), (1.5, 4.0)),
                Props("rock", 1.5, (0.5, 12.0), (0.5, 2.0)),
            ),
            backdrop=Backdrop((170, 110, 80), 3.5, roughness=0.3, flat_tops=0.6),
            foliage=(70, 120, 60),
        ),
        lane_width_m=(3.3, 3.6),
        speed_range_mps=(11.0, 17.0),
    ),
    Town(
        name="snow",
        description="white ground, snowy pines, faded yellow dashes, no edge lines",
        layout=RoadLayout(
            max_curvature_per_m=1 / 50, min_curvature_per_m=1 / 300, straight_share=0.3
        ),
        theme=Theme(
            ground=(228, 232, 238),
            ground_variation=(10, 10, 8),
            shoulder=(205, 208, 212),
            asphalt=(96, 98, 104),
            markings=Markings(
                centre="dashed", centre_colour=_YELLOW, edge=False, opacity=0.6, width_m=0.12
            ),
            props=(
                Props("pine", 3.0, (1.0, 14.0), (5.0, 12.0)),
                Props("pole", 1.5, (0.3, 0.8), (2.0, 2.5)),
            ),
            backdrop=Backdrop((120, 130, 145), 5.0, roughness=0.6, cap_colour=(240, 243, 247)),
            foliage=(50, 85, 70),
        ),
        lane_width_m=(3.2, 3.5),
        speed_range_mps=(8.0, 13.0),
    ),
)

_JUNCTION_ROADS = RoadLayout(max_heading_rad=1.4)  # routes turn by 90 degrees (props window)
_JUNCTION_TOWN_LIST = (
    Town(
        name="village",
        description="suburb-like streets: T and X junctions, double yellow line, stop lines",
        layout=_JUNCTION_ROADS,
        theme=Theme(
            ground=(100, 138, 68),
            ground_variation=(12, 14, 10),
            shoulder=(165, 162, 155),
            asphalt=(80, 80, 84),
            markings=Markings(centre="double", centre_colour=_YELLOW, width_m=0.12),
            props=(
                Props("house", 2.2, (5.0, 12.0), (5.0, 8.0)),
                Props("lamp", 1.5, (0.3, 0.8), (6.0, 7.0)),
                Props("tree", 2.0, (1.0, 6.0), (4.0, 8.0)),
            ),
            backdrop=Backdrop((50, 80, 50), 1.2, roughness=0.9),
            shoulder_width_m=1.5,
        ),
        lane_width_m=(3.1, 3.4),
        speed_range_mps=(8.0, 11.0),
        junctions=JunctionLayout(x_share=0.55),
    ),
    Town(
        name="farmland",
        description="country lanes: T and X junctions among fields, white dashes, give-way lines",
        layout=_JUNCTION_ROADS,
        theme=Theme(
            ground=(96, 126, 60),
            ground_variation=(22, 26, 14),
            shoulder=(128, 116, 92),
            asphalt=(90, 89, 90),
            markings=Markings(centre="dashed", centre_colour=_WHITE),
            props=(
                Props("tree", 3.0, (2.0, 14.0), (5.0, 10.0)),
                Props("pole", 2.0, (0.5, 1.5), (6.0, 7.5)),
            ),
            backdrop=Backdrop((70, 100, 70), 2.0, roughness=0.2),
        ),
        lane_width_m=(3.3, 3.6),
        speed_range_mps=(9.0, 12.0),
        junctions=JunctionLayout(x_share=0.4, spacing_m=(150.0, 250.0), entry_marking="give_way"),
    ),
    Town(
        name="old_town",
        description="red-brown pavement, ochre ground, solid white centre line, tight junctions",
        layout=_JUNCTION_ROADS,
        theme=Theme(
            ground=(150, 128, 84),
            ground_variation=(18, 16, 12),
            shoulder=(150, 120, 100),
            asphalt=(104, 84, 78),
            markings=Markings(centre="solid", centre_colour=_WHITE, width_m=0.12, opacity=0.8),
            props=(
                Props("house", 3.0, (2.0, 8.0), (6.0, 10.0)),
                Props("sign", 0.6, (0.2, 0.6), (2.2, 2.8)),
                Props("pine", 1.0, (2.0, 8.0), (5.0, 9.0)),
            ),
            house_colours=((210, 170, 120), (180, 110, 80), (225, 210, 175)),
            backdrop=Backdrop((110, 95, 80), 2.5, roughness=0.7),
            shoulder_width_m=0.8,
        ),
        lane_width_m=(3.0, 3.3),
        speed_range_mps=(7.0, 10.0),
        junctions=JunctionLayout(x_share=0.7, spacing_m=(120.0, 200.0), turn_radius_m=(11.6, 14.0)),
    ),
)

TOWNS: tuple[str, ...] = tuple(t.name for t in _TOWN_LIST)
"""Names of every town."""
TRAIN_TOWNS: tuple[str, ...] = ("countryside", "suburb", "highway")
"""Towns used for recording training data."""
UNSEEN_TOWNS: tuple[str, ...] = ("mountain_pass", "desert", "snow")
"""Towns held out for evaluation (never in training data)."""

JUNCTION_TRAIN_TOWNS: tuple[str, ...] = ("village", "farmland")
"""Junction towns (road networks, routes with commands) used for recording training data."""
JUNCTION_UNSEEN_TOWNS: tuple[str, ...] = ("old_town",)
"""Junction towns held out for evaluation (never in training data)."""
JUNCTION_TOWNS: tuple[str, ...] = JUNCTION_TRAIN_TOWNS + JUNCTION_UNSEEN_TOWNS
"""Names of every junction town (not in :data:`TOWNS`, the lane-keeping towns)."""

_BY_NAME = {t.name: t for t in (*_TOWN_LIST, *_JUNCTION_TOWN_LIST)}
assert tuple(t.name for t in _JUNCTION_TOWN_LIST) == JUNCTION_TOWNS
assert set(TRAIN_TOWNS) | set(UNSEEN_TOWNS) == set(TOWNS)
assert not set(TRAIN_TOWNS) & set(UNSEEN_TOWNS)
assert all(t.layout.max_curvature_per_m <= 1 / 25 + 1e-12 for t in _TOWN_LIST)


def get_town(name: str) -> Town:
    """Returns the town called ``name``.

    Raises:
        UnknownNameError: If there is no such town (the message lists the valid names).
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise UnknownNameError(
            f"unknown town {name!r}; valid towns: {', '.join(TOWNS + JUNCTION_TOWNS)} "
            f"(train: {', '.join(TRAIN_TOWNS)}; unseen: {', '.join(UNSEEN_TOWNS)}; junction "
            f"train: {', '.join(JUNCTION_TRAIN_TOWNS)}; junction unseen: "
            f"{', '.join(JUNCTION_UNSEEN_TOWNS)})"
        ) from None


# ---------------------------------------------------------------------------------------------
# Roadside props

PROP_KINDS: tuple[str, ...] = ("tree", "pine", "pole", "lamp", "sign", "house", "cactus", "rock")
"""Kinds of roadside objects, in the order of their integer ids."""


@dataclass(frozen=True)
class PropSet:
    """Roadside objects of one road, sorted by arc length (arrays of equal length N).

    Attributes:
        x, y: (N,) world position of the object's base centre, m.
        s: (N,) arc length of the road point nearest to the object, m.
        kind: (N,) int index into :data:`PROP_KINDS`.
        height: (N,) height, m.
        width: (N,) width, m.
        colour: (N, 3, 3) float32 RGB: main colour (crown, wall, panel, body), secondary
            colour (trunk, roof, post) and detail colour (shade, windows, lamp head, border).
    """

    x: np.ndarray
    y: np.ndarray
    s: np.ndarray
    kind: np.ndarray
    height: np.ndarray
    width: np.ndarray
    colour: np.ndarray

    def __len__(self) -> int:
        return int(self.x.size)


def _prop_colours(kind: str, theme: Theme, u: np.ndarray) -> np.ndarray:
    """(n, 3, 3) colours from (n, 3) uniforms in [0, 1): brightness jitter and two choices."""
    n = u.shape[0]
    jitter = (0.8 + 0.35 * u[:, 0])[:, None, None]
    pick1 = (u[:, 1] * 3).astype(int)
    pick2 = (u[:, 2] * 3).astype(int)
    main = np.zeros((n, 3))
    second = np.zeros((n, 3))
    detail = np.zeros((n, 3))
    if kind in ("tree", "pine"):
        main[:] = theme.foliage
        second[:] = (95, 70, 45)
        if kind == "pine" and theme.ground[0] > 200:  # snowy pines
            main[:] = (150, 175, 170)
        detail[:] = main * 0.75  # the crown's shaded side
    elif kind in ("pole", "lamp"):
        main[:] = (120, 100, 80) if kind == "pole" else (150, 152, 156)
        second[:] = main
        detail[:] = (235, 232, 210)  # lamp head
    elif kind == "sign":
        main[:] = np.array([(200, 40, 35), (40, 80, 170), (230, 230, 225)])[pick1]
        second[:] = (150, 150, 150)
        detail[:] = (240, 240, 235)  # border
    elif kind == "house":
        walls = np.array(theme.house_colours, dtype=np.float64)
        main[:] = walls[(u[:, 1] * len(walls)).astype(int)]
        second[:] = np.array([(120, 50, 40), (70, 70, 78), (90, 60, 45)])[pick2]
        detail[:] = (62, 72, 88)  # windows
    elif kind == "cactus":
        main[:] = (70, 120, 60)
        second[:] = main
        detail[:] = main * 0.8
    elif kind == "rock":
        base = np.array(theme.ground, dtype=np.float64) * 0.6 + 40
        main[:] = base
        second[:] = base * 0.8
        detail[:] = base * 0.7
    colours = np.stack([main, second, detail], axis=1) * jitter
    return np.clip(colours, 0, 255).astype(np.float32)


_PROP_WIDTH_PER_HEIGHT = {
    "tree": 0.6,
    "pine": 0.4,
    "pole": 0.025,
    "lamp": 0.025,
    "sign": 0.35,
    "house": 1.6,
    "cactus": 0.25,
    "rock": 1.4,
}


def place_props(road, town: Town, seed: tuple[int, ...]) -> PropSet:
    """Scatters the town's roadside objects along both sides of a road.

    Each kind and side is a Poisson process along the road with its own random stream, each
    object consuming one row of uniforms: a longer road of the same seed has the same objects
    along the shared part (the world is a function of the town and the seed only).

    Objects never stand on the road or its shoulder: each is kept only if it is at least
    half its width beyond the shoulder of every part of the road (so tight bends cannot put a
    tree on the road ahead).

    Args:
        road: The :class:`~sim.builtin.roads.Road`.
        town: The town whose props to place.
        seed: Entropy of the placement (e.g. ``(town id, road seed)``).
    """
    theme = town.theme
    edge = road.lane_width_m + 0.3 + theme.shoulder_width_m
    xs, ys, ss, kinds, hs, ws, cols = [], [], [], [], [], [], []
    for props in theme.props:
        kind_id = PROP_KINDS.index(props.kind)
        for side_id, side in enumerate((1.0, -1.0)):
            rng = np.random.default_rng([*seed, 77, kind_id, side_id])
            mean_gap = 100.0 / props.per_100m
            rows = np.zeros((0, 7))
            while rows.shape[0] == 0 or rows[:, 0].sum() * mean_gap <= road.length_m:
                chunk = rng.random((max(int(road.length_m / mean_gap * 0.25), 16), 7))
                chunk[:, 0] = -np.log1p(-chunk[:, 0])  # exponential gaps (unit mean)
                rows = np.concatenate([rows, chunk])
            s = np.cumsum(rows[:, 0]) * mean_gap
            rows = rows[s < road.length_m]
            s = s[s < road.length_m]
            n = s.size
            if n == 0:
                continue
            half_w = 0.5 * _PROP_WIDTH_PER_HEIGHT[props.kind]
            lo_h, hi_h = props.height_m
            h = lo_h + (hi_h - lo_h) * rows[:, 1]
            w = 2.0 * half_w * h * (0.8 + 0.4 * rows[:, 2])
            lo_o, hi_o = props.offset_m
            off = side * (edge + lo_o + (hi_o - lo_o) * rows[:, 3] + 0.5 * w)
            x, y, _ = road.locate(s, off)
            xs.append(x)
            ys.append(y)
            ss.append(s)
            kinds.append(np.full(n, kind_id))
            hs.append(h)
            ws.append(w)
            cols.append(_prop_colours(props.kind, theme, rows[:, 4:7]))
    if not xs:
        empty = np.zeros(0)
        return PropSet(
            empty, empty, empty, empty.astype(int), empty, empty, np.zeros((0, 3, 3), np.float32)
        )
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    s = np.concatenate(ss)
    w = np.concatenate(ws)
    # keep objects clear of every part of the road (coarse centreline every 2 m). The heading
    # stays within max_heading of the x axis, so road points more than `window` metres of arc
    # away from an object's own road point are farther than its reach: check only those near.
    reach = edge + float(np.max(w)) + max(p.offset_m[1] for p in theme.props)
    window = 2.0 * reach / math.cos(town.layout.max_heading_rad) + 10.0
    step = max(int(2.0 / (road.s[1] - road.s[0])), 1)
    cs, cx, cy = road.s[::step], road.x[::step], road.y[::step]
    keep = np.ones(x.size, dtype=bool)
    by_s = np.argsort(s, kind="stable")
    for start in range(0, x.size, 128):
        idx = by_s[start : start + 128]
        lo, hi = np.searchsorted(cs, [s[idx].min() - window, s[idx].max() + window])
        d2 = (x[idx, None] - cx[None, lo:hi]) ** 2 + (y[idx, None] - cy[None, lo:hi]) ** 2
        keep[idx] = np.sqrt(d2.min(axis=1)) >= edge + 0.5 * w[idx] - 0.05
    order = np.argsort(s[keep], kind="stable")

    def pick(a: np.ndarray) -> np.ndarray:
        return a[keep][order]

    return PropSet(
        x=pick(x),
        y=pick(y),
        s=pick(s),
        kind=pick(np.concatenate(kinds)),
        height=pick(np.concatenate(hs)),
        width=pick(w),
        colour=pick(np.concatenate(cols)),
    )

"""The top-down world texture: ground, shoulders, asphalt, markings, wear and shadows.

The world is rasterised in tiles along the road, built lazily when the car gets near and
cached. Each tile is a rectangle aligned with the chord of one road section; it covers the
section plus the distance the camera can see ahead, so one tile serves every frame while
the car is in its section. Ground and grain patterns are periodic in world coordinates, so
overlapping tiles agree and frames do not jump when the car moves on to the next tile.

All content is a deterministic function of (road, town, weather, seed).
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from sim.builtin import junction_paint
from sim.builtin.roads import Road
from sim.builtin.route_plan import JunctionRoute
from sim.builtin.tile_buffers import drop_tile, give, release_cache, take, view
from sim.builtin.towns import PROP_KINDS, PropSet, Town
from sim.builtin.weather import Weather

PATTERN_PX = 512
"""Side of the periodic ground and grain patterns, px."""
_SHIFT = 3
"""Sub-pixel bits for cv2 polygon drawing."""
_ONE = 1 << _SHIFT


def _periodic_noise(rng: np.random.Generator, n: int, beta: float, cutoff: float) -> np.ndarray:
    """(n, n) zero-mean unit-std noise with power spectrum ~ 1/f^beta, periodic in both axes."""
    white = rng.standard_normal((n, n))
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.fftfreq(n)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0) * np.exp(-((f / cutoff) ** 2))
    amp[0, 0] = 0.0
    out = np.real(np.fft.ifft2(np.fft.fft2(white) * amp))
    return (out - out.mean()) / (out.std() + 1e-12)


COARSE = 4
"""The ground-colour pattern is sampled at ``COARSE`` times the texture's pixel size (it is
smooth) and upsampled; the fine grain is sampled at full resolution."""
GRAIN_AMPLITUDE = 0.09
"""Relative amplitude of the fine grain on every surface."""
_GRAIN_ROWS = 32
"""Tile rows that the grain is applied to at a time."""
_GRAIN_REPEAT = 10
"""The grain pattern is stored repeated this many times per axis, so that a rotated tile can
be sampled without wrap-around handling (much faster)."""


@lru_cache(maxsize=16)
def ground_pattern(town_name: str, ground: tuple, variation: tuple) -> np.ndarray:
    """Periodic (P, P, 3) uint8 RGB ground-colour pattern of a town (cached per process)."""
    seed = sum(ord(c) * 131**i for i, c in enumerate(town_name)) % (2**32)
    rng = np.random.default_rng(seed)
    big = _periodic_noise(rng, PATTERN_PX, 2.5, 0.08)
    mid = _periodic_noise(rng, PATTERN_PX, 1.2, 0.5)
    g = np.asarray(ground, np.float64)[None, None, :]
    v = np.asarray(variation, np.float64)[None, None, :]
    img = g + v * (big[..., None] + 0.6 * mid[..., None])
    # independent per-channel tint in the large-scale variation (grass hue, sand tone)
    img += 0.3 * v * _periodic_noise(rng, PATTERN_PX, 2.5, 0.08)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


@lru_cache(maxsize=16)
def _ground_pattern_rgba(town_name: str, ground: tuple, variation: tuple) -> np.ndarray:
    """The ground pattern as RGBA, stored 2 x 2 times (cached per process).

    BORDER_WRAP on a source made of whole periods samples the same texels as on one period,
    with the same weights (they come from the transform alone); OpenCV's slow per-pixel
    border path then only serves the few coordinates outside the larger copy (4-7x faster).
    """
    rgba = cv2.cvtColor(ground_pattern(town_name, ground, variation), cv2.COLOR_RGB2RGBA)
    return np.tile(rgba, (2, 2, 1))


@lru_cache(maxsize=1)
def grain_pattern() -> np.ndarray:
    """Periodic single-channel grain (128 = no change), stored repeated (cached per process)."""
    rng = np.random.default_rng(20240611)
    fine = _periodic_noise(rng, PATTERN_PX, 0.6, 0.6)
    img = np.clip(128.0 * (1.0 + GRAIN_AMPLITUDE * fine), 0, 255).astype(np.uint8)
    return np.tile(img, (_GRAIN_REPEAT, _GRAIN_REPEAT))


def _apply_grain(img: np.ndarray, grain: np.ndarray) -> None:
    """``img = img * grain / 128`` (rounded, saturated) for every channel, in row strips.

    The grain is widened to four channels a strip at a time in a small scratch buffer: a
    tile-sized one would cost more in first-touch page faults than the multiply itself.
    """
    h_px, w_px = grain.shape
    strip = np.empty((min(_GRAIN_ROWS, h_px), w_px, 4), np.uint8)
    for r in range(0, h_px, _GRAIN_ROWS):
        n = min(_GRAIN_ROWS, h_px - r)
        part = strip[:n]
        cv2.cvtColor(grain[r : r + n], cv2.COLOR_GRAY2RGBA, dst=part)
        rows = img[r : r + n]
        cv2.multiply(rows, part, dst=rows, scale=1.0 / 128.0)


@dataclass
class Tile:
    """One rasterised piece of the world.

    The texture is stored with four channels (the fourth is unused): OpenCV's warps of
    4-channel images are about twice as fast as those of 3-channel ones, with the same values.

    Attributes:
        rgba: (h, w, 4) uint8 top-down texture: RGB and an unused fourth channel.
        world_to_px: 3x3 affine matrix, world (x, y, 1) -> texture pixel (col, row, 1).
        index: Section index of the tile.
    """

    rgba: np.ndarray
    world_to_px: np.ndarray
    index: int

    @property
    def image(self) -> np.ndarray:
        """(h, w, 3) uint8 RGB view of the texture."""
        return self.rgba[..., :3]


class GroundTexture:
    """Lazily built, cached texture tiles of one road in one town and weather.

    Args:
        road: The road.
        town: Its town (theme: colours, markings).
        weather: The weather (shadow strength and direction, wet asphalt).
        props: Roadside objects (for their shadows).
        seed: Seed of the per-tile details (puddles).
        res_m: Texture resolution, m per pixel.
        section_m: Length of road served by one tile, m.
        ahead_m: Distance beyond its section that a tile covers (the camera's view), m.
        behind_m: Distance before its section that a tile covers, m.
        margin_m: Ground beyond the road edges covered by a tile, m.
        cache_tiles: How many tiles to keep.
        route: A junction town's route (its junctions and arms are drawn too, and a tile
            also covers the arms of the junctions in its section); None = no junctions.
    """

    def __init__(
        self,
        road: Road,
        town: Town,
        weather: Weather,
        props: PropSet,
        seed: int,
        res_m: float = 0.12,
        section_m: float = 200.0,
        ahead_m: float = 130.0,
        behind_m: float = 30.0,
        margin_m: float = 30.0,
        cache_tiles: int = 3,
        route: JunctionRoute | None = None,
    ) -> None:
        self.road = road
        self.route = route
        self.town = town
        self.weather = weather
        self.props = props
        self.seed = int(seed)
        self.res_m = float(res_m)
        self.section_m = float(section_m)
        self.ahead_m = float(ahead_m)
        self.behind_m = float(behind_m)
        self.margin_m = float(margin_m)
        self._cache: OrderedDict[int, Tile] = OrderedDict()
        self._cache_tiles = int(cache_tiles)
        # the cached tiles' buffers go back to the pool when this texture is collected
        weakref.finalize(self, release_cache, self._cache)
        theme = town.theme
        self.ground_pattern = ground_pattern(town.name, theme.ground, theme.ground_variation)
        self._ground_rgba = _ground_pattern_rgba(town.name, theme.ground, theme.ground_variation)
        self.grain_pattern = grain_pattern()
        self.mean_ground = tuple(float(c) for c in self.ground_pattern.reshape(-1, 3).mean(axis=0))

    def section_of(self, s: float) -> int:
        """Index of the tile serving a car at arc length ``s``."""
        return max(int(s // self.section_m), 0)

    def tile_at(self, s: float) -> Tile:
        """The tile serving a car at arc length ``s`` (built on first use)."""
        k = self.section_of(s)
        tile = self._cache.get(k)
        if tile is None:
            while self._cache and len(self._cache) >= self._cache_tiles:
                drop_tile(self._cache)
            tile = self._build(k)
            self._cache[k] = tile
        else:
            self._cache.move_to_end(k)
        return tile

    # -----------------------------------------------------------------------------------------
    def _build(self, k: int) -> Tile:
        road, theme, res = self.road, self.town.theme, self.res_m
        s0 = max(k * self.section_m - self.behind_m, 0.0)
        s1 = min((k + 1) * self.section_m + self.ahead_m, road.length_m)
        s = np.linspace(s0, s1, max(int((s1 - s0) / 1.0), 2) + 1)
        x, y, _ = road.locate(s)
        theta = math.atan2(y[-1] - y[0], x[-1] - x[0])
        c, sn = math.cos(theta), math.sin(theta)
        reach = road.lane_width_m + 0.3 + theme.shoulder_width_m + self.margin_m
        u = c * x + sn * y
        v = -sn * x + c * y
        if self.route is not None:
            extra = junction_paint.arm_extent(self.route, s0, s1, self.margin_m)
            u = np.concatenate([u, c * extra[:, 0] + sn * extra[:, 1]])
            v = np.concatenate([v, -sn * extra[:, 0] + c * extra[:, 1]])
        umin, umax = u.min() - reach, u.max() + reach
        vmin, vmax = v.min() - reach, v.max() + reach
        # whole multiples of COARSE, so the upsampled ground pattern fits exactly
        w_px = math.ceil((umax - umin) / res / COARSE) * COARSE
        h_px = math.ceil((vmax - vmin) / res / COARSE) * COARSE
        # world -> tile px: col = (u - umin)/res, row = (v - vmin)/res
        A = np.array(
            [
                [c / res, sn / res, -umin / res],
                [-sn / res, c / res, -vmin / res],
                [0.0, 0.0, 1.0],
            ]
        )
        img = view(take(h_px * w_px * 4), (h_px, w_px, 4))
        self._ground(img, A)
        self._draw_road(img, A, s0, s1)
        grain_flat = take(h_px * w_px)
        try:
            _apply_grain(img, self._grain(view(grain_flat, (h_px, w_px)), A))
        finally:  # scratch: back to the pool (the view above is not used again)
            give(grain_flat)
        self._draw_shadows(img, A, s0, s1)
        return Tile(rgba=img, world_to_px=A, index=k)

    def _ground(self, img: np.ndarray, A: np.ndarray) -> None:
        """Writes the ground-colour pattern (world-periodic, period P * COARSE px) into img."""
        h_px, w_px = img.shape[:2]
        P = self.ground_pattern.shape[0]
        # coarse px (i, j) -> tile px (COARSE * i + (COARSE - 1) / 2, ...) -> world -> pattern
        up = np.array(
            [[COARSE, 0.0, (COARSE - 1) / 2], [0.0, COARSE, (COARSE - 1) / 2], [0, 0, 1.0]]
        )
        B = (np.linalg.inv(A) @ up)[:2] / (self.res_m * COARSE)
        B[:, 2] = np.mod(B[:, 2], P)
        small = cv2.warpAffine(
            self._ground_rgba,
            B,
            (w_px // COARSE, h_px // COARSE),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_WRAP,
        )
        cv2.resize(small, (w_px, h_px), dst=img, interpolation=cv2.INTER_LINEAR)

    def _grain(self, out: np.ndarray, A: np.ndarray) -> np.ndarray:
        """Writes the fine grain (world-periodic, period P px) into ``out`` (single channel)."""
        h_px, w_px = out.shape
        pattern = self.grain_pattern
        P = pattern.shape[0] // _GRAIN_REPEAT
        B = np.linalg.inv(A)[:2] / self.res_m  # tile px -> grain px (before the modulo)
        corners = B @ np.array([[0, w_px, 0, w_px], [0, 0, h_px, h_px], [1, 1, 1, 1.0]])
        # shift by whole periods so that every sampled coordinate is inside the stored copy
        shift = -P * np.floor(corners.min(axis=1) / P)
        B[:, 2] += shift
        span = corners.max(axis=1) + shift
        flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
        if np.all(span < pattern.shape[0] - 1):
            cv2.warpAffine(pattern, B, (w_px, h_px), dst=out, flags=flags)
        else:  # whole periods wrap like one period (see _ground_pattern_rgba), only faster
            B[:, 2] = np.mod(B[:, 2], P)
            cv2.warpAffine(
                pattern, B, (w_px, h_px), dst=out, flags=flags, borderMode=cv2.BORDER_WRAP
            )
        return out

    def _strips(self, A: np.ndarray, bands: list[tuple]) -> list[np.ndarray]:
        """Polygons (fixed-point tile px) of bands between two lateral offsets.

        Args:
            A: World -> tile px matrix.
            bands: ``(s_a, s_b, o1, o2, step)`` each: the band between the offsets o1 and o2
                from arc length s_a to s_b, sampled every ``step`` m or less. All bands are
                located on the road in one vectorised pass.
        """
        s, o1, o2, counts = [], [], [], []
        for s_a, s_b, off1, off2, step in bands:
            n = max(math.ceil((s_b - s_a) / step), 1) + 1
            s.append(np.linspace(s_a, s_b, n))
            o1.append(np.full(n, off1))
            o2.append(np.full(n, off2))
            counts.append(n)
        s_all = np.concatenate(s)
        sides = []
        for off in (o1, o2):
            x, y, _ = self.road.locate(s_all, np.concatenate(off))
            cols = A[0, 0] * x + A[0, 1] * y + A[0, 2]
            rows = A[1, 0] * x + A[1, 1] * y + A[1, 2]
            sides.append(np.round(np.stack([cols, rows], axis=1) * _ONE).astype(np.int32))
        polys, i = [], 0
        for n in counts:
            polys.append(np.concatenate([sides[0][i : i + n], sides[1][i : i + n][::-1]]))
            i += n
        return polys

    def _draw_road(self, img: np.ndarray, A: np.ndarray, s0: float, s1: float) -> None:
        theme, road, weather = self.town.theme, self.road, self.weather
        lw = road.lane_width_m
        half = lw + 0.3
        outer = half + theme.shoulder_width_m
        wet = weather.wet
        asphalt = np.asarray(theme.asphalt, np.float64) * (1.0 - 0.35 * wet)
        # tyre-wear bands (darker, or glossier when wet) in each lane
        wear = (asphalt * (0.88 + 0.25 * wet)).clip(0, 255).tolist()
        bands = []
        for lane_c in (-0.5 * lw, 0.5 * lw):
            for off in (-0.8, 0.8):
                c = lane_c + off
                bands.append((s0, s1, c - 0.3, c + 0.3, 2.0))
        if self.route is not None:
            self._draw_junction_road(img, A, s0, s1, asphalt, (wear, bands))
            return
        layers = [
            (theme.shoulder, [(s0, s1, -outer, outer, 1.0)]),
            (asphalt.tolist(), [(s0, s1, -half, half, 1.0)]),
            (wear, bands),
            *self._marking_layers(s0, s1, asphalt),
        ]
        polys = iter(self._strips(A, [band for _, group in layers for band in group]))
        for i, (colour, group) in enumerate(layers):
            if i == 3 and wet > 0:  # puddles lie on the asphalt, under the paint
                self._draw_puddles(img, A, s0, s1, asphalt)
            cv2.fillPoly(img, [next(polys) for _ in group], colour, cv2.LINE_AA, _SHIFT)
        if len(layers) == 3 and wet > 0:
            self._draw_puddles(img, A, s0, s1, asphalt)

    def _draw_junction_road(
        self, img: np.ndarray, A: np.ndarray, s0: float, s1: float, asphalt, wear: tuple
    ) -> None:
        """The route with its junctions: all shoulders, all asphalt, wear, puddles, paint.

        The route's own lines stop at each junction box; the junctions' arms, corners and
        entry markings come from :mod:`sim.builtin.junction_paint`.
        """
        theme, lw = self.town.theme, self.road.lane_width_m
        half, outer = lw + 0.3, lw + 0.3 + theme.shoulder_width_m
        mk = theme.markings

        def paint(colour) -> list:
            return (asphalt + (np.asarray(colour, np.float64) - asphalt) * mk.opacity).tolist()

        shapes = junction_paint.junction_shapes(self.route, self.town, s0, s1, paint)
        marks = [
            layer
            for a, b in junction_paint.marking_intervals(self.route, s0, s1)
            for layer in self._marking_layers(a, b, asphalt)
        ]
        route_layers = [
            [(s0, s1, -outer, outer, 1.0)],
            [(s0, s1, -half, half, 1.0)],
            wear[1],
            *(bands for _, bands in marks),
        ]
        polys = iter(self._strips(A, [band for group in route_layers for band in group]))
        groups = [[next(polys) for _ in group] for group in route_layers]

        def px(world: list[np.ndarray]) -> list[np.ndarray]:
            out = []
            for p in world:
                cols = A[0, 0] * p[:, 0] + A[0, 1] * p[:, 1] + A[0, 2]
                rows = A[1, 0] * p[:, 0] + A[1, 1] * p[:, 1] + A[1, 2]
                out.append(np.round(np.stack([cols, rows], axis=1) * _ONE).astype(np.int32))
            return out

        def fill(polys: list[np.ndarray], colour, one_by_one: bool = True) -> None:
            # one fillPoly call fills overlaps of its polygons by the even-odd rule: the
            # junctions' shapes overlap each other and the route, so they go one at a time
            for group in [[p] for p in polys] if one_by_one else [polys]:
                cv2.fillPoly(img, group, colour, cv2.LINE_AA, _SHIFT)

        fill(groups[0], theme.shoulder, one_by_one=False)
        fill(px(shapes.shoulder), theme.shoulder)
        fill(groups[1], asphalt.tolist(), one_by_one=False)
        fill(px(shapes.asphalt), asphalt.tolist())
        fill(groups[2], wear[0], one_by_one=False)
        if self.weather.wet > 0:
            self._draw_puddles(img, A, s0, s1, asphalt)
        for (colour, _), group in zip(marks, groups[3:], strict=True):
            fill(group, colour, one_by_one=False)
        for colour, world in shapes.paint:
            fill(px(world), colour)

    def _draw_puddles(
        self, img: np.ndarray, A: np.ndarray, s0: float, s1: float, asphalt: np.ndarray
    ) -> None:
        road, wet = self.road, self.weather.wet
        rng = np.random.default_rng([self.seed, int(s0 * 10), 7])
        n = int(rng.poisson(wet * (s1 - s0) / 6.0))
        if n == 0:
            return
        s = rng.uniform(s0, s1, n)
        off = rng.uniform(-road.lane_width_m, road.lane_width_m, n)
        px, py, h = road.locate(s, off)
        haze = np.asarray(self.weather.haze_colour, np.float64)
        for i in range(n):
            col = (asphalt * 0.55 + haze * 0.45 * rng.uniform(0.6, 1.0)).tolist()
            cu = A[0, 0] * px[i] + A[0, 1] * py[i] + A[0, 2]
            cr = A[1, 0] * px[i] + A[1, 1] * py[i] + A[1, 2]
            ax = rng.uniform(0.4, 1.5) / self.res_m
            ay = ax * rng.uniform(0.3, 0.7)
            ang = math.degrees(h[i] + math.atan2(A[1, 0], A[0, 0]))
            cv2.ellipse(
                img,
                (int(cu * _ONE), int(cr * _ONE)),
                (int(ax * _ONE), int(ay * _ONE)),
                ang,
                0,
                360,
                col,
                -1,
                cv2.LINE_AA,
                _SHIFT,
            )

    def _marking_layers(
        self, s0: float, s1: float, asphalt: np.ndarray
    ) -> list[tuple[list, list[tuple]]]:
        """The painted lines: (colour, bands) per fillPoly call, in drawing order."""
        mk = self.town.theme.markings
        lw = self.road.lane_width_m
        w = mk.width_m

        def paint(colour) -> list:
            return (asphalt + (np.asarray(colour, np.float64) - asphalt) * mk.opacity).tolist()

        layers = []
        if mk.edge:
            edges = [(s0, s1, o - w / 2, o + w / 2, 1.0) for o in (-lw, lw)]
            layers.append((paint(mk.edge_colour), edges))
        centre = paint(mk.centre_colour)
        if mk.centre == "solid":
            layers.append((centre, [(s0, s1, -w / 2, w / 2, 1.0)]))
        elif mk.centre == "double":
            gap = 0.1
            bands = [(s0, s1, gap / 2, gap / 2 + w, 1.0), (s0, s1, -gap / 2 - w, -gap / 2, 1.0)]
            layers.append((centre, bands))
        elif mk.centre == "dashed":
            period = mk.dash_on_m + mk.dash_off_m
            first = math.floor(s0 / period) * period
            bands = []
            for start in np.arange(first, s1, period):
                a, b = max(start, s0), min(start + mk.dash_on_m, s1)
                if b > a:
                    bands.append((a, b, -w / 2, w / 2, 1.0))
            if bands:
                layers.append((centre, bands))
        return layers

    def _draw_shadows(self, img: np.ndarray, A: np.ndarray, s0: float, s1: float) -> None:
        weather, props = self.weather, self.props
        if weather.shadow_strength <= 0 or len(props) == 0:
            return
        lo, hi = np.searchsorted(props.s, [s0 - 20.0, s1 + 20.0])
        az = math.radians(weather.sun_azimuth_deg)
        dx, dy = math.cos(az), math.sin(az)
        # shadow direction in tile pixels and its angle
        du = A[0, 0] * dx + A[0, 1] * dy
        dv = A[1, 0] * dx + A[1, 1] * dy
        ang = math.degrees(math.atan2(dv, du))
        h_img, w_img = img.shape[:2]
        res = self.res_m
        strength = weather.shadow_strength
        (a00, a01, a02), (a10, a11, a12) = A[:2].tolist()
        k = max(int(0.4 / res) | 1, 3)
        # Python floats: the same values as the numpy scalars, with less overhead
        for kind_id, h, w, px, py in zip(
            props.kind[lo:hi].tolist(),
            props.height[lo:hi].tolist(),
            props.width[lo:hi].tolist(),
            props.x[lo:hi].tolist(),
            props.y[lo:hi].tolist(),
            strict=True,
        ):
            kind = PROP_KINDS[kind_id]
            length = h * weather.shadow_length
            if kind in ("pole", "lamp", "sign"):
                across = max(w, 0.15) / 2
                along = max(length / 2, across)
                centre = length / 2
            elif kind == "rock":
                across = w / 2
                along = w / 2 + length / 2
                centre = length / 3
            else:  # crowns, houses, cacti: the shadow of the body, offset by the sun
                across = w / 2
                along = max(w / 2, length / 2)
                centre = length * 0.6
            cx_w = px + dx * centre
            cy_w = py + dy * centre
            cu = a00 * cx_w + a01 * cy_w + a02
            cr = a10 * cx_w + a11 * cy_w + a12
            r = (along + 1.0) / res
            u0, u1 = int(cu - r), int(cu + r) + 1
            r0, r1 = int(cr - r), int(cr + r) + 1
            if u1 <= 0 or r1 <= 0 or u0 >= w_img or r0 >= h_img:
                continue
            mask = np.zeros((r1 - r0, u1 - u0), np.uint8)
            cv2.ellipse(
                mask,
                (int((cu - u0) * _ONE), int((cr - r0) * _ONE)),
                (int(along / res * _ONE), int(across / res * _ONE)),
                ang,
                0,
                360,
                255,
                -1,
                cv2.LINE_AA,
                _SHIFT,
            )
            mask = cv2.GaussianBlur(mask, (k, k), 0)
            ua, ub = max(u0, 0), min(u1, w_img)
            ra, rb = max(r0, 0), min(r1, h_img)
            m = mask[ra - r0 : rb - r0, ua - u0 : ub - u0].astype(np.float32) * (strength / 255.0)
            np.subtract(1.0, m, out=m)
            roi = img[ra:rb, ua:ub]
            # roi * (1 - m) in float32, truncated back: in place, without mixed-type loops
            lit = roi.astype(np.float32)
            lit *= m[..., None]
            np.copyto(roi, lit, casting="unsafe")

"""A contact sheet of the junction towns: camera frames at junctions and a route map.

One row per junction town. For a left, a right and a straight junction of the route (the
first of each), two camera frames while the expert drives: approaching (``approach_m`` before
the junction's entry) and inside the box (at its middle); upscaled ``zoom`` times. The last
cell is a map of the route: its lane (blue), every junction's arms (grey) and its command
letter (L, R, S).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from sim import spec
from sim.builtin.contact_sheet import save_png
from sim.builtin.env import START_S_M, BuiltinDrivingEnv
from sim.builtin.route_plan import JunctionRoute
from sim.builtin.towns import JUNCTION_TOWNS, JUNCTION_UNSEEN_TOWNS, get_town

log = logging.getLogger(__name__)

_BRANCHES = (spec.Command.LEFT, spec.Command.RIGHT, spec.Command.STRAIGHT)
_PAD_PX, _LABEL_PX = 4, 18


@dataclass(frozen=True)
class JunctionSheetConfig:
    """What to render."""

    out: Path = Path("docs/images/junction_towns.png")
    """Output PNG file."""
    towns: tuple[str, ...] = JUNCTION_TOWNS
    """Junction towns (rows)."""
    weather: str = "clear_noon"
    """Weather of every frame."""
    camera: spec.CameraSpec = field(default_factory=spec.CameraSpec)
    """Camera (default: the project's 200x78 network input)."""
    seed: int = 1
    """Route seed within each town."""
    route_length_m: float = 1500.0
    """Length of the route searched for the junctions and mapped, m."""
    approach_m: float = 15.0
    """Distance before a junction's entry of the approaching frame, m."""
    zoom: int = 2
    """Upscaling of the camera frames in the sheet (nearest neighbour)."""

    def __post_init__(self) -> None:
        for name in self.towns:
            if get_town(name).junctions is None:
                raise spec.SimConfigError(f"{name!r} is not a junction town: {JUNCTION_TOWNS}")
        if not self.towns:
            raise spec.SimConfigError("a junction sheet needs at least one town")
        if not 1 <= self.zoom <= 8:
            raise spec.SimConfigError(f"zoom must be in [1, 8], got {self.zoom}")


def junction_frames(cfg: JunctionSheetConfig, town: str) -> tuple[list, JunctionRoute, float]:
    """Frames ``(label, image)`` at the first left, right and straight junction of a route.

    Returns:
        The frames, the route and the route's end arc length, m.
    """
    env = BuiltinDrivingEnv(
        town=town, weather=cfg.weather, camera=cfg.camera, route_length_m=cfg.route_length_m
    )
    obs, info = env.reset(seed=cfg.seed)
    wanted: dict[float, str] = {}
    for command in _BRANCHES:
        j = next((j for j in env.junctions if j.command == command), None)
        if j is not None:
            name = command.name.lower()
            wanted[j.entry_s_m - cfg.approach_m] = f"{name} #{j.index}: approach"
            wanted[j.centre_s_m] = f"{name} #{j.index}: inside"
    targets = sorted(wanted)
    frames, expert = [], env.make_expert()
    while targets:
        s = START_S_M + info[spec.INFO_PROGRESS_M]
        if s >= targets[0]:
            frames.append((wanted[targets.pop(0)], obs[spec.IMAGE]))
            continue
        action, _ = expert.act(obs, None)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    route, end = env.route, env.route_end_s
    env.close()
    order = {label: k for k, label in enumerate(wanted[t] for t in sorted(wanted))}
    frames.sort(key=lambda f: order[f[0]])
    return frames, route, end


def route_map(route: JunctionRoute, end_s: float, size_px: int) -> np.ndarray:
    """A top-down map of a route up to ``end_s``: lane, arms, junction commands (RGB)."""
    road = route.road
    n = int(end_s / (road.s[1] - road.s[0]))
    shown = {j.index for j in route.junctions if j.entry_s_m < end_s}
    arms = [a for a in route.arms if a.junction in shown]
    xs, ys = road.x[:n], road.y[:n]
    ends = [
        (a.x_m + a.length_m * np.cos(a.heading_rad), a.y_m + a.length_m * np.sin(a.heading_rad))
        for a in arms
    ]
    ax = np.concatenate([xs, [e[0] for e in ends]])
    ay = np.concatenate([ys, [e[1] for e in ends]])
    span = max(ax.max() - ax.min(), ay.max() - ay.min()) + 20.0
    k = (size_px - 8) / span
    x0, y0 = ax.min() - 10.0, ay.max() + 10.0

    def px(x, y) -> np.ndarray:
        return np.stack([(np.asarray(x) - x0) * k + 4, (y0 - np.asarray(y)) * k + 4], -1)

    img = np.full((size_px, size_px, 3), 236, np.uint8)
    for a in arms:
        e = (a.x_m + a.length_m * np.cos(a.heading_rad), a.y_m + a.length_m * np.sin(a.heading_rad))
        p = px([a.x_m, e[0]], [a.y_m, e[1]]).astype(np.int32)
        cv2.line(img, tuple(p[0]), tuple(p[1]), (150, 150, 150), 3, cv2.LINE_AA)
    cv2.polylines(img, [px(xs, ys).astype(np.int32)], False, (40, 110, 255), 2, cv2.LINE_AA)
    start = px(xs[:1], ys[:1]).astype(np.int32)[0]
    cv2.circle(img, tuple(start), 5, (30, 160, 30), -1, cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for j in (route.junctions[i] for i in sorted(shown)):
        c = px([j.centre_m[0]], [j.centre_m[1]]).astype(np.int32)[0]
        cv2.circle(img, tuple(c), 6, (220, 60, 40), 1, cv2.LINE_AA)
        letter = j.command.name[0]
        cv2.putText(img, letter, (int(c[0]) + 7, int(c[1]) - 5), font, 0.45, (180, 30, 20), 1)
    return img


def junction_sheet(cfg: JunctionSheetConfig) -> np.ndarray:
    """The sheet: per town, six labelled camera frames and the route map (RGB uint8)."""
    h, w = cfg.camera.height_px * cfg.zoom, cfg.camera.width_px * cfg.zoom
    cell_h = h + _LABEL_PX
    map_px = 2 * cell_h
    rows = []
    font = cv2.FONT_HERSHEY_SIMPLEX
    for town in cfg.towns:
        log.info("rendering junctions of %s", town)
        frames, route, end = junction_frames(cfg, town)
        grid = np.full((map_px + _LABEL_PX, 3 * (w + _PAD_PX) + map_px, 3), 255, np.uint8)
        tag = " (unseen)" if town in JUNCTION_UNSEEN_TOWNS else ""
        cv2.putText(grid, town + tag, (3, 13), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for k, (label, image) in enumerate(frames):
            col, row = k // 2, k % 2
            x, y = col * (w + _PAD_PX), _LABEL_PX + row * cell_h
            big = cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST)
            grid[y + _LABEL_PX : y + cell_h, x : x + w] = big
            cv2.putText(grid, label, (x + 3, y + 13), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        x = 3 * (w + _PAD_PX)
        grid[_LABEL_PX : _LABEL_PX + map_px, x : x + map_px] = route_map(route, end, map_px)
        rows.append(grid)
        rows.append(np.full((_PAD_PX, grid.shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1])


def write_junction_sheet(cfg: JunctionSheetConfig) -> Path:
    """Renders the sheet and writes it to ``cfg.out`` as a PNG; returns the path."""
    sheet = junction_sheet(cfg)
    save_png(sheet, cfg.out, palette=True)
    log.info("wrote %s (%d x %d px)", cfg.out, sheet.shape[1], sheet.shape[0])
    return cfg.out

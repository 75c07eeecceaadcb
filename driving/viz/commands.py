"""The route's command in the video: a glyph on the camera panel, coloured zones on the map.

A rollout on a route with junctions records the command the car saw on each step
(``sim.spec.Command``; column ``command``, absent = follow lane). The camera panel shows the
active one as an arrow and its name (``LEFT``, ``RIGHT``, ``STRAIGHT``) in its top right
corner, over the sky; follow-lane shows nothing. The map panel draws each stretch of route
under a junction's command in that command's colour.
"""

from __future__ import annotations

import cv2
import numpy as np
from matplotlib.axes import Axes

from sim.spec import COMMAND_NAMES, Command

COMMAND_COLOURS: dict[int, tuple[int, int, int]] = {
    int(Command.LEFT): (31, 119, 180),
    int(Command.RIGHT): (255, 127, 14),
    int(Command.STRAIGHT): (44, 160, 44),
}
"""RGB colour of each junction command (follow-lane has none: it is not drawn)."""
GLYPH_H_PX = 30
"""Height of the glyph's box on the camera panel, pixels."""


def command_runs(command: np.ndarray) -> list[tuple[int, int, int]]:
    """The maximal runs of one junction command: ``(command, first step, last step)``.

    Follow-lane steps (0) belong to no run.
    """
    c = np.asarray(command).astype(np.int64).reshape(-1)
    runs: list[tuple[int, int, int]] = []
    start = 0
    for k in range(1, len(c) + 1):
        if k == len(c) or c[k] != c[start]:
            if c[start] != int(Command.FOLLOW_LANE):
                runs.append((int(c[start]), start, k - 1))
            start = k
    return runs


def draw_command_zones(ax: Axes, x_m: np.ndarray, y_m: np.ndarray, command: np.ndarray) -> None:
    """Draws the route's stretches under a junction command in its colour, with a legend.

    Args:
        ax: The map axis (the route already drawn).
        x_m: (T,) world x per step, m.
        y_m: (T,) world y per step, m.
        command: (T,) ``sim.spec.Command`` value per step.
    """
    labelled: set[int] = set()
    for value, first, last in command_runs(command):
        rgb = np.array(COMMAND_COLOURS.get(value, (120, 120, 120))) / 255.0
        label = None if value in labelled else COMMAND_NAMES[value]
        labelled.add(value)
        span = slice(first, last + 1)
        ax.plot(x_m[span], y_m[span], color=rgb, lw=4.0, solid_capstyle="round", label=label)
    if labelled:
        ax.legend(fontsize=7, loc="best", frameon=False, handlelength=1.2)


def _arrow_points(command: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The shaft (K, 2) and head (3, 2) of a command's arrow in a size x size box.

    Straight: a stem up the middle. Left / right: a stem up the opposite side that bends
    towards the turn, the head at the box's edge.
    """
    s = float(size)
    if command == int(Command.STRAIGHT):
        shaft = np.array([[0.5 * s, s - 1], [0.5 * s, 0.4 * s]])
        head = np.array([[0.5 * s, 0.0], [0.2 * s, 0.42 * s], [0.8 * s, 0.42 * s]])
        return shaft, head
    # drawn for the right turn, mirrored for the left one
    shaft = np.array([[0.25 * s, s - 1], [0.25 * s, 0.4 * s], [0.6 * s, 0.4 * s]])
    head = np.array([[s - 1, 0.4 * s], [0.58 * s, 0.12 * s], [0.58 * s, 0.68 * s]])
    if command == int(Command.LEFT):
        shaft[:, 0], head[:, 0] = s - 1 - shaft[:, 0], s - 1 - head[:, 0]
    return shaft, head


def draw_command_glyph(frame: np.ndarray, command: int, right_px: int, top_px: int) -> None:
    """Draws a junction command's arrow and name in a dark box, right-aligned (in place).

    Follow-lane (and any value without a colour) draws nothing.

    Args:
        frame: uint8 (H, W, 3) RGB image.
        command: The ``sim.spec.Command`` value.
        right_px: Column of the box's right edge.
        top_px: Row of the box's top edge.
    """
    colour = COMMAND_COLOURS.get(int(command))
    if colour is None:
        return
    text = COMMAND_NAMES[int(command)].upper()
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick + 1)
    icon = GLYPH_H_PX - 8
    w = 4 + icon + 6 + tw + 6
    x0, y0 = max(right_px - w, 0), top_px
    box = frame[y0 : y0 + GLYPH_H_PX, x0 : x0 + w]
    box[:] = (box.astype(np.uint16) * 2 // 7).astype(np.uint8)  # darkened, still see-through
    shaft, head = _arrow_points(int(command), icon)
    offset = np.array([x0 + 4, y0 + 4])
    pts = [np.round((p + offset) * 16).astype(np.int32) for p in (shaft, head)]
    cv2.polylines(frame, [pts[0]], False, colour, 3, cv2.LINE_AA, 4)
    cv2.fillPoly(frame, [pts[1]], colour, cv2.LINE_AA, 4)
    origin = (x0 + 4 + icon + 6, y0 + (GLYPH_H_PX + th) // 2)
    cv2.putText(frame, text, origin, font, scale, (255, 255, 255), thick + 1, cv2.LINE_AA)

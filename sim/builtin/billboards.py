"""Roadside billboards: each kind of object drawn as a few anti-aliased shapes.

Each function draws one object standing on the ground at pixel column ``u``, base row ``vb``,
top row ``vt``, ``w`` px wide, with its (already lit and fogged) main, second and detail
colours. :data:`DRAW` lists them by the integer kind of :data:`~sim.builtin.towns.PROP_KINDS`.

A frame draws about a dozen objects with two or three OpenCV calls each, so the Python
around the calls is kept small: corner buffers are reused and coordinates are converted to
fixed point with ``int()`` (truncation, like ``astype(np.int32)``).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from sim.builtin.towns import PROP_KINDS

SHIFT = 4
"""Sub-pixel bits of the fixed-point coordinates given to OpenCV."""
_ONE = 1 << SHIFT
_AA = cv2.LINE_AA

_RECT = np.empty((4, 2), np.int32)
_RECT_FLAT = _RECT.reshape(-1)
_TRI = np.empty((3, 2), np.int32)
_TRI_FLAT = _TRI.reshape(-1)


def _rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, col) -> None:
    a, b, c, d = int(x0 * _ONE), int(y0 * _ONE), int(x1 * _ONE), int(y1 * _ONE)
    f = _RECT_FLAT  # reused corner buffer: no allocation per call
    f[0] = a
    f[1] = b
    f[2] = c
    f[3] = b
    f[4] = c
    f[5] = d
    f[6] = a
    f[7] = d
    cv2.fillConvexPoly(img, _RECT, col, _AA, SHIFT)


def _ellipse(img: np.ndarray, cx: float, cy: float, ax: float, ay: float, col) -> None:
    a, b = int(ax * _ONE), int(ay * _ONE)
    cv2.ellipse(
        img,
        (int(cx * _ONE), int(cy * _ONE)),
        (a if a > 1 else 1, b if b > 1 else 1),
        0,
        0,
        360,
        col,
        -1,
        _AA,
        SHIFT,
    )


def _triangle(
    img: np.ndarray, x0: float, y0: float, x1: float, y1: float, x2: float, y2: float, col
) -> None:
    f = _TRI_FLAT
    f[0] = int(x0 * _ONE)
    f[1] = int(y0 * _ONE)
    f[2] = int(x1 * _ONE)
    f[3] = int(y1 * _ONE)
    f[4] = int(x2 * _ONE)
    f[5] = int(y2 * _ONE)
    cv2.fillConvexPoly(img, _TRI, col, _AA, SHIFT)


def _tree(img, u, vb, vt, w, main, second, detail) -> None:
    h = vb - vt
    tw = max(w * 0.12, 0.6)
    _rect(img, u - tw / 2, vb - 0.45 * h, u + tw / 2, vb, second)
    _ellipse(img, u, vb - 0.62 * h, w / 2, 0.38 * h, main)
    if w > 10:  # shaded lower side of the crown
        _ellipse(img, u + 0.08 * w, vb - 0.5 * h, 0.35 * w, 0.22 * h, detail)


def _pine(img, u, vb, vt, w, main, second, detail) -> None:
    h = vb - vt
    tw = max(w * 0.12, 0.6)
    _rect(img, u - tw / 2, vb - 0.2 * h, u + tw / 2, vb, second)
    _triangle(img, u - w / 2, vb - 0.15 * h, u + w / 2, vb - 0.15 * h, u, vt, main)
    if w > 6:
        _triangle(img, u, vb - 0.15 * h, u + w / 2, vb - 0.15 * h, u, vt, detail)


def _pole(img, u, vb, vt, w, main, second, detail) -> None:
    tw = max(w, 0.6)
    _rect(img, u - tw / 2, vt, u + tw / 2, vb, main)


def _lamp(img, u, vb, vt, w, main, second, detail) -> None:
    h = vb - vt
    tw = max(w, 0.6)
    _rect(img, u - tw / 2, vt, u + tw / 2, vb, main)
    _rect(img, u - 0.12 * h, vt, u + tw / 2, vt + tw, main)
    _rect(img, u - 0.12 * h, vt + tw, u - 0.06 * h, vt + 1.8 * tw, detail)


def _sign(img, u, vb, vt, w, main, second, detail) -> None:
    h = vb - vt
    tw = max(w * 0.08, 0.5)
    _rect(img, u - tw / 2, vt, u + tw / 2, vb, second)
    if w > 4:
        _rect(img, u - w / 2, vt, u + w / 2, vt + 0.3 * h, detail)
        b = 0.08 * w
        _rect(img, u - w / 2 + b, vt + b, u + w / 2 - b, vt + 0.3 * h - b, main)
    else:
        _rect(img, u - w / 2, vt, u + w / 2, vt + 0.3 * h, main)


def _house(img, u, vb, vt, w, main, second, detail) -> None:
    h = vb - vt
    wall_top = vb - 0.6 * h
    _rect(img, u - w / 2, wall_top, u + w / 2, vb, main)
    _triangle(img, u - 0.55 * w, wall_top, u + 0.55 * w, wall_top, u, vt, second)
    if w > 8:
        _rect(img, u - 0.32 * w, vb - 0.45 * h, u - 0.12 * w, vb - 0.27 * h, detail)
        _rect(img, u + 0.12 * w, vb - 0.45 * h, u + 0.32 * w, vb - 0.27 * h, detail)
        _rect(img, u - 0.06 * w, vb - 0.3 * h, u + 0.06 * w, vb, second)  # door


def _cactus(img, u, vb, vt, w, main, second, detail) -> None:
    h = vb - vt
    tw = max(w * 0.4, 0.6)
    _rect(img, u - tw / 2, vt, u + tw / 2, vb, main)
    if w > 3:
        _rect(img, u - w / 2, vb - 0.6 * h, u - w / 2 + tw * 0.7, vb - 0.35 * h, detail)
        _rect(img, u + w / 2 - tw * 0.7, vb - 0.75 * h, u + w / 2, vb - 0.5 * h, detail)


def _rock(img, u, vb, vt, w, main, second, detail) -> None:
    h = vb - vt
    _ellipse(img, u, vb - 0.4 * h, w / 2, 0.6 * h, main)
    if w > 6:
        _ellipse(img, u + 0.12 * w, vb - 0.3 * h, 0.3 * w, 0.35 * h, detail)


_BY_NAME: dict[str, Callable[..., None]] = {
    "tree": _tree,
    "pine": _pine,
    "pole": _pole,
    "lamp": _lamp,
    "sign": _sign,
    "house": _house,
    "cactus": _cactus,
    "rock": _rock,
}
assert set(_BY_NAME) == set(PROP_KINDS)
DRAW: list[Callable[..., None]] = [_BY_NAME[name] for name in PROP_KINDS]
"""Draw function of each prop kind, by its index in :data:`~sim.builtin.towns.PROP_KINDS`:
``DRAW[kind](img, u, vb, vt, w, main, second, detail)``."""

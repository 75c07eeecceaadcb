"""A contact sheet of recovery views: a few steps x (the car's camera + its views), labelled.

Each row is one moment of an expert drive with recovery views on (the env's own mechanism,
:mod:`sim.builtin.recovery`); the first column is the car's camera, the others its views.
Under each frame: the pose offset (lateral m, + = left; yaw degrees, + = left) and the label,
the expert's curvature at that pose (1/m, + = left). A view shifted or turned to the left of
the car gets a label more to the right (smaller) than the car's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sim import spec
from sim.builtin.contact_sheet import save_png
from sim.builtin.env import BuiltinDrivingEnv
from sim.builtin.recovery import RecoveryViews

SCALE = 2
"""Frames are drawn at this multiple of the camera size."""
CAPTION_H_PX, PAD_PX = 34, 4
"""Height of the caption under each frame, gap between cells, px."""


@dataclass(frozen=True)
class RecoverySheetConfig:
    """What to render."""

    out: Path = Path("docs/images/recovery_views.png")
    """Output PNG file."""
    town: str = "suburb"
    """Town."""
    weather: str = "clear_noon"
    """Weather."""
    seed: int = 3
    """Road seed (and the views' offsets)."""
    views: int = 3
    """Recovery views per step (columns after the car's camera)."""
    times_s: tuple[float, ...] = (1.0, 4.5, 8.0, 12.0)
    """Simulation times of the rows, s."""

    def __post_init__(self) -> None:
        if not self.times_s or any(not (0 <= t <= 600) for t in self.times_s):
            raise spec.SimConfigError(f"times_s must be in [0, 600] s, got {self.times_s}")
        if self.views < 1:
            raise spec.SimConfigError(f"views must be >= 1, got {self.views}")


def _caption(cell: np.ndarray, lines: list[str]) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, text in enumerate(lines):
        cv2.putText(cell, text, (4, 14 + 15 * i), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)


def recovery_sheet(cfg: RecoverySheetConfig) -> np.ndarray:
    """The sheet as RGB uint8 (rows = times, columns = the car's camera then its views)."""
    env = BuiltinDrivingEnv(
        town=cfg.town, weather=cfg.weather, recovery=RecoveryViews(views=cfg.views)
    )
    obs, info = env.reset(seed=cfg.seed)
    expert = env.make_expert()
    h, w = env.camera.height_px * SCALE, env.camera.width_px * SCALE
    cell_h, cell_w = h + CAPTION_H_PX, w + PAD_PX
    sheet = np.full((len(cfg.times_s) * (cell_h + PAD_PX), (cfg.views + 1) * cell_w, 3), 255)
    sheet = sheet.astype(np.uint8)
    for row, t_s in enumerate(sorted(cfg.times_s)):
        while obs[spec.T_S][0] < t_s - 1e-9:
            obs, _, terminated, truncated, info = env.step(expert.act(obs, None)[0])
            if terminated or truncated:
                raise spec.SimConfigError(f"the episode ended before t = {t_s} s")
        label = float(expert.act(obs, None)[0][0])
        images = [obs[spec.IMAGE], *info[spec.RECOVERY_IMAGES]]
        captions = [[f"car  t={obs[spec.T_S][0]:.1f} s", f"label {label:+.4f} 1/m"]]
        for (lat, yaw), k in zip(
            info[spec.RECOVERY_OFFSETS], info[spec.RECOVERY_LABELS], strict=True
        ):
            captions.append([f"{lat:+.2f} m  {math.degrees(yaw):+.1f} deg", f"label {k:+.4f} 1/m"])
        y = row * (cell_h + PAD_PX)
        for col, (image, lines) in enumerate(zip(images, captions, strict=True)):
            x = col * cell_w
            big = cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST)
            sheet[y : y + h, x : x + w] = big
            _caption(sheet[y + h : y + cell_h, x : x + w], lines)
    env.close()
    return sheet


def write_recovery_sheet(cfg: RecoverySheetConfig) -> Path:
    """Renders the sheet and writes it to ``cfg.out`` as a PNG; returns the path."""
    sheet = recovery_sheet(cfg)
    return save_png(sheet, cfg.out)

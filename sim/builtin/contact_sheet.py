"""A contact sheet of the builtin simulator: one camera frame per town and weather, labelled.

Rows are towns, columns are weathers (training ones first, then the unseen ones, marked
``*``). Each cell is the forward camera after the expert has driven ``drive_m`` metres on
road ``seed`` of that town.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from sim import spec
from sim.builtin.env import BuiltinDrivingEnv
from sim.builtin.towns import TRAIN_TOWNS, UNSEEN_TOWNS, get_town
from sim.builtin.weather import TRAIN_WEATHERS, UNSEEN_WEATHERS, get_weather

log = logging.getLogger(__name__)

LABEL_W_PX, LABEL_H_PX, PAD_PX = 104, 16, 2
"""Width of the town labels, height of the weather labels, gap between cells, px."""


@dataclass(frozen=True)
class ContactSheetConfig:
    """What to render."""

    out: Path = Path("docs/images/towns.png")
    """Output PNG file."""
    towns: tuple[str, ...] = TRAIN_TOWNS + UNSEEN_TOWNS
    """Towns (rows)."""
    weathers: tuple[str, ...] = TRAIN_WEATHERS + UNSEEN_WEATHERS
    """Weathers (columns)."""
    camera: spec.CameraSpec = field(default_factory=spec.CameraSpec)
    """Camera of each cell (default: the project's 200x78 camera, what the network sees)."""
    seed: int = 3
    """Road seed within each town."""
    drive_m: float = 120.0
    """Metres the expert drives before the picture is taken."""
    palette: bool = True
    """Write a 256-colour palette PNG (about half the size of full RGB)."""

    def __post_init__(self) -> None:
        for name in self.towns:
            get_town(name)  # UnknownNameError listing the valid names
        for name in self.weathers:
            get_weather(name)
        if not self.towns or not self.weathers:
            raise spec.SimConfigError("a contact sheet needs at least one town and one weather")
        if not 0.0 <= self.drive_m <= 10_000.0:
            raise spec.SimConfigError(f"drive_m must be in [0, 10000], got {self.drive_m}")


def camera_frame(
    town: str, weather: str, camera: spec.CameraSpec, seed: int, drive_m: float
) -> np.ndarray:
    """The forward camera image after the expert drove ``drive_m`` metres (RGB uint8)."""
    env = BuiltinDrivingEnv(
        town=town, weather=weather, camera=camera, route_length_m=drive_m + 50.0
    )
    return drive_expert(env, seed, drive_m)[0]


def drive_expert(
    env: BuiltinDrivingEnv, seed: int, drive_m: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """Lets the expert drive ``env`` ``drive_m`` metres from ``reset(seed)``, then closes it.

    Returns:
        The forward camera image there (RGB uint8) and the reset info.
    """
    obs, info = env.reset(seed=seed)
    reset_info = info
    expert = env.make_expert()
    while info[spec.INFO_PROGRESS_M] < drive_m:
        action, _ = expert.act(obs, None)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    env.close()
    return obs[spec.IMAGE], reset_info


def save_png(sheet: np.ndarray, path: Path, palette: bool = True) -> Path:
    """Writes an RGB sheet as a PNG (palette: 256 median-cut colours, much smaller)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(sheet)
    if palette:
        image = image.quantize(256, method=Image.Quantize.MEDIANCUT)
    image.save(path, optimize=True)
    return path


def contact_sheet(cfg: ContactSheetConfig) -> np.ndarray:
    """A grid of camera frames with town and weather labels (RGB uint8)."""
    h, w = cfg.camera.height_px, cfg.camera.width_px
    rows, cols = len(cfg.towns), len(cfg.weathers)
    shape = (LABEL_H_PX + rows * (h + PAD_PX), LABEL_W_PX + cols * (w + PAD_PX), 3)
    sheet = np.full(shape, 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(sheet, "* = unseen", (3, 12), font, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    for j, weather in enumerate(cfg.weathers):
        tag = " *" if weather in UNSEEN_WEATHERS else ""
        x = LABEL_W_PX + j * (w + PAD_PX) + 4
        cv2.putText(sheet, weather + tag, (x, 12), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for i, town in enumerate(cfg.towns):
        y = LABEL_H_PX + i * (h + PAD_PX)
        tag = " *" if town in UNSEEN_TOWNS else ""
        cv2.putText(sheet, town + tag, (3, y + h // 2 + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for j, weather in enumerate(cfg.weathers):
            log.info("rendering %s / %s", town, weather)
            x = LABEL_W_PX + j * (w + PAD_PX)
            sheet[y : y + h, x : x + w] = camera_frame(
                town, weather, cfg.camera, cfg.seed, cfg.drive_m
            )
    return sheet


def write_contact_sheet(cfg: ContactSheetConfig) -> Path:
    """Renders the sheet and writes it to ``cfg.out`` as a PNG; returns the path."""
    sheet = contact_sheet(cfg)
    save_png(sheet, cfg.out, cfg.palette)
    log.info("wrote %s (%d x %d px; * = unseen)", cfg.out, sheet.shape[1], sheet.shape[0])
    return cfg.out

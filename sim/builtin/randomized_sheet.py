"""A contact sheet of randomised training episodes: one camera frame each, captioned.

Each cell is the forward camera of one randomised episode (``sim.builtin.randomize``) after
the expert drove ``drive_m`` metres; towns and weathers cycle over the training split and the
seeds count up from ``seed``. The caption names the training preset and a few drawn factors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sim import spec
from sim.builtin.contact_sheet import drive_expert, save_png
from sim.builtin.env import BuiltinDrivingEnv
from sim.builtin.randomize import DomainRandomization
from sim.builtin.towns import TRAIN_TOWNS
from sim.builtin.weather import TRAIN_WEATHERS

log = logging.getLogger(__name__)

CAPTION_H_PX, PAD_PX = 30, 3
"""Height of a cell's caption, gap between cells, px."""


@dataclass(frozen=True)
class RandomizedSheetConfig:
    """What to render."""

    out: Path = Path("docs/images/randomized_episodes.png")
    """Output PNG file."""
    episodes: int = 12
    """Number of randomised episodes (cells)."""
    columns: int = 3
    """Cells per row."""
    seed: int = 1
    """Reset seed of the first episode (the others count up)."""
    drive_m: float = 40.0
    """Metres the expert drives before the picture is taken."""
    scale: int = 2
    """Each 200x78 camera frame is enlarged this many times (nearest neighbour)."""

    def __post_init__(self) -> None:
        if not 1 <= self.episodes <= 200 or not 1 <= self.columns <= 20:
            raise spec.SimConfigError(
                f"episodes must be in [1, 200] and columns in [1, 20], got "
                f"{self.episodes}, {self.columns}"
            )
        if not 1 <= self.scale <= 8:
            raise spec.SimConfigError(f"scale must be in [1, 8], got {self.scale}")
        if not 0.0 <= self.drive_m <= 10_000.0:
            raise spec.SimConfigError(f"drive_m must be in [0, 10000], got {self.drive_m}")


def caption(factors: dict[str, Any]) -> tuple[str, str]:
    """Two short caption lines from an episode's drawn factors."""
    a, w, g = factors["appearance"], factors["weather"], factors["geometry"]
    c = factors["camera"]
    line1 = (
        f"{factors['base_town']}/{factors['base_weather']} R{g['min_bend_radius_m']:.0f}m "
        f"lane {g['lane_width_m']:.1f}m"
    )
    line2 = (
        f"{a['centre_line']} {a['centre_colour'][0]}{' +edge' if a['edge_lines'] else ''} "
        f"fog {1000 * w['fog_per_m']:.0f}/km{' rain' if w['rain'] > 0 else ''} "
        f"exp {w['exposure']:.2f} yaw {c['yaw_deg']:+.1f}"
    )
    return line1, line2


def randomized_frame(
    town: str, weather: str, seed: int, drive_m: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """The camera image of one randomised episode after ``drive_m`` metres, and its factors."""
    env = BuiltinDrivingEnv(
        town=town, weather=weather, route_length_m=drive_m + 50.0, randomize=DomainRandomization()
    )
    image, info = drive_expert(env, seed, drive_m)
    return image, info[spec.RESET_INFO_WORLD_FACTORS]


def randomized_sheet(cfg: RandomizedSheetConfig) -> np.ndarray:
    """The grid of captioned camera frames (RGB uint8)."""
    cam = spec.CameraSpec()
    h, w = cam.height_px * cfg.scale, cam.width_px * cfg.scale
    rows = -(-cfg.episodes // cfg.columns)
    cell_h = h + CAPTION_H_PX + PAD_PX
    sheet = np.full((rows * cell_h, cfg.columns * (w + PAD_PX), 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for k in range(cfg.episodes):
        town = TRAIN_TOWNS[k % len(TRAIN_TOWNS)]
        weather = TRAIN_WEATHERS[(k // len(TRAIN_TOWNS)) % len(TRAIN_WEATHERS)]
        log.info("rendering randomised episode %d (%s / %s)", k, town, weather)
        image, factors = randomized_frame(town, weather, cfg.seed + k, cfg.drive_m)
        y, x = (k // cfg.columns) * cell_h, (k % cfg.columns) * (w + PAD_PX)
        sheet[y : y + h, x : x + w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST)
        for i, text in enumerate(caption(factors)):
            org = (x + 2, y + h + 12 + 13 * i)
            cv2.putText(sheet, text, org, font, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def write_randomized_sheet(cfg: RandomizedSheetConfig) -> Path:
    """Renders the sheet and writes it to ``cfg.out`` as a PNG; returns the path."""
    sheet = randomized_sheet(cfg)
    save_png(sheet, cfg.out)
    log.info("wrote %s (%d x %d px)", cfg.out, sheet.shape[1], sheet.shape[0])
    return cfg.out

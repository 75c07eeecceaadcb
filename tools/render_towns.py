r"""Renders a contact sheet of every town x weather of the builtin simulator to a PNG.

Usage::

    python tools/render_towns.py --out docs/images/towns.png

Rows are towns (training towns first, then the unseen ones), columns are weathers (training
weathers first, then the unseen ones). Each cell is the forward camera after the expert has
driven ``--drive-m`` metres on road ``--seed`` of that town.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import tyro
from PIL import Image

from sim import spec
from sim.builtin.env import BuiltinDrivingEnv
from sim.builtin.towns import TRAIN_TOWNS, UNSEEN_TOWNS
from sim.builtin.weather import TRAIN_WEATHERS, UNSEEN_WEATHERS

log = logging.getLogger(__name__)


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


def camera_frame(
    town: str, weather: str, camera: spec.CameraSpec, seed: int, drive_m: float
) -> np.ndarray:
    """The forward camera image after the expert drove ``drive_m`` metres (RGB uint8)."""
    env = BuiltinDrivingEnv(
        town=town, weather=weather, camera=camera, route_length_m=drive_m + 50.0
    )
    obs, info = env.reset(seed=seed)
    expert = env.make_expert()
    while info[spec.INFO_PROGRESS_M] < drive_m:
        action, _ = expert.act(obs, None)
        obs, _, _, _, info = env.step(action)
    env.close()
    return obs[spec.IMAGE]


def contact_sheet(cfg: ContactSheetConfig) -> np.ndarray:
    """A grid of camera frames with town and weather labels (RGB uint8)."""
    h, w = cfg.camera.height_px, cfg.camera.width_px
    label_w, label_h, pad = 104, 16, 2
    rows = len(cfg.towns)
    cols = len(cfg.weathers)
    sheet = np.full((label_h + rows * (h + pad), label_w + cols * (w + pad), 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(sheet, "* = unseen", (3, 12), font, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    for j, weather in enumerate(cfg.weathers):
        tag = " *" if weather in UNSEEN_WEATHERS else ""
        x = label_w + j * (w + pad) + 4
        cv2.putText(sheet, weather + tag, (x, 12), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for i, town in enumerate(cfg.towns):
        y = label_h + i * (h + pad)
        tag = " *" if town in UNSEEN_TOWNS else ""
        cv2.putText(sheet, town + tag, (3, y + h // 2 + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for j, weather in enumerate(cfg.weathers):
            log.info("rendering %s / %s", town, weather)
            x = label_w + j * (w + pad)
            sheet[y : y + h, x : x + w] = camera_frame(
                town, weather, cfg.camera, cfg.seed, cfg.drive_m
            )
    return sheet


def main(cfg: ContactSheetConfig) -> None:
    """Renders the sheet and writes it to ``cfg.out``."""
    sheet = contact_sheet(cfg)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(sheet)
    if cfg.palette:
        image = image.quantize(256, method=Image.Quantize.MEDIANCUT)
    image.save(cfg.out, optimize=True)
    log.info("wrote %s (%d x %d px; * = unseen)", cfg.out, sheet.shape[1], sheet.shape[0])


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main(tyro.cli(ContactSheetConfig))

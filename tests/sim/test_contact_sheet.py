from pathlib import Path

import numpy as np
from PIL import Image

from sim import spec
from tools.render_towns import ContactSheetConfig, contact_sheet, main


def test_contact_sheet_has_one_camera_frame_per_town_and_weather(tmp_path: Path):
    cfg = ContactSheetConfig(
        out=tmp_path / "sheet.png",
        towns=("countryside", "snow"),
        weathers=("clear_noon", "night", "fog"),
        camera=spec.CameraSpec(width_px=80, height_px=32),
        drive_m=10.0,
    )
    sheet = contact_sheet(cfg)
    assert sheet.dtype == np.uint8 and sheet.shape[2] == 3
    assert sheet.shape[0] == 16 + 2 * (32 + 2) and sheet.shape[1] == 104 + 3 * (80 + 2)
    # each cell is a rendered frame, not the white background
    cell = sheet[16 : 16 + 32, 104 : 104 + 80]
    assert cell.std() > 5 and cell.mean() < 250
    night = sheet[16 : 16 + 32, 104 + 82 : 104 + 82 + 80]
    assert night.mean() < cell.mean()
    main(cfg)
    assert Image.open(cfg.out).size == (sheet.shape[1], sheet.shape[0])

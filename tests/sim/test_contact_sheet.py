from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sim import spec
from sim.builtin.contact_sheet import ContactSheetConfig, contact_sheet, write_contact_sheet
from sim.builtin.towns import UnknownNameError
from tools.render_towns import main


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
    assert write_contact_sheet(cfg) == cfg.out
    assert Image.open(cfg.out).size == (sheet.shape[1], sheet.shape[0])


def test_the_tool_writes_the_sheet_and_refuses_unknown_names(tmp_path: Path, capsys):
    out = tmp_path / "towns.png"
    args = ["--out", str(out), "--towns", "desert", "--weathers", "sunset", "--drive-m", "5"]
    assert main([*args, "--camera.width-px", "40", "--camera.height-px", "16"]) == 0
    assert Image.open(out).size == (104 + 42, 16 + 18)
    assert f"wrote {out}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:  # tyro reports the config's own error, exit 2
        main(["--out", str(tmp_path / "x.png"), "--towns", "atlantis"])
    assert info.value.code == 2
    assert "atlantis" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
    with pytest.raises(UnknownNameError, match="countryside"):
        ContactSheetConfig(weathers=("hail",), towns=("nowhere",))

"""The contact sheet of randomised episodes."""

import pytest

from sim import spec
from sim.builtin.randomize import DomainRandomization, draw_world
from sim.builtin.randomized_sheet import RandomizedSheetConfig, caption, write_randomized_sheet


def test_caption_names_the_preset_and_drawn_factors():
    factors = draw_world(DomainRandomization(), "suburb", "sunset", 3).factors
    line1, line2 = caption(factors)
    assert line1.startswith("suburb/sunset R")
    assert factors["appearance"]["centre_line"] in line2


def test_a_small_sheet_is_written(tmp_path):
    out = write_randomized_sheet(
        RandomizedSheetConfig(out=tmp_path / "s.png", episodes=2, columns=2, drive_m=0.0, scale=1)
    )
    from PIL import Image

    w, h = Image.open(out).size
    assert w == 2 * (spec.CameraSpec().width_px + 3) and h > spec.CameraSpec().height_px


def test_bad_sheet_options_are_refused():
    with pytest.raises(spec.SimConfigError, match="episodes"):
        RandomizedSheetConfig(episodes=0)

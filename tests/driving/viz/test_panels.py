import numpy as np
import pytest

from driving.viz.layout import VisualizeError
from driving.viz.panels import figure_to_array, pca, summary_figure
from driving.viz.wiring import save_wiring, wiring_figure
from tests.driving.viz.samples import sample_layout, sample_track


def test_summary_figure_is_non_empty_and_deterministic():
    track, layout = sample_track(), sample_layout()
    a = figure_to_array(summary_figure(track, layout))
    b = figure_to_array(summary_figure(track, layout))
    assert np.array_equal(a, b)
    assert (a < 250).any(axis=2).mean() > 0.05  # a real share of drawn (non-white) pixels
    c = figure_to_array(summary_figure(sample_track(seed=1), layout))
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_wiring_png_and_svg_are_written_and_deterministic(tmp_path):
    png, svg = save_wiring(sample_layout(), tmp_path / "a")
    png2, svg2 = save_wiring(sample_layout(), tmp_path / "b")
    assert png.stat().st_size > 1000 and svg.read_text().startswith("<?xml")
    assert png.read_bytes() == png2.read_bytes()
    assert svg.read_text() == svg2.read_text()
    img = figure_to_array(wiring_figure(sample_layout()))
    assert (img < 250).any(axis=2).mean() > 0.01


def test_pca_explains_a_rank_one_signal_with_one_component():
    t = np.linspace(0, 1, 50)
    states = np.outer(np.sin(6 * t), [1.0, -2.0, 0.5])
    ratio, scores = pca(states)
    assert ratio[0] == pytest.approx(1.0) and ratio.sum() == pytest.approx(1.0)
    assert scores.shape == (50, 3)
    with pytest.raises(VisualizeError, match="PCA needs"):
        pca(np.zeros((1, 3)))

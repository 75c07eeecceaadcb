import av
import numpy as np
import pytest

from driving.viz.layout import NeuronLayout, VisualizeError
from driving.viz.panels import figure_to_array, summary_figure
from driving.viz.renderer import FrameRenderer
from driving.viz.video import VideoWriter, render_video
from tests.driving.viz.samples import CAMERA_HW, T, cameras, decode, sample_layout, sample_track


def test_mp4_has_one_frame_per_step_and_the_requested_size(tmp_path):
    renderer = FrameRenderer(
        sample_track(), sample_layout(), CAMERA_HW, width_px=320, height_px=240
    )
    n = render_video(tmp_path / "v.mp4", renderer, cameras(), fps=20.0)
    frames = decode(tmp_path / "v.mp4")
    assert n == T and len(frames) == T
    assert frames[0].shape == (240, 320, 3)
    with av.open(str(tmp_path / "v.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"


def test_gif_keeps_every_nth_step_at_the_scaled_size(tmp_path):
    renderer = FrameRenderer(
        sample_track(), sample_layout(), CAMERA_HW, width_px=320, height_px=240
    )
    n = render_video(tmp_path / "v.gif", renderer, cameras(), fps=10.0, every=3, scale=0.5)
    frames = decode(tmp_path / "v.gif")
    assert n == 4 and len(frames) == 4
    assert frames[0].shape == (120, 160, 3)


def test_frames_are_deterministic_and_move_with_the_step():
    track, layout = sample_track(), sample_layout()
    a = FrameRenderer(track, layout, CAMERA_HW, width_px=320, height_px=240)
    b = FrameRenderer(track, layout, CAMERA_HW, width_px=320, height_px=240)
    cam = next(cameras())
    f3 = a.render(3, cam)
    assert f3.shape == (240, 320, 3) and f3.dtype == np.uint8
    assert np.array_equal(f3, b.render(3, cam))
    assert not np.array_equal(f3, a.render(9, cam))  # marker, car and node colours moved
    r = a.cam_rect
    assert np.all(f3[r.y0 + 30 : r.y1 - 2, r.x0 + 2 : r.x1 - 2] == 0)  # the camera was pasted
    with pytest.raises(VisualizeError, match="step 12 outside"):
        a.render(T, cam)


@pytest.mark.parametrize("units", [None, 40], ids=["cnn-no-state", "lstm-hidden"])
def test_models_without_wiring_render_without_the_wiring_panel(tmp_path, units):
    track = sample_track(units)
    layout = None if units is None else NeuronLayout.hidden(units)
    renderer = FrameRenderer(track, layout, CAMERA_HW, width_px=320, height_px=240)
    assert renderer.ax_wiring is None
    assert len(renderer.trace_axes) == (0 if units is None else 1)
    assert render_video(tmp_path / "v.mp4", renderer, cameras(), fps=20.0) == T
    img = figure_to_array(summary_figure(track, layout))
    assert img.std() > 0


def test_video_writer_rejects_bad_sizes_and_suffixes(tmp_path):
    with pytest.raises(VisualizeError, match="even frame size"):
        VideoWriter(tmp_path / "a.mp4", 321, 240, 20)
    with pytest.raises(VisualizeError, match=r"\.mp4 or \.gif"):
        VideoWriter(tmp_path / "a.avi", 320, 240, 20)
    with VideoWriter(tmp_path / "b.mp4", 320, 240, 20) as w, pytest.raises(VisualizeError):
        w.write(np.zeros((240, 320), np.uint8))

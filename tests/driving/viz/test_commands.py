"""The route's command in the video: the camera glyph, the map zones, the track's column."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from driving.data import episodes as E
from driving.data.format import COMMAND
from driving.viz.commands import GLYPH_H_PX, command_runs, draw_command_glyph
from driving.viz.layout import VisualizeError
from driving.viz.renderer import FrameRenderer
from driving.viz.track import RolloutTrack, track_from_episode
from sim.spec import Command
from tests.driving.viz.samples import T, sample_layout, sample_track

CAMERA = np.full((66, 132, 3), 90, np.uint8)


def _with_command(track: RolloutTrack, command) -> RolloutTrack:
    kept = {f.name: getattr(track, f.name) for f in dataclasses.fields(track)}
    return RolloutTrack(**{**kept, "command": command})


def test_command_runs_skip_follow_lane():
    assert command_runs(np.array([0, 1, 1, 0, 0, 2, 3, 3])) == [(1, 1, 2), (2, 5, 5), (3, 6, 7)]
    assert command_runs(np.zeros(4)) == []


def test_follow_lane_draws_nothing_and_a_turn_draws_a_small_box():
    frame = np.full((60, 200, 3), 128, np.uint8)
    draw_command_glyph(frame, int(Command.FOLLOW_LANE), 190, 5)
    assert (frame == 128).all()
    for command in (Command.LEFT, Command.RIGHT, Command.STRAIGHT):
        frame = np.full((60, 200, 3), 128, np.uint8)
        draw_command_glyph(frame, int(command), 190, 5)
        rows, cols = np.nonzero((frame != 128).any(axis=2))
        assert rows.min() >= 5 and rows.max() < 5 + GLYPH_H_PX
        assert cols.max() < 190 and cols.min() > 60  # right-aligned, well short of the width
    left, right = (np.full((60, 200, 3), 128, np.uint8) for _ in range(2))
    draw_command_glyph(left, int(Command.LEFT), 190, 5)
    draw_command_glyph(right, int(Command.RIGHT), 190, 5)
    assert not np.array_equal(left, right)


def test_the_camera_panel_shows_the_command_and_follow_lane_keeps_the_frame():
    track = sample_track()
    command = np.zeros(T, np.int64)
    command[3:6] = int(Command.LEFT)
    plain = FrameRenderer(track, sample_layout(), CAMERA.shape[:2])
    same = FrameRenderer(_with_command(track, np.zeros(T)), sample_layout(), CAMERA.shape[:2])
    turn = FrameRenderer(_with_command(track, command), sample_layout(), CAMERA.shape[:2])
    assert np.array_equal(plain.render(4, CAMERA), same.render(4, CAMERA))
    r = turn.cam_rect
    a, b = plain.render(4, CAMERA), turn.render(4, CAMERA)
    diff = (a[r.y0 : r.y1, r.x0 : r.x1] != b[r.y0 : r.y1, r.x0 : r.x1]).any(axis=2)
    rows, cols = np.nonzero(diff)
    assert rows.size and rows.max() < GLYPH_H_PX + 8 and cols.min() > r.w // 2  # top right
    assert not np.array_equal(a, b)  # the map's zone is coloured too
    # a follow-lane step of the same rollout shows no glyph
    assert np.array_equal(
        plain.render(8, CAMERA)[r.y0 : r.y1, r.x0 : r.x1],
        turn.render(8, CAMERA)[r.y0 : r.y1, r.x0 : r.x1],
    )


class _Episode:
    """What track_from_episode reads of a driving.data.episodes.Episode."""

    def __init__(self, columns):
        self.columns, self.path, self.town, self.weather = columns, Path("episode_0"), "v", "c"

    def __len__(self) -> int:
        return T


def test_the_track_reads_the_command_column_and_defaults_to_follow_lane():
    track = sample_track()
    assert (track.command == 0).all() and track.command.dtype == np.int64
    assert (track.first(4).command == 0).all()
    with pytest.raises(VisualizeError, match="command"):
        _with_command(track, np.zeros(T - 1))
    cols = {
        E.T_S: track.t_s,
        E.CURVATURE_APPLIED: track.curvature_pred,
        E.CURVATURE_EXPERT: track.curvature_expert,
        E.X_M: track.x_m,
        E.Y_M: track.y_m,
        E.YAW_RAD: track.yaw_rad,
        E.INTERVENTION: track.intervention,
    }
    fake = _Episode(cols)
    assert (track_from_episode(fake).command == 0).all()
    fake.columns = {**cols, COMMAND: np.arange(T) % 4}
    assert track_from_episode(fake).command.tolist() == (np.arange(T) % 4).tolist()

import numpy as np
import pytest

from driving.data.episodes import read_episode
from driving.viz.layout import VisualizeError
from driving.viz.track import RolloutTrack, resolve_episode, track_from_episode
from tests.driving.viz.samples import T, sample_track, write_rollout


def test_track_validation_names_the_bad_column():
    with pytest.raises(VisualizeError, match=r"curvature_expert must have shape \(3,\)"):
        RolloutTrack(np.arange(3.0), np.zeros(3), np.zeros(4), *np.zeros((3, 3)), np.zeros(3))


def test_first_steps_cut_every_column_and_say_so_in_the_title():
    track = sample_track()
    track.title = "ep"
    head = track.first(5)
    assert len(head) == 5 and head.title == "ep (first 5 steps)"
    for name in ("t_s", "curvature_pred", "curvature_expert", "x_m", "y_m", "yaw_rad"):
        assert np.array_equal(getattr(head, name), getattr(track, name)[:5])
    assert np.array_equal(head.states, track.states[:5])
    assert np.array_equal(head.sensory, track.sensory[:5])
    assert np.array_equal(head.intervention, track.intervention[:5])
    assert track.first(T) is track
    assert sample_track(None).first(3).states is None


def test_track_from_a_rollout_on_disk_keeps_the_state_order(tmp_path):
    path = write_rollout(tmp_path / "rollouts")
    assert resolve_episode(tmp_path / "rollouts") == path
    assert resolve_episode(path) == path
    track = track_from_episode(read_episode(path))
    want = sample_track()
    assert np.allclose(track.states, want.states)
    assert np.allclose(track.curvature_pred, want.curvature_pred)
    assert np.array_equal(track.intervention, want.intervention)
    assert "hills" in track.title and "1 interventions" in track.title
    with pytest.raises(VisualizeError, match="no episode 7"):
        resolve_episode(tmp_path / "rollouts", 7)
    with pytest.raises(VisualizeError, match="not an episode dataset"):
        resolve_episode(tmp_path)

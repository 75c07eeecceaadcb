"""Recording with domain randomisation: factors in episode.json, where it applies, refusals."""

import json
from pathlib import Path

import pytest

from driving.data import episodes as ep
from driving.rollout.randomize import DEFAULT_CAMERA_RANGE
from driving.rollout.record import RecordConfig, RecordError, record
from liquid_drive.errors import LiquidDriveError

SMALL = {"towns": ("suburb",), "weathers": ("overcast",), "episode_s": 1.0, "progress": False}


def _episode_json(out):
    (path,) = ep.list_episodes(out)
    return json.loads((path / "episode.json").read_text())


def test_randomized_recording_writes_the_drawn_factors(tmp_path):
    out = tmp_path / "d"
    groups = ("appearance", "weather", "geometry", "camera")
    record(RecordConfig(out=out, episodes=1, randomize=True, randomize_groups=groups, **SMALL))
    meta = _episode_json(out)
    f = meta["world_factors"]
    assert meta["randomize_groups"] == list(groups)
    assert f["base_town"] == "suburb" and f["base_weather"] == "overcast"
    assert set(f) >= set(groups)
    assert meta["town"] == "suburb"  # the preset the world was drawn from


def test_groups_switch_factors_and_an_unrandomized_recording_has_none(tmp_path):
    record(
        RecordConfig(
            out=tmp_path / "g", episodes=1, randomize=True, randomize_groups=("camera",), **SMALL
        )
    )
    f = _episode_json(tmp_path / "g")["world_factors"]
    assert f["groups"] == ["camera"] and "appearance" not in f
    record(RecordConfig(out=tmp_path / "plain", episodes=1, randomize=False, **SMALL))
    meta = _episode_json(tmp_path / "plain")
    assert "world_factors" not in meta and "randomize_groups" not in meta


def test_randomize_applies_to_the_builtin_lane_keeping_training_presets_only():
    def on(**kw):
        return RecordConfig(out=Path("x"), **kw).randomize

    assert on() and on(towns=("suburb",), weathers=("overcast", "sunset"))
    assert not on(towns=("village",))  # a junction town
    assert not on(towns=("desert",)) and not on(weathers=("clear_noon", "fog"))  # held out
    assert not on(sim="carla", recovery_views=0)
    assert not on(randomize=False)
    default = RecordConfig(out=Path("x"))
    assert default.randomize_groups == ("appearance", "weather", "camera")
    assert default.randomize_camera_range == DEFAULT_CAMERA_RANGE == (1.5, 0.0, 0.08)
    assert RecordConfig(out=Path("x"), randomize=False).randomize_camera_range is None


def test_camera_range_zero_yaw_keeps_the_other_draws(tmp_path):
    camera = {"randomize": True, "randomize_groups": ("camera",), **SMALL}
    record(
        RecordConfig(
            out=tmp_path / "a", episodes=1, randomize_camera_range=(1.5, 1.5, 0.08), **camera
        )
    )
    record(
        RecordConfig(
            out=tmp_path / "b", episodes=1, randomize_camera_range=(1.5, 0.0, 0.08), **camera
        )
    )
    full, no_yaw = (_episode_json(tmp_path / n) for n in ("a", "b"))
    assert full["world_factors"]["camera"]["yaw_deg"] != 0.0
    assert no_yaw["world_factors"]["camera"]["yaw_deg"] == 0.0
    for key in ("pitch_deg", "height_m"):  # the same stream: only the yaw range changed
        assert no_yaw["world_factors"]["camera"][key] == full["world_factors"]["camera"][key]
    assert no_yaw["randomize_camera_range"] == [1.5, 0.0, 0.08]
    assert full["randomize_camera_range"] == [1.5, 1.5, 0.08]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"randomize_groups": ("appearance",)}, "needs --randomize with the camera group"),
        ({"randomize": False}, "needs --randomize with the camera group"),
        ({"randomize_camera_range": (1.5, -1.0, 0.08)}, "three finite half-ranges"),
        ({"randomize_camera_range": (1.5, 20.0, 0.08)}, "camera_yaw_deg must be in"),
    ],
)
def test_bad_camera_ranges_are_refused_before_writing(tmp_path, options, match):
    out = tmp_path / "d"
    kwargs = {"randomize": True, "randomize_camera_range": (1.5, 0.0, 0.08), **SMALL, **options}
    with pytest.raises(LiquidDriveError, match=match):
        record(RecordConfig(out=out, episodes=1, **kwargs))
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"randomize_groups": ()}, "randomize_groups"),
        ({"randomize_groups": ("camera", "camera")}, "randomize_groups"),
        ({"randomize_groups": ("camera", "lighting")}, "randomize_groups"),
    ],
)
def test_bad_randomize_requests_are_refused_before_writing(tmp_path, options, match):
    out = tmp_path / "d"
    kwargs = {**SMALL, **options}
    with pytest.raises(RecordError, match=match):
        record(RecordConfig(out=out, episodes=1, randomize=True, **kwargs))
    assert not out.exists()

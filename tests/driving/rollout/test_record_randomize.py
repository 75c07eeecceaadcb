"""Recording with domain randomisation: factors in episode.json, default unchanged, refusals."""

import json

import pytest

from driving.data import episodes as ep
from driving.rollout.record import RecordConfig, RecordError, record

SMALL = {"towns": ("suburb",), "weathers": ("overcast",), "episode_s": 1.0, "progress": False}


def _episode_json(out):
    (path,) = ep.list_episodes(out)
    return json.loads((path / "episode.json").read_text())


def test_randomized_recording_writes_the_drawn_factors(tmp_path):
    out = tmp_path / "d"
    record(RecordConfig(out=out, episodes=1, randomize=True, **SMALL))
    meta = _episode_json(out)
    f = meta["world_factors"]
    assert meta["randomize_groups"] == ["appearance", "weather", "geometry", "camera"]
    assert f["base_town"] == "suburb" and f["base_weather"] == "overcast"
    assert set(f) >= {"appearance", "weather", "geometry", "camera"}
    assert meta["town"] == "suburb"  # the preset the world was drawn from


def test_groups_switch_factors_and_default_recording_has_none(tmp_path):
    record(
        RecordConfig(
            out=tmp_path / "g", episodes=1, randomize=True, randomize_groups=("camera",), **SMALL
        )
    )
    f = _episode_json(tmp_path / "g")["world_factors"]
    assert f["groups"] == ["camera"] and "appearance" not in f
    record(RecordConfig(out=tmp_path / "plain", episodes=1, **SMALL))
    meta = _episode_json(tmp_path / "plain")
    assert "world_factors" not in meta and "randomize_groups" not in meta


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"towns": ("desert",)}, "held-out presets"),
        ({"weathers": ("fog",)}, "held-out presets"),
        ({"randomize_groups": ()}, "randomize_groups"),
        ({"randomize_groups": ("camera", "camera")}, "randomize_groups"),
        ({"sim": "carla"}, "needs --sim builtin"),
    ],
)
def test_bad_randomize_requests_are_refused_before_writing(tmp_path, options, match):
    out = tmp_path / "d"
    kwargs = {**SMALL, **options}
    with pytest.raises(RecordError, match=match):
        record(RecordConfig(out=out, episodes=1, randomize=True, **kwargs))
    assert not out.exists()

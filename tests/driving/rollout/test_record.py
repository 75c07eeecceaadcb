"""Recording expert episodes (driving.rollout.record): labels, appending, refusal, workers."""

import sys

import numpy as np
import pytest

from driving.data import episodes as ep
from driving.rollout.record import RecordConfig, RecordError, record
from sim.spec import CameraSpec

SMALL = {"towns": ("countryside",), "weathers": ("clear_noon",), "episode_s": 2.0}


def test_records_labels_noise_and_metadata(tmp_path):
    cfg = RecordConfig(out=tmp_path / "d", episodes=2, noise_share=0.5, progress=False, **SMALL)
    summary = record(cfg)
    assert summary.episodes == 2 and summary.dataset_episodes == 2 and not summary.stopped
    assert summary.steps == 80 and summary.sim_s == pytest.approx(4.0, abs=0.2)
    assert summary.by_town["countryside"]["episodes"] == 2 and summary.km > 0.01
    assert summary.noise_steps > 0
    episodes = list(ep.iter_episodes(cfg.out, check_frames=True))
    assert [e.index for e in episodes] == [0, 1]
    info = ep.read_info(cfg.out)
    assert info.sim == "builtin" and info.camera == CameraSpec().to_dict()
    for e in episodes:
        assert len(e) == 40 and e.town == "countryside" and e.weather == "clear_noon"
        assert e.meta["outcome"] == "time_limit" and e.meta["noise"]["share"] == 0.5
        assert abs(e.meta["start_offset_m"]) <= 0.5
        assert 5.0 < e.meta["target_speed_mps"] < 20.0
        c = e.columns
        noisy = c[ep.NOISE_ACTIVE]
        diff = np.abs(c[ep.CURVATURE_APPLIED] - c[ep.CURVATURE_EXPERT])
        # While noise is active the car executes something else than the clean label.
        if noisy.any():
            assert diff[noisy].max() > 1e-3
        np.testing.assert_allclose(np.diff(c[ep.T_S]), 0.05, atol=1e-9)
        assert e.frame(0).shape == (78, 200, 3)
    assert episodes[0].meta["seed"] != episodes[1].meta["seed"]
    assert "recorded 2 episodes" in summary.format()


def test_appends_with_new_ids_and_new_roads_and_refuses_other_kinds(tmp_path):
    out = tmp_path / "d"
    record(RecordConfig(out=out, episodes=1, progress=False, **SMALL))
    record(RecordConfig(out=out, episodes=2, progress=False, **SMALL))
    seeds = [e.meta["seed"] for e in ep.iter_episodes(out)]
    assert [p.name for p in ep.list_episodes(out)] == [f"episode_00000{i}" for i in range(3)]
    assert len(set(seeds)) == 3  # the same --seed does not repeat roads when appending
    other_camera = CameraSpec(width_px=100, height_px=40)
    with pytest.raises(ep.DatasetMismatchError, match="camera"):
        record(RecordConfig(out=out, episodes=1, camera=other_camera, progress=False, **SMALL))
    with pytest.raises(ep.DatasetMismatchError, match="control rate"):
        record(RecordConfig(out=out, episodes=1, control_rate_hz=10.0, progress=False, **SMALL))
    assert len(ep.list_episodes(out)) == 3


def test_same_seed_same_episodes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        record(RecordConfig(out=out, episodes=1, seed=5, progress=False, **SMALL))
    (ea,), (eb,) = ep.load_episodes(a), ep.load_episodes(b)
    for name in ep.BASE_COLUMN_NAMES:
        np.testing.assert_array_equal(ea.columns[name], eb.columns[name], err_msg=name)
    np.testing.assert_array_equal(ea.frames(0, len(ea)), eb.frames(0, len(eb)))


def test_minutes_mode_and_two_workers(tmp_path):
    cfg = RecordConfig(out=tmp_path / "d", minutes=0.1, workers=2, progress=False, **SMALL)
    summary = record(cfg)
    assert summary.episodes == 3 and summary.sim_s == pytest.approx(6.0, abs=0.3)
    assert not summary.stopped
    episodes = list(ep.iter_episodes(cfg.out, check_frames=True))
    assert sorted(e.index for e in episodes) == [0, 1, 2]
    assert len({e.meta["seed"] for e in episodes}) == 3


def test_config_errors_show_the_bad_value(tmp_path):
    with pytest.raises(RecordError, match="minutes must be positive, got -1"):
        RecordConfig(out=tmp_path, minutes=-1)
    with pytest.raises(ValueError, match="workers must be 1"):
        RecordConfig(out=tmp_path, sim="carla", workers=2)
    with pytest.raises(ValueError, match=r"unknown town\(s\) \['atlantis'\]"):
        record(RecordConfig(out=tmp_path / "d", towns=("atlantis",), progress=False))
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"control_rate_hz": 5000.0}, "control_rate_hz"),
        ({"target_speed_range_mps": (5.0, 500.0)}, "target_speed_range_mps"),
    ],
)
def test_environment_options_are_checked_before_anything_is_written(tmp_path, option, match):
    out = tmp_path / "d"
    with pytest.raises(ValueError, match=match):
        record(RecordConfig(out=out, episodes=1, progress=False, **option, **SMALL))
    assert not out.exists()  # no info.json blocking a later recording into the folder
    record(RecordConfig(out=out, episodes=1, progress=False, **SMALL))
    assert len(ep.list_episodes(out)) == 1


def test_carla_backend_on_the_stand_in_server(tmp_path, monkeypatch):
    from tests.sim.carla import standin

    monkeypatch.setitem(sys.modules, "carla", standin)
    server = standin.Server(port=23500, render="raster")
    try:
        cfg = RecordConfig(
            out=tmp_path / "c",
            sim="carla",
            port=server.port,
            episodes=2,
            episode_s=3.0,
            progress=False,
        )
        summary = record(cfg)
    finally:
        server.stop()
    assert summary.episodes == 2 and ep.read_info(cfg.out).sim == "carla"
    episodes = list(ep.iter_episodes(cfg.out, check_frames=True))
    assert {e.town for e in episodes} == {"Town01"}
    assert {e.weather for e in episodes} <= {"ClearNoon", "WetNoon", "HardRainNoon", "ClearSunset"}
    assert all(len(e) >= 55 for e in episodes)

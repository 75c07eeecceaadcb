"""tools/record.py: recording, appending, refusal, workers, and crash safety (SIGKILL/SIGTERM)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from driving.data import episodes as ep
from sim.spec import CameraSpec
from tools.record import RecordConfig, record

ROOT = Path(__file__).resolve().parents[2]
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
    with pytest.raises(ValueError, match="minutes must be positive, got -1"):
        RecordConfig(out=tmp_path, minutes=-1)
    with pytest.raises(ValueError, match="workers must be 1"):
        RecordConfig(out=tmp_path, sim="carla", workers=2)
    with pytest.raises(ValueError, match=r"unknown town\(s\) \['atlantis'\]"):
        record(RecordConfig(out=tmp_path / "d", towns=("atlantis",), progress=False))


def _start(out, *args):
    cmd = [sys.executable, str(ROOT / "tools" / "record.py"), "--out", str(out), "--no-progress"]
    return subprocess.Popen(
        [*cmd, "--towns", "countryside", "--weathers", "clear_noon", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # works without an installed package too
    )


def _wait_for(predicate, proc, timeout_s=60.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"recorder exited early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("timed out waiting for the recorder")


def _rows(partial_dirs):
    """Rows written so far in the partial episodes (they may appear or be renamed meanwhile)."""
    best = 0
    for p in partial_dirs:
        with contextlib.suppress(FileNotFoundError):
            best = max(best, len((p / "steps.csv").read_text().splitlines()) - 1)
    return best


def test_sigkill_mid_episode_keeps_finished_episodes_and_never_reads_the_partial(tmp_path):
    out = tmp_path / "d"
    proc = _start(out, "--episodes", "100", "--episode-s", "2")
    folder = out / "episodes"

    def two_done_and_one_midway():
        if not (out / "meta" / "info.json").exists() or len(ep.list_episodes(out)) < 2:
            return False
        return _rows(ep.list_partial_episodes(out)) >= 5

    _wait_for(two_done_and_one_midway, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    finished = ep.list_episodes(out)
    partial = ep.list_partial_episodes(out)
    assert len(finished) >= 2 and len(partial) == 1, sorted(os.listdir(folder))
    for path in finished:  # every finished episode is complete and intact
        e = ep.read_episode(path, check_frames=True)
        assert len(e) == 40 and e.meta["status"] == "complete"
    assert [e.path for e in ep.iter_episodes(out)] == finished  # the partial one is not read
    with pytest.raises(ep.PartialEpisodeError):
        ep.read_episode(partial[0])
    salvaged = ep.salvage_episode(partial[0])
    assert salvaged is not None and len(ep.read_episode(salvaged, check_frames=True)) >= 5


def test_sigterm_ends_the_episode_cleanly(tmp_path):
    out = tmp_path / "d"
    proc = _start(out, "--episodes", "3", "--episode-s", "30")
    _wait_for(
        lambda: (
            (out / "meta" / "info.json").exists() and _rows(ep.list_partial_episodes(out)) >= 10
        ),
        proc,
    )
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "stopped early" in stdout and "recorded 1 episodes" in stdout
    assert ep.list_partial_episodes(out) == []
    (e,) = ep.iter_episodes(out, check_frames=True)
    assert e.meta["outcome"] == "stopped" and 10 <= len(e) < 600


def test_cli_refuses_a_folder_of_another_kind(tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.txt").write_text("x")
    proc = _start(junk, "--episodes", "1")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "refusing" in stderr and "Traceback" not in stderr
    info = tmp_path / "other" / "meta" / "info.json"
    info.parent.mkdir(parents=True)
    info.write_text(json.dumps({"format": "lerobot"}))
    proc = _start(tmp_path / "other", "--episodes", "1")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "lerobot" in stderr


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

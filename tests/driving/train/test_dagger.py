"""The DAgger loop (driving.train.dagger): record -> append -> retrain, resumable."""

import json

import pytest

import driving.train.dagger as dagger
from driving.data import episodes as ep
from driving.model.checkpoint import BEST_DIR
from driving.rollout.dagger import DaggerError
from driving.rollout.record import RecordConfig, record
from driving.train.dagger import STATE_FILE, DaggerConfig, DaggerLoopError, run_dagger
from sim.spec import CameraSpec
from tests.driving.rollout.test_dagger import curving_checkpoint
from tests.driving.train.tiny import tiny_config

SMALL = {"towns": ("countryside",), "weathers": ("clear_noon",), "progress": False}


def setup(tmp_path, **kw):
    data = tmp_path / "data"
    record(RecordConfig(out=data, episodes=1, episode_s=2.0, **SMALL))
    start = curving_checkpoint(tmp_path / "start")
    train = tiny_config(data, tmp_path / "unused", steps=2, val_every=2, save_every=2)
    base = dict(
        data=data, start=start, out=tmp_path / "dagger", rounds=1, minutes=2.0 / 60,
        episode_s=2.0, beta0=0.0, train=train, **SMALL,
    )  # fmt: skip
    base.update(kw)
    return DaggerConfig(**base)


@pytest.mark.slow
def test_a_round_records_on_policy_retrains_and_a_rerun_skips_it_or_goes_on(tmp_path):
    cfg = setup(tmp_path)
    summary = run_dagger(cfg)
    (r,) = summary.rounds
    assert r["episodes"] == 1 and r["checkpoint"] == str(cfg.out / "round_01" / BEST_DIR)
    episodes = ep.load_episodes(cfg.data)
    assert len(episodes) == 2 and episodes[1].meta["driver"] == "policy"
    assert episodes[1].meta["dagger"]["checkpoint"] == str(cfg.start.resolve())
    state = json.loads((cfg.out / STATE_FILE).read_text())
    assert state["rounds"][0]["recorded"] and state["rounds"][0]["first_episode"] == 1
    assert "round 1: beta 0.000" in summary.format()

    again = run_dagger(cfg)  # a finished round is skipped: nothing recorded, nothing trained
    assert again.rounds[0]["skipped"] and len(ep.list_episodes(cfg.data)) == 2

    more = run_dagger(DaggerConfig(**{**cfg.__dict__, "rounds": 2}))
    assert [r.get("skipped", False) for r in more.rounds] == [True, False]
    last = ep.load_episodes(cfg.data)[-1]
    assert last.meta["dagger"]["checkpoint"] == str((cfg.out / "round_01" / BEST_DIR).resolve())
    assert (cfg.out / "round_02" / BEST_DIR / "config.json").is_file()


@pytest.mark.slow
def test_a_round_killed_in_training_resumes_without_recording_again(tmp_path, monkeypatch):
    cfg = setup(tmp_path)
    real = dagger.train

    def killed(_cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(dagger, "train", killed)
    with pytest.raises(KeyboardInterrupt):
        run_dagger(cfg)
    state = json.loads((cfg.out / STATE_FILE).read_text())
    assert state["rounds"][0]["recorded"] and state["rounds"][0]["checkpoint"] is None
    monkeypatch.setattr(dagger, "train", real)
    summary = run_dagger(cfg)
    assert len(ep.list_episodes(cfg.data)) == 2 and not summary.rounds[0].get("skipped")
    assert summary.rounds[0]["checkpoint"]


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    cfg = setup(tmp_path)
    cfg.out.mkdir()
    other = {**json.loads(json.dumps(cfg.settings())), "beta0": 0.9}
    state = {"format": "liquid-drive-dagger", "version": 1, "settings": other, "rounds": []}
    (cfg.out / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(DaggerLoopError, match="beta0 differ"):
        run_dagger(cfg)
    with pytest.raises(DaggerLoopError, match="beta0 must be in"):
        DaggerConfig(**{**cfg.__dict__, "beta0": 2.0})


def test_a_start_policy_of_another_camera_writes_nothing(tmp_path):
    cfg = setup(tmp_path)
    small = curving_checkpoint(tmp_path / "small", camera=CameraSpec(width_px=100, height_px=40))
    before = len(ep.list_episodes(cfg.data))
    with pytest.raises(DaggerError, match="camera"):
        run_dagger(DaggerConfig(**{**cfg.__dict__, "start": small}))
    assert len(ep.list_episodes(cfg.data)) == before
    assert not list((cfg.data / "episodes").glob("*.partial")) and not cfg.out.exists()

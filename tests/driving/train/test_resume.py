"""Resuming is checked: changed data are refused, a save killed mid-way is recovered."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from driving.data.atomic import parked_copies
from driving.model.checkpoint import (
    BEST_DIR,
    LAST_DIR,
    CheckpointError,
    checkpoint_camera,
    load_policy,
    read_checkpoint_config,
)
from driving.train.data import data_changes
from driving.train.state import DATA_SPLIT_KEY, DataChangedError
from driving.train.trainer import TrainConfigError, train
from liquid_drive.errors import LiquidDriveError
from sim.spec import CameraSpec
from tests.driving.train.tiny import tiny_config, train_killed, write_tiny_dataset

ROOT = Path(__file__).resolve().parents[3]
RUN = dict(steps=8, save_every=4, val_every=4)


def _killed_at_step_4(cfg, monkeypatch):
    """Trains ``cfg`` until a Ctrl-C after the step-4 checkpoint."""
    assert train_killed(cfg, monkeypatch, at_loss_call=6) == 4


def _weights(path):
    return load_policy(path).state_dict()


def _same_weights(a, b):
    a, b = _weights(a), _weights(b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_data_appended_after_the_kill(tiny_data, tmp_path, monkeypatch):
    data = shutil.copytree(tiny_data, tmp_path / "data")
    cfg = tiny_config(data, tmp_path / "run", **RUN)
    _killed_at_step_4(cfg, monkeypatch)
    before = read_checkpoint_config(cfg.out / LAST_DIR)["training"][DATA_SPLIT_KEY]
    assert sum(len(v) for v in before["episodes"].values()) == 3

    write_tiny_dataset(data, episodes=1, seed=9)  # a fourth episode appears
    resume = tiny_config(data, tmp_path / "run", **RUN, resume=True)
    with pytest.raises(DataChangedError, match=r"new .* episodes") as refused:
        train(resume)
    assert "--resume-allow-data-change" in str(refused.value)
    assert read_checkpoint_config(cfg.out / LAST_DIR)["training"]["step"] == 4  # untouched

    train(tiny_config(data, tmp_path / "run", **RUN, resume=True, resume_allow_data_change=True))
    after = read_checkpoint_config(cfg.out / LAST_DIR)["training"]
    assert after["step"] == 8
    assert after[DATA_SPLIT_KEY]["sha256"] != before["sha256"]
    assert sum(len(v) for v in after[DATA_SPLIT_KEY]["episodes"].values()) == 4


def test_data_changes_name_every_kind_of_change():
    def fp(train, val, sha):
        return {"sha256": sha, "episodes": {"train": train, "val": val, "val_town": {}}}

    stored = fp({"e0": "a", "e1": "b"}, {"e2": "c"}, "old")
    assert data_changes(stored, fp({"e0": "a", "e1": "b"}, {"e2": "c"}, "old")) == []
    changes = data_changes(stored, fp({"e0": "A", "e2": "c", "e3": "d"}, {}, "new"))
    assert "episodes whose content changed: e0" in changes
    assert "val episodes now train: e2" in changes
    assert "new train episodes: e3" in changes
    assert "episodes no longer found: e1" in changes


_KILL_BETWEEN_RENAMES = """
import os, signal, sys
from driving.model import checkpoint as ck
last = sys.argv[1]
policy, training = ck.load_policy(last), ck.read_checkpoint_config(last)
state, metrics = ck.load_train_state(last), ck.read_metrics(last)
real_rename = os.rename
def rename(src, dst):
    real_rename(src, dst)
    if ".old-" in str(dst):  # last/ was just parked: die before the new one moves in
        os.kill(os.getpid(), signal.SIGKILL)
os.rename = rename
ck.save_checkpoint(last, policy, training=training["training"], camera=training["camera"],
                   train_state=state, metrics=metrics)
"""


def test_a_save_killed_between_its_two_renames_is_recovered(tiny_data, tmp_path, monkeypatch):
    full = tiny_config(tiny_data, tmp_path / "full", **RUN)
    train(full)
    cfg = tiny_config(tiny_data, tmp_path / "run", **RUN)
    _killed_at_step_4(cfg, monkeypatch)
    last = cfg.out / LAST_DIR
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _KILL_BETWEEN_RENAMES, str(last)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == -9, done.stderr[-2000:]
    assert not last.exists() and len(parked_copies(last)) == 1  # the kill window

    # A reader says where the parked copy is and what to do; it moves nothing itself.
    with pytest.raises(CheckpointError, match=r"mv .*\.last\.old-.*/last") as told:
        load_policy(last)
    assert str(last) in str(told.value) and not last.exists()

    train(tiny_config(tiny_data, tmp_path / "run", **RUN, resume=True))  # recovers, resumes
    assert [p.name for p in cfg.out.iterdir() if p.name.startswith(".")] == []  # no leftovers
    assert _same_weights(full.out / LAST_DIR, last)
    assert _same_weights(full.out / BEST_DIR, cfg.out / BEST_DIR)


def test_a_fresh_run_into_a_killed_save_recovers_then_asks_for_resume(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "run", steps=2, save_every=2, val_every=2)
    train(cfg)
    last = cfg.out / LAST_DIR
    parking = tmp_path / "run" / ".last.old-killed"
    parking.mkdir()
    os.rename(last, parking / LAST_DIR)
    with pytest.raises(TrainConfigError, match="already holds a run: pass --resume"):
        train(cfg)
    assert (last / "train_state.pt").is_file() and not parking.exists()


def test_best_without_last_says_what_to_do(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "run", steps=2, save_every=2, val_every=2)
    train(cfg)
    shutil.rmtree(cfg.out / LAST_DIR)  # as if killed before the first save of last/
    for resume in (False, True):
        with pytest.raises(TrainConfigError, match=r"no last/ to resume from.*another --out"):
            train(tiny_config(tiny_data, tmp_path / "run", steps=2, resume=resume))


def test_checkpoints_record_the_camera_of_their_data(tiny_data, tmp_path):
    train(tiny_config(tiny_data, tmp_path / "run", steps=2, save_every=2, val_every=2))
    for folder in (LAST_DIR, BEST_DIR):
        config = read_checkpoint_config(tmp_path / "run" / folder)
        assert config["camera"] == {"width_px": 200, "height_px": 78}  # as meta/info.json says
    assert checkpoint_camera(tmp_path / "run") == CameraSpec(width_px=200, height_px=78)


def test_bad_data_write_nothing(tmp_path):
    with pytest.raises(LiquidDriveError) as refused:
        train(tiny_config(tmp_path / "nowhere", tmp_path / "run"))
    assert "nowhere" in str(refused.value)
    assert not (tmp_path / "run").exists()

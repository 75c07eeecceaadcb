"""A tiny training task shared by the training and checkpoint tests: data, settings, a run."""

import math

import cv2
import numpy as np
import pytest

import driving.train.trainer as trainer
from driving.data.episodes import (
    BASE_COLUMN_NAMES,
    COMMAND,
    CURVATURE_APPLIED,
    CURVATURE_EXPERT,
    FRAME_INDEX,
    JUNCTION,
    ROAD_CURVATURE,
    SPEED_MPS,
    T_S,
    DatasetInfo,
    EpisodeWriter,
    create_or_open_dataset,
)
from driving.model.checkpoint import LAST_DIR, read_checkpoint_config
from driving.train.config import TrainConfig
from perception.augment import AugmentConfig


def write_tiny_dataset(root, episodes=3, steps=24, seed=0, command=None):
    """Episodes whose label is readable from the frame: a bright bar at x ~ curvature.

    Appends to ``root`` when it already holds a dataset of the same camera. ``command(e, i)``
    gives step i of episode e its route command (default: follow-lane, junction -1).
    """
    info = DatasetInfo(
        sim="builtin", camera={"width_px": 200, "height_px": 78}, control_rate_hz=20.0
    )
    create_or_open_dataset(root, info)
    rng = np.random.default_rng(seed)
    for e in range(episodes):
        phase, town = rng.uniform(0, 2 * np.pi), ("a", "b", "c")[e % 3]
        with EpisodeWriter(root, {"town": town, "weather": "w", "seed": e}, fsync=False) as w:
            t = 0.0
            for i in range(steps):
                kappa = 0.015 * math.sin(phase + 0.3 * i)
                img = np.full((78, 200, 3), 90, np.uint8)
                x = int(100 + 5000 * kappa)
                cv2.rectangle(img, (x - 6, 20), (x + 6, 77), (250, 240, 200), -1)
                row = dict.fromkeys(set(BASE_COLUMN_NAMES) - {FRAME_INDEX}, 0.0)
                row |= {T_S: t, SPEED_MPS: 8.0, CURVATURE_EXPERT: kappa,
                        CURVATURE_APPLIED: kappa, ROAD_CURVATURE: kappa}  # fmt: skip
                row |= {"noise_active": False, "intervention": False, "collision": False}
                c = 0 if command is None else command(e, i)
                row |= {COMMAND: c, JUNCTION: -1 if c == 0 else 0}
                w.write_step(img, row)
                t += 0.05 if e != 1 else 0.04 + 0.02 * (i % 2)  # one episode with jitter
            w.finish({"outcome": "max_steps"})
    return root


def tiny_config(data, out, **kw):
    """Settings that train the tiny task in about a second."""
    base = dict(
        data=(data,), out=out, steps=12, batch_size=4, window_steps=8, stride_steps=4,
        lr=3e-3, warmup_steps=2, val_fraction=0.34, val_every=6, save_every=6, log_every=2,
        val_max_windows=8, augment=AugmentConfig(enabled=False), tensorboard=False, threads=1,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def train_killed(cfg, monkeypatch, at_loss_call):
    """Trains ``cfg`` until a Ctrl-C in loss call ``at_loss_call``; returns last/'s step."""
    real_loss, calls = trainer.window_loss, {"n": 0}

    def dying_loss(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at_loss_call:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(trainer, "window_loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg)
    monkeypatch.setattr(trainer, "window_loss", real_loss)
    return read_checkpoint_config(cfg.out / LAST_DIR)["training"]["step"]

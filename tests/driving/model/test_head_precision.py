"""A bf16 conv head (``--runtime torch-bf16``) drives like the float32 policy."""

from pathlib import Path

import numpy as np
import pytest
import torch

import sim
from driving.data.episodes import CURVATURE_EXPERT, CURVATURE_PRED
from driving.model.checkpoint import CheckpointError, load_policy, save_checkpoint
from driving.rollout.episode import run_episode

REFERENCE = Path(__file__).resolve().parents[3] / "checkpoints" / "cfc-ncp"
BF16_TOLERANCE = 5e-4
"""Largest per-step curvature gap allowed between the bf16 and the float32 head, 1/m: a
quarter of the int8 export's tolerance (measured on these 100 steps: 4e-5 in ``snow``, 7e-5
in ``countryside``; a typical bend is 0.01-0.03 1/m)."""


@pytest.mark.parametrize("town", ["snow", "countryside"])
def test_bf16_head_drives_100_steps_like_the_float32_policy(town):
    """The bf16 policy steers; the float32 policy sees the same frames as the label."""
    fp32 = load_policy(REFERENCE).eval()
    bf16 = load_policy(REFERENCE).eval()
    bf16.head.set_precision("bf16")
    env = sim.make_env("builtin", town=town, weather="clear_noon", route_length_m=500.0)
    try:
        with torch.inference_mode():
            log = run_episode(env, bf16, seed=7001, max_steps=100, label_driver=fp32)
    finally:
        env.close()
    gap = np.abs(log.columns[CURVATURE_PRED] - log.columns[CURVATURE_EXPERT])  # (100,) 1/m
    assert log.num_steps == 100 and log.interventions == 0
    assert 0 < gap.max() <= BF16_TOLERANCE, gap.max()  # rounded (not the fp32 path), and close
    assert np.abs(log.columns[CURVATURE_EXPERT]).max() > 10 * gap.max()  # it is steering


def test_a_policy_with_a_bf16_head_is_not_saved(tmp_path):
    policy = load_policy(REFERENCE).eval()
    policy.head.set_precision("bf16")
    with pytest.raises(CheckpointError, match=r"conv head runs in bf16 \(for driving only\)"):
        save_checkpoint(tmp_path / "ck", policy)
    assert not (tmp_path / "ck").exists()

"""driving/model/quantize.py: an int8 conv head drives like the float32 policy."""

from pathlib import Path

import numpy as np
import pytest

import sim
from driving.data.episodes import CURVATURE_EXPERT, CURVATURE_PRED
from driving.model.checkpoint import load_policy
from driving.model.export import INT8_TOLERANCE, ExportConfig, OnnxPolicy, export
from driving.model.quantize import calibration_frames
from driving.rollout.episode import run_episode
from sim.spec import CameraSpec

REFERENCE = Path(__file__).resolve().parents[3] / "checkpoints" / "cfc-ncp"


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "policy-int8.onnx"
    result = export(
        ExportConfig(checkpoint=REFERENCE, out=out, precision="int8", calibration_frames=64)
    )
    assert result["precision"] == "int8"
    assert result["max_abs_curvature_diff"] <= INT8_TOLERANCE
    return out


def test_calibration_frames_come_from_training_towns_with_the_given_camera():
    frames = calibration_frames(CameraSpec(width_px=64, height_px=32), frames=10, every=3)
    assert frames.shape == (10, 32, 64, 3) and frames.dtype == np.uint8
    assert len({f.tobytes() for f in frames}) == 10  # distinct views, not one frame repeated


def test_int8_policy_drives_100_steps_of_an_unseen_town_like_the_float32_policy(int8_model):
    """The int8 graph steers; the float32 torch policy sees the same frames as the label."""
    driver = OnnxPolicy(int8_model)
    assert driver.metadata["precision"] == "int8"
    torch_policy = load_policy(REFERENCE).eval()
    env = sim.make_env("builtin", town="snow", weather="clear_noon", route_length_m=500.0)
    try:
        # road seed 7002: its first 100 steps hold a 100 m bend, so the policy has to steer
        log = run_episode(env, driver, seed=7002, max_steps=100, label_driver=torch_policy)
    finally:
        env.close()
    gap = np.abs(log.columns[CURVATURE_PRED] - log.columns[CURVATURE_EXPERT])  # (100,) 1/m
    assert log.num_steps == 100 and log.interventions == 0
    assert gap.max() <= INT8_TOLERANCE, gap.max()
    assert np.abs(log.columns[CURVATURE_EXPERT]).max() > 10 * gap.max()  # it is steering

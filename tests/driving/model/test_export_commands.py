"""ONNX export of command-aware policies: an int64 command input per step, parity with torch."""

import numpy as np
import onnx
import pytest
import torch

from driving.model.command import CommandInputError
from driving.model.export import (
    COMMAND_INPUT_NAME,
    INPUT_NAMES,
    OnnxPolicy,
    closed_loop_difference,
    export_policy,
)
from driving.model.policy import PolicyConfig, SteeringPolicy

BRANCH_NCP = {"inter_neurons": 10, "command_neurons": 5, "motor_fanin": 5}


def _trained_like(**config):
    torch.manual_seed(1)
    policy = SteeringPolicy(PolicyConfig(**config))
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return policy.eval()


@pytest.mark.parametrize(
    "config",
    [{"command_input": "embed"}, {"command_input": "branch", **BRANCH_NCP},
     {"core": "gru", "command_input": "branch"}],
    ids=["embed cfc-ncp", "branch cfc-ncp", "branch gru"],
)  # fmt: skip
def test_a_command_policy_exports_with_a_command_input_and_drives_like_torch(tmp_path, config):
    policy = _trained_like(**config)
    path = export_policy(policy, tmp_path / "p.onnx")
    model = onnx.load(str(path))
    inputs = {i.name: i for i in model.graph.input}
    assert list(inputs) == [*INPUT_NAMES, COMMAND_INPUT_NAME]
    assert inputs[COMMAND_INPUT_NAME].type.tensor_type.elem_type == onnx.TensorProto.INT64
    driver = OnnxPolicy(path)
    assert driver.command_input == config["command_input"]
    diff = closed_loop_difference(policy, driver, steps=24)  # every command for 5+ steps
    assert diff["max_abs_curvature_diff"] <= 1e-5 and diff["max_abs_state_diff"] <= 1e-4
    # The graph really uses the command: one frame and state, four commands, four outputs.
    image = np.random.default_rng(0).integers(0, 256, (1, 78, 200, 3), dtype=np.uint8)
    dt = np.array([0.05], np.float32)
    outs = [float(driver.step_frames(image, dt, None, np.array([c]))[0][0]) for c in range(4)]
    assert len(set(outs)) == 4
    with pytest.raises(CommandInputError, match="takes the route command"):
        driver.step_frames(image, dt)
    obs = {"image": image[0], "t_s": np.array([0.0])}
    with pytest.raises(CommandInputError, match="no 'command'"):
        driver.act(obs, driver.reset())


def test_a_none_policy_exports_the_graph_it_always_had(tmp_path):
    path = export_policy(_trained_like(), tmp_path / "p.onnx")
    assert [i.name for i in onnx.load(str(path)).graph.input] == list(INPUT_NAMES)
    assert OnnxPolicy(path).command_input == "none"


def test_the_int8_graph_takes_the_command_too(tmp_path):
    from driving.model.quantize import quantize_int8

    policy = _trained_like(command_input="embed")
    fp32 = export_policy(policy, tmp_path / "fp32.onnx")
    frames = np.random.default_rng(0).integers(0, 256, (4, 78, 200, 3), dtype=np.uint8)
    int8 = OnnxPolicy(quantize_int8(fp32, tmp_path / "int8.onnx", frames))
    assert int8.command_input == "embed"
    diff = closed_loop_difference(policy, int8, steps=8, frames=frames)
    assert np.isfinite(diff["max_abs_curvature_diff"])
    assert diff["max_abs_curvature_diff"] <= 2e-3

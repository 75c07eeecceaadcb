"""driving/model/export.py: the ONNX step graph drives exactly like the torch policy, every core.

One export per core (about 3-8 s each on 2 busy cores), shared by the tests of this module.
"""

import copy
import json
import math

import numpy as np
import onnx
import pytest
import torch

import sim
from driving.model.checkpoint import CheckpointError, save_checkpoint
from driving.model.export import (
    FORMAT_NAME,
    INPUT_NAMES,
    METADATA_KEYS,
    OUTPUT_NAMES,
    ExportConfig,
    OnnxModelError,
    OnnxPolicy,
    closed_loop_difference,
    export,
    export_policy,
)
from driving.model.policy import CORE_NAMES, PolicyConfig, PolicyError, SteeringPolicy
from driving.rollout.episode import Driver
from perception.preprocess import PreprocessSpec
from sim.builtin.towns import TRAIN_TOWNS

STEPS = 100
TOLERANCE = 1e-5  # 1/m, the bound on the curvature difference

# Besides the core, each export varies one more thing, so that every path is covered once:
# cfc-dense for any batch size; lstm crops and resizes (68x192 -> 78x200, antialiased
# bilinear inside the graph); gru normalises with fixed mean/std instead of per image.
VARIANTS = {
    "cfc-ncp": ({}, {}),
    "cfc-dense": ({}, {"dynamic_batch": True}),
    "ltc-ncp": ({}, {}),
    "lstm": ({"preprocess": PreprocessSpec(crop_top_px=10, crop_left_px=4, crop_right_px=4)}, {}),
    "gru": ({"preprocess": PreprocessSpec(normalization="fixed", mean=(0.4, 0.5, 0.6))}, {}),
    "cnn": ({}, {}),
    "cfc-ncp-random": ({}, {}),
    "cfc-ncp-full": ({}, {}),
    "lstm-19": ({}, {}),
    "gru-19": ({}, {}),
}


def _trained_like(core, seed=1, **config):
    """A policy moved away from its initialisation (a fresh init has special values: the
    cfc-ncp readout starts as the identity), its readout scaled up so that the commands reach
    a trained policy's range (up to a few hundredths of 1/m) instead of an untrained one's."""
    torch.manual_seed(seed)
    policy = SteeringPolicy(PolicyConfig(core=core, **config))
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
        policy.readout.weight.mul_(20.0)
    return policy.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """core -> (torch policy, path of its exported graph); each exported once, on demand."""
    cache = {}

    def get(core):
        if core not in cache:
            config, options = VARIANTS[core]
            policy = _trained_like(core, **config)
            path = tmp_path_factory.mktemp(core) / f"{core}.onnx"
            export_policy(policy, path, source=f"test {core}", **options)
            cache[core] = policy, path
        return cache[core]

    return get


@pytest.mark.parametrize("core", CORE_NAMES)
def test_closed_loop_matches_torch_at_every_step(exported, core):
    """The ONNX driver steers the builtin car for 100 steps on its own state; the torch policy
    sees the same frames and times (20 Hz with 20 % jitter) and carries its own state."""
    policy, path = exported(core)
    driver = OnnxPolicy(path)
    assert isinstance(driver, Driver)
    env = sim.make_env(
        "builtin",
        town=TRAIN_TOWNS[0],
        intervention_mode=True,  # a random-ish policy departs; keep driving from the centre
        frame_time_jitter=0.2,
        route_length_m=300.0,
    )
    obs, _ = env.reset(seed=4)
    s_onnx, s_torch = driver.reset(), policy.reset()
    commands, gaps, state_gaps, dts = [], [], [], []
    for _ in range(STEPS):
        a_onnx, s_onnx = driver.act(obs, s_onnx)
        a_torch, s_torch = policy.act(obs, s_torch)
        assert a_onnx.dtype == np.float32 and a_onnx.shape == (1,)
        commands.append(float(a_onnx[0]))
        gaps.append(abs(float(a_onnx[0]) - float(a_torch[0])))
        diff = driver.neuron_states(s_onnx) - policy.neuron_states(s_torch)
        state_gaps.append(float(np.abs(diff).max(initial=0.0)))
        t_before = float(obs["t_s"][0])
        obs, _, terminated, truncated, _ = env.step(a_onnx)
        dts.append(float(obs["t_s"][0]) - t_before)
        assert not (terminated or truncated)
    env.close()
    assert max(gaps) <= TOLERANCE, f"step {int(np.argmax(gaps))}: {max(gaps):.3g} 1/m"
    assert max(state_gaps) <= 1e-4
    assert np.std(commands) > 1e-3  # the commands respond to the frames and the state
    assert np.abs(commands).max() > 0.005  # in a trained policy's range, 1/m
    assert np.ptp(dts) > 0.005  # the elapsed time really varied from step to step
    assert driver.neuron_states(s_onnx).shape == (policy.state_size,)


def test_the_file_is_one_self_describing_model(exported):
    policy, path = exported("cfc-ncp")
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no .data sidecar
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert set(METADATA_KEYS) <= set(meta) and meta["format"] == FORMAT_NAME
    assert [i.name for i in model.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)
    image = model.graph.input[0].type.tensor_type
    assert image.elem_type == onnx.TensorProto.UINT8  # the raw camera frame goes in
    assert [d.dim_value for d in image.shape.dim] == [1, 78, 200, 3]
    driver = OnnxPolicy(path)
    assert driver.policy_config() == policy.config
    assert driver.neuron_names == policy.neuron_names == tuple(json.loads(meta["neuron_names"]))
    assert driver.neuron_groups[-1] == "motor" and driver.state_size == 19
    assert meta["source"] == "test cfc-ncp" and meta["batch_size"] == "1"


def test_dynamic_batch_runs_several_cars_at_once(exported):
    policy, path = exported("cfc-dense")
    driver = OnnxPolicy(path)
    assert driver.metadata["batch_size"] == "dynamic"
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 78, 200, 3), dtype=np.uint8)
    dt_s = np.array([0.05, 0.02, 0.1], np.float32)
    h = rng.normal(size=(3, policy.state_size)).astype(np.float32)
    curvature, h_out = driver.step_frames(frames, dt_s, h)
    with torch.no_grad():
        c_t, h_t = policy.step_frames(
            torch.from_numpy(frames), torch.from_numpy(dt_s), torch.from_numpy(h)
        )
    assert curvature.shape == (3,) and h_out.shape == (3, policy.state_size)
    np.testing.assert_allclose(curvature, c_t.numpy(), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(h_out, h_t.numpy(), rtol=0, atol=1e-5)
    one, _ = driver.step_frames(frames[1:2], dt_s[1:2], h[1:2])  # batch 1 on the same graph
    np.testing.assert_allclose(one, curvature[1:2], rtol=0, atol=1e-6)


def test_closed_loop_difference_reports_the_gap(exported):
    policy, path = exported("cfc-ncp")
    diff = closed_loop_difference(policy, OnnxPolicy(path), steps=5)
    assert 0 <= diff["max_abs_curvature_diff"] <= TOLERANCE
    assert 0 <= diff["max_abs_state_diff"] <= 1e-4
    other = _trained_like("cfc-ncp", seed=2)  # other weights: the check must see it
    assert closed_loop_difference(other, OnnxPolicy(path), steps=5)["max_abs_curvature_diff"] > 1e-4


def test_a_nan_is_never_within_the_tolerance(exported, tmp_path):
    policy, path = exported("cfc-ncp")
    broken = copy.deepcopy(policy)
    with torch.no_grad():
        broken.readout.weight.fill_(math.nan)  # NaN commands; max(0, NaN) used to read 0
    diff = closed_loop_difference(broken, OnnxPolicy(path), steps=3)
    assert math.isnan(diff["max_abs_curvature_diff"])
    # export() loads a checkpoint, which refuses NaN weights before anything is exported.
    ckpt = tmp_path / "ck"
    save_checkpoint(ckpt, broken)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor 'readout\.weight'"):
        export(ExportConfig(checkpoint=ckpt, out=tmp_path / "p.onnx"))
    assert not (tmp_path / "p.onnx").exists()


def test_driver_refuses_bad_observations_like_the_torch_policy(exported):
    _, path = exported("cfc-ncp")
    driver = OnnxPolicy(path)
    frame = np.zeros((78, 200, 3), np.uint8)
    state = driver.reset()
    with pytest.raises(PolicyError, match="uint8"):
        driver.act({"image": frame.astype(np.float32), "t_s": np.array([0.0])}, state)
    with pytest.raises(PolicyError, match=r"\(78, 200, 3\)"):
        driver.act({"image": np.zeros((66, 200, 3), np.uint8), "t_s": np.array([0.0])}, state)
    _, state = driver.act({"image": frame, "t_s": np.array([1.0])}, state)
    with pytest.raises(PolicyError, match="t_s must increase"):
        driver.act({"image": frame, "t_s": np.array([1.0])}, state)
    with pytest.raises(PolicyError, match="batch 1"):
        driver.step_frames(np.zeros((2, 78, 200, 3), np.uint8), np.full(2, 0.05))


def test_driver_refuses_files_that_are_not_exported_policies(tmp_path):
    with pytest.raises(OnnxModelError, match="not found"):
        OnnxPolicy(tmp_path / "missing.onnx")
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    with pytest.raises(OnnxModelError, match=r"garbage\.onnx"):
        OnnxPolicy(tmp_path / "garbage.onnx")
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "other.onnx"))
    with pytest.raises(OnnxModelError, match=rf"other\.onnx: not a {FORMAT_NAME} model"):
        OnnxPolicy(tmp_path / "other.onnx")

import numpy as np
import pytest
import torch

from driving.model.policy import (
    CORE_NAMES,
    PolicyConfig,
    PolicyConfigError,
    PolicyError,
    PolicyState,
    SteeringPolicy,
)
from driving.rollout.episode import Driver


def _policy(core: str, seed: int = 0) -> SteeringPolicy:
    torch.manual_seed(seed)
    return SteeringPolicy(PolicyConfig(core=core)).eval()


def _frames(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 78, 200, 3), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("core", CORE_NAMES)
def test_unrolling_step_equals_forward(core):
    policy = _policy(core)
    frames = _frames(2, 4)
    dt = torch.tensor([[0.05, 0.05, 0.1, 0.04], [0.05, 0.07, 0.05, 0.05]])
    with torch.no_grad():
        curv, states = policy(frames, dt)
        h, steps, hs = None, [], []
        for t in range(4):
            c, h = policy.step_frames(frames[:, t], dt[:, t], h)
            steps.append(c)
            hs.append(h)
    assert curv.shape == (2, 4) and states.shape == (2, 4, policy.state_size)
    # Same operations; the conv head on 8 frames vs 2 frames may round differently in oneDNN.
    torch.testing.assert_close(torch.stack(steps, 1), curv, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.stack(hs, 1), states, rtol=1e-5, atol=1e-6)


def test_parameter_counts_per_part():
    for core in CORE_NAMES:
        counts = _policy(core).parameter_counts()
        assert counts["conv_head"] == 79_420
        assert counts["total"] == counts["conv_head"] + counts["core"] + counts["readout"]
    ncp = _policy("cfc-ncp").parameter_counts()
    assert ncp["readout"] == 2  # a linear map of the single motor neuron
    assert ncp["core_connected"] < ncp["core"]
    # The wiring controls: the random one has exactly the NCP's connected parameters, the
    # full one more, all on the same (masked) weight tensors.
    rand = _policy("cfc-ncp-random").parameter_counts()
    full = _policy("cfc-ncp-full").parameter_counts()
    assert rand == ncp
    assert full["core"] == ncp["core"] and full["core_connected"] > ncp["core_connected"]
    ltc = _policy("ltc-ncp").parameter_counts()
    assert ltc["core_connected"] == 4 * 252 + 3 * 19 + 2 * 32 + 2  # sigma mu w erev per synapse


def test_default_label_scale_lets_the_single_motor_neuron_command_tight_bends():
    # A CfC state is a gated mix of two tanh heads, so the motor neuron stays within (-1, 1)
    # even for absurd inputs; the command's reach is then |readout gain| / label_scale.
    policy = _policy("cfc-ncp")
    x = 1e3 * torch.randn(4, 50, policy.core.input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y, _ = policy.core(x, torch.ones(4, 50), None)
    assert y.shape[-1] == 1 and y.abs().max() < 1.0
    reach_per_m = policy.readout.weight.abs().item() / policy.config.label_scale
    assert reach_per_m >= 0.05  # a 20 m bend at the start of training (100 gave 0.01)


def test_neuron_names_and_groups():
    ncp = _policy("cfc-ncp")
    assert ncp.state_size == 19 and len(ncp.neuron_names) == 19
    assert [ncp.neuron_groups.count(g) for g in ("inter", "command", "motor")] == [12, 6, 1]
    assert ncp.neuron_groups[-1] == "motor"
    lstm = _policy("lstm")
    assert lstm.state_size == 128 and set(lstm.neuron_groups) == {"hidden"}
    assert lstm.neuron_names[64] == "c0"
    assert _policy("cnn").state_size == 0
    # lstm-19 / gru-19: as many units as the NCP's neurons, read out like the 64-unit ones.
    lstm19, gru19 = _policy("lstm-19"), _policy("gru-19")
    assert lstm19.state_size == 38 and lstm19.neuron_names[19] == "c0"
    assert lstm19.core.cell.hidden_size == gru19.core.cell.hidden_size == 19
    assert lstm19.readout.in_features == gru19.readout.in_features == 19
    wider = PolicyConfig(core="gru-19", inter_neurons=20)  # follows the NCP's neuron count
    assert SteeringPolicy(wider).state_size == 27
    rand = _policy("cfc-ncp-random")
    assert rand.neuron_names == ncp.neuron_names and rand.neuron_groups == ncp.neuron_groups
    mask = "core.layers.0.ff_mask"  # the core runs the random wiring, not the NCP
    assert not torch.equal(rand.state_dict()[mask], ncp.state_dict()[mask])
    assert _policy("cfc-ncp-full").state_dict()[mask][:, :32].all()  # (12, 32 inputs + 12)
    assert _policy("cfc-dense").state_size == 19


def test_continuous_cores_use_elapsed_time_discrete_ones_do_not():
    frames = _frames(1, 3)
    with torch.no_grad():
        for core, uses_time in (("cfc-ncp", True), ("ltc-ncp", True), ("gru", False)):
            policy = _policy(core)
            a, _ = policy(frames, torch.full((1, 3), 0.05))
            b, _ = policy(frames, torch.full((1, 3), 0.2))
            assert (not torch.equal(a, b)) == uses_time, core


def _obs(image, t_s):
    return {
        "image": image,
        "speed_mps": np.array([8.0], np.float32),
        "t_s": np.array([t_s], np.float64),
    }


def test_driver_protocol_uses_timestamp_differences():
    policy = _policy("cfc-ncp")
    assert isinstance(policy, Driver)
    frames = _frames(1, 3)
    times = [3.0, 3.05, 3.15]
    state = policy.reset()
    assert isinstance(state, PolicyState) and state.h is None
    actions = []
    for k, t_s in enumerate(times):
        action, state = policy.act(_obs(frames[0, k].numpy(), t_s), state)
        assert action.dtype == np.float32 and action.shape == (1,)
        actions.append(float(action[0]))
    assert state.t_s == 3.15
    assert policy.neuron_states(state).shape == (19,)
    dt = torch.tensor([[policy.config.first_step_dt_s, 0.05, 0.1]])
    with torch.no_grad():
        curv, states = policy(frames, dt)
    np.testing.assert_allclose(actions, curv[0].numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(policy.neuron_states(state), states[0, -1].numpy(), atol=1e-6)


def test_closed_loop_errors_are_clear():
    policy = _policy("gru")
    image = _frames(1, 1)[0, 0].numpy()
    state = policy.act(_obs(image, 1.0), policy.reset())[1]
    with pytest.raises(PolicyError, match="t_s must increase"):
        policy.act(_obs(image, 1.0), state)
    with pytest.raises(PolicyError, match="uint8"):
        policy.act(_obs(image.astype(np.float32), 2.0), state)
    with pytest.raises(ValueError, match="66x200"):
        policy.act(_obs(np.zeros((66, 200, 3), np.uint8), 2.0), state)


def test_training_augmentation_is_applied_only_when_passed():
    from perception.augment import Augmenter

    policy = _policy("cnn")
    frames = _frames(2, 2)
    dt = torch.full((2, 2), 0.05)
    with torch.no_grad():
        plain, _ = policy(frames, dt)
        torch.manual_seed(0)
        aug, _ = policy(frames, dt, augment=Augmenter().train())
        off, _ = policy(frames, dt, augment=Augmenter().eval())
    assert not torch.equal(plain, aug)
    assert torch.equal(plain, off)


def test_config_round_trip_and_validation():
    cfg = PolicyConfig(core="lstm", rnn_units=8, wiring_seed=3)
    assert PolicyConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(PolicyConfigError, match="core must be one of"):
        PolicyConfig(core="transformer")
    with pytest.raises(PolicyConfigError, match="unknown"):
        PolicyConfig.from_dict({**cfg.to_dict(), "extra": 1})
    from perception.preprocess import PreprocessSpec

    with pytest.raises(PolicyConfigError, match="conv head takes 78x200"):
        PolicyConfig(preprocess=PreprocessSpec(output_height_px=66))
    with pytest.raises(PolicyConfigError, match="label_scale"):
        PolicyConfig(label_scale=0.0)


def test_chunked_features_equal_a_single_pass():
    from driving.model.policy import CHUNK_FRAMES

    policy = _policy("cnn")
    frames = _frames(CHUNK_FRAMES // 8 + 3, 8)  # more windows than one chunk holds
    with torch.no_grad():
        chunked = policy.encode(frames)
        whole = policy.head(policy.preprocess(frames.flatten(0, 1))).view(*frames.shape[:2], -1)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("core", CORE_NAMES)
def test_forward_and_closed_loop_step_are_the_two_stages_exactly(core):
    """The pipeline is written once: every path is ``decode(encode(...))``, bit for bit."""
    policy = _policy(core)
    frames = _frames(2, 4)
    dt = torch.tensor([[0.05, 0.05, 0.1, 0.04], [0.05, 0.07, 0.05, 0.05]])
    h0 = torch.rand(2, policy.state_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = policy.encode(frames)  # (B, T, F)
        curv, states = policy.decode(features, dt, h0)
        c_forward, s_forward = policy(frames, dt, h0)
        assert torch.equal(c_forward, curv) and torch.equal(s_forward, states)
        # The core unrolled one step at a time on the same features equals the window; the
        # readout of M > 1 outputs on 8 rows vs 2 may round differently in BLAS.
        h = h0
        for t in range(4):
            c, h = policy.decode(features[:, t], dt[:, t], h)
            assert torch.equal(h, states[:, t])
            if policy.core.output_size == 1:
                assert torch.equal(c, curv[:, t])
            torch.testing.assert_close(c, curv[:, t], rtol=1e-6, atol=1e-8)
        # Frames through the head in the same batch: the closed loop equals windows of one.
        h_window = h_step = None
        state = policy.reset()
        for t, t_s in enumerate([2.0, 2.05, 2.15, 2.19]):
            c_window, s = policy(frames[:1, t : t + 1], dt[:1, t : t + 1], h_window)
            h_window = s[:, -1]
            c_step, h_step = policy.step_frames(frames[:1, t], dt[:1, t], h_step)
            if t == 0:  # the closed loop's first frame uses first_step_dt_s (0.05 s here)
                assert np.float32(policy.config.first_step_dt_s) == dt[0, 0].numpy()
            action, state = policy.act(_obs(frames[0, t].numpy(), t_s), state)
            assert torch.equal(c_step, c_window[:, 0]) and torch.equal(h_step, h_window)
            assert action[0] == c_step.float().numpy()[0]
            assert np.array_equal(policy.neuron_states(state), h_step[0].double().numpy())

"""driving.model.cfc (+ cells): step == forward exactly, faithful masks, inert masked weights."""

import numpy as np
import pytest
import torch

from driving.model.cells import CfCCell, GatedHeads
from driving.model.cfc import CfC, WiredCfC
from driving.model.cores import CoreError
from driving.model.wiring import AutoNCP, default_steering_wiring

B, T, S = 3, 6, 32


def _data(batch=B, steps=T, features=S, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, features, generator=gen)
    elapsed = torch.rand(batch, steps, generator=gen) * 1.5 + 0.05
    h0 = torch.randn(batch, 19, generator=gen) * 0.3
    return x, elapsed, h0


def _models():
    torch.manual_seed(0)
    out = []
    for mode in ("default", "no_gate", "pure"):
        out.append(WiredCfC(S, default_steering_wiring(), mode=mode))
        out.append(WiredCfC(S, default_steering_wiring(), mode=mode, ncps_compatible=True))
        out.append(CfC(S, 19, mode=mode, backbone_units=16))
    out.append(CfC(S, 19, backbone_layers=0))
    out.append(CfC(S, 19, backbone_layers=2, backbone_units=8, backbone_activation="relu"))
    return out


@pytest.mark.parametrize("model", _models(), ids=lambda m: f"{type(m).__name__}")
def test_unrolled_step_equals_forward_exactly(model):
    x, elapsed, h0 = _data()
    y_seq, states = model(x, elapsed, h0)  # autograd on: the training path
    assert y_seq.shape == (B, T, model.output_size) and states.shape == (B, T, model.state_size)
    h = h0
    with torch.no_grad():  # the closed-loop path
        for t in range(T):
            y, h = model.step(x[:, t], elapsed[:, t], h)
            assert torch.equal(h, states[:, t]) and torch.equal(y, y_seq[:, t])
    # (B, T, 1) elapsed and (B, 1) per-step elapsed are the same thing
    with torch.no_grad():
        assert torch.equal(model(x, elapsed.unsqueeze(-1), h0)[1], states)
        assert torch.equal(model.step(x[:, 0], elapsed[:, :1], h0)[1], states[:, 0])


def test_dense_fast_path_equals_the_readable_cell():
    torch.manual_seed(1)
    for mode in ("default", "no_gate", "pure"):
        model = CfC(S, 19, mode=mode, backbone_units=16, backbone_layers=2)
        x, elapsed, h0 = _data()
        with torch.no_grad():
            _, states = model(x, elapsed, h0)
            h = h0
            for t in range(T):
                h = model.cell(x[:, t], h, elapsed[:, t])
                assert torch.equal(h, states[:, t])


def test_faithful_masks_are_exactly_the_wiring_plus_self():
    w = default_steering_wiring()
    model = WiredCfC(S, w)
    adj, sens = np.abs(w.state_adjacency), np.abs(w.state_sensory_adjacency)
    inter, command, motor = (w.groups[k] for k in ("inter", "command", "motor"))
    expect = [
        np.concatenate([sens[:, inter], np.eye(12)]),
        np.concatenate(
            [
                adj[inter.start : inter.stop, command.start : command.stop],
                np.maximum(
                    adj[command.start : command.stop, command.start : command.stop], np.eye(6)
                ),
            ]
        ),
        np.concatenate([adj[command.start : command.stop, motor.start :], np.eye(1)]),
    ]
    for layer, mask in zip(model.layers, expect, strict=True):
        np.testing.assert_array_equal(layer.ff_mask.numpy(), mask.T)
        np.testing.assert_array_equal(layer.time_mask.numpy(), mask.T)  # all four heads
    self_loops = int(np.trace(adj != 0))
    connections = sum(int(layer.ff_mask.sum()) for layer in model.layers)
    assert connections == w.total_synapse_count + w.units - self_loops
    # masks are buffers: saved with the model, never trained
    names = {n for n, _ in model.named_parameters()}
    assert not any("mask" in n for n in names)
    assert "layers.0.ff_mask" in model.state_dict() and "layers.2.time_mask" in model.state_dict()
    compat = WiredCfC(S, default_steering_wiring(), ncps_compatible=True)
    assert all(bool(layer.time_mask.all()) for layer in compat.layers)
    assert all(bool(layer.ff_mask[:, layer.n_in :].all()) for layer in compat.layers)


def test_recurrent_command_synapses_are_honoured():
    """d command_j(t) / d command_i(t-1) != 0 exactly where i -> j is a synapse or i == j."""
    torch.manual_seed(2)
    w = default_steering_wiring()
    model = WiredCfC(S, w).double()
    command = w.groups["command"]
    x = torch.randn(1, S, dtype=torch.double)
    h = torch.randn(1, 19, dtype=torch.double)
    jac = torch.autograd.functional.jacobian(lambda h: model.step(x, 0.7, h)[1], h)[0, :, 0, :]
    block = jac[command.start : command.stop, command.start : command.stop]  # [dst, src]
    adj = np.abs(w.state_adjacency)[command.start : command.stop, command.start : command.stop]
    expected = (adj.T != 0) | np.eye(6, dtype=bool)
    np.testing.assert_array_equal(block.abs().numpy() > 0, expected)
    assert adj.sum() > 0  # the wiring does have recurrent command synapses
    # nothing flows back from motor to command, or from command to inter within a step
    assert jac[: command.start, command.start :].abs().max() == 0
    assert jac[command.start : command.stop, command.stop :].abs().max() == 0


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
def test_masked_weights_get_zero_gradient_and_change_nothing(mode):
    torch.manual_seed(3)
    model = WiredCfC(S, AutoNCP(19, 1).build(S), mode=mode)
    x, elapsed, h0 = _data(seed=4)
    y, states = model(x, elapsed, h0)
    (y.square().sum() + states.square().sum()).backward()
    masked = []
    for layer in model.layers:
        for name in ("ff1", "ff2", "time_a", "time_b"):
            if not hasattr(layer, name):
                continue
            mask = layer.time_mask if name.startswith("time") else layer.ff_mask
            weight = getattr(layer, name).weight
            off = mask == 0  # (the motor layer of AutoNCP(19, 1) is fully connected)
            assert torch.all(weight.grad[off] == 0), (name, layer.n)
            assert weight.grad[~off].abs().sum() > 0
            masked.append((weight, off))
    assert sum(int(off.sum()) for _, off in masked) > 300
    with torch.no_grad():
        _, before = model(x, elapsed, h0)
        for weight, off in masked:
            weight[off] = torch.randn(int(off.sum())) * 10.0
        _, after = model(x, elapsed, h0)
    assert torch.equal(before, after)


def test_elapsed_time_is_per_sample_even_when_batch_equals_units():
    torch.manual_seed(5)
    model = WiredCfC(S, default_steering_wiring())
    x, elapsed, _ = _data(batch=19, seed=6)  # batch == units: ncps's silent-failure case
    with torch.no_grad():
        _, states = model(x, elapsed)
        for b in (0, 7, 18):
            _, alone = model(x[b : b + 1], elapsed[b : b + 1])
            assert torch.allclose(alone[0], states[b], atol=1e-6)
        _, unit = model(x, torch.ones(19, T))
        _, none = model(x, None)
    assert torch.equal(unit, none)
    assert not torch.allclose(states, unit)  # time matters


def test_bad_shapes_are_clear_errors():
    model = WiredCfC(S, default_steering_wiring())
    x, elapsed, _ = _data()
    with pytest.raises(CoreError, match=r"\(B, T\)"):
        model(x, elapsed[:, :-1])
    with pytest.raises(CoreError, match="F=32"):
        model(x[..., :5])
    with pytest.raises(CoreError, match="state"):
        model(x, elapsed, torch.zeros(B, 7))
    with pytest.raises(CoreError, match=r"\(B,\)"):
        model.step(x[:, 0], torch.ones(B, 2))
    with pytest.raises(CoreError, match="mode"):
        CfCCell(4, 4, mode="fast")
    with pytest.raises(ValueError, match="input_dim"):
        WiredCfC(16, default_steering_wiring(32))


def test_step_cache_follows_parameter_updates():
    torch.manual_seed(7)
    model = WiredCfC(S, default_steering_wiring())
    x, elapsed, h0 = _data()
    with torch.no_grad():
        first = model.step(x[:, 0], elapsed[:, 0], h0)[1]
        model.layers[1].ff1.bias.add_(1.0)
        second = model.step(x[:, 0], elapsed[:, 0], h0)[1]
        expected = model(x[:, :1], elapsed[:, :1], h0)[1][:, 0]
    assert not torch.equal(first, second) and torch.equal(second, expected)
    model.double()
    with torch.no_grad():
        _, h = model.step(x[:, 0].double(), elapsed[:, 0].double(), h0.double())
    assert h.dtype == torch.float64


def test_default_core_outputs_motor_state_in_wiring_order():
    model = WiredCfC(S, default_steering_wiring())
    assert (model.state_size, model.output_size) == (19, 1)
    x, elapsed, _ = _data()
    with torch.no_grad():
        y, states = model(x, elapsed)
    assert torch.equal(y, states[..., model.wiring.motor_indices.start :])
    assert model.masked_parameter_count() < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize("literal", [True, False])
def test_hand_written_head_backward_passes_gradcheck(gated, literal):
    u = torch.randn(5, 12, dtype=torch.double, requires_grad=True)
    ts = torch.rand(5, 1, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u, ts: GatedHeads.apply(u, ts, gated, literal), (u, ts))


def test_training_gradients_match_the_readable_cell():
    """Fused dense CfC (custom backward) and the plain-autograd CfCCell agree on gradients."""
    torch.manual_seed(8)
    model = CfC(S, 19, backbone_units=16).double()
    x, elapsed, h0 = (t.double() for t in _data())
    y, _ = model(x, elapsed, h0)
    y.square().sum().backward()
    fast = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    h, total = h0, 0.0
    for t in range(T):
        h = model.cell(x[:, t], h, elapsed[:, t])
        total = total + h.square().sum()
    total.backward()
    for g_fast, p in zip(fast, model.parameters(), strict=True):
        torch.testing.assert_close(g_fast, p.grad)


@pytest.mark.parametrize("mode", ["default", "no_gate"])
def test_hand_written_bptt_matches_autograd(mode):
    """WiredCfC training uses a hand-written backward through time; plain autograd through
    the very same step operations (taken when elapsed requires grad) must agree."""
    torch.manual_seed(9)
    model = WiredCfC(S, default_steering_wiring(), mode=mode).double()
    x, elapsed, h0 = (t.double() for t in _data(seed=10))
    weights = torch.linspace(-1, 1, 19, dtype=torch.double)

    def grads(elapsed):
        xi, hi = x.clone().requires_grad_(True), h0.clone().requires_grad_(True)
        model.zero_grad()
        y, states = model(xi, elapsed, hi)
        ((y - 0.3).square().sum() + (states * weights).sum()).backward()
        return states, [p.grad.clone() for p in model.parameters()] + [xi.grad, hi.grad]

    states_fast, fast = grads(elapsed)
    states_auto, auto = grads(elapsed.clone().requires_grad_(True))
    assert torch.equal(states_fast, states_auto)
    for a, b in zip(fast, auto, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)

"""driving.model.fused / wired_weights: the fused wired path equals the plain one.

Forward: bit for bit (the closed-loop step, the training window and the plain step run the
same operations). Backward: ``gradcheck`` in float64 for both hand-written autograd
Functions, and plain autograd through the unfused implementation in float32.
"""

import pytest
import torch

from driving.model.cfc import WiredCfC
from driving.model.fused import WiredSequence, gated_layer_heads, gated_window, wired_step
from driving.model.wired_weights import FusedWiredWeights
from driving.model.wiring import NCP, default_steering_wiring

S = 32


def _plain_weights(model):
    """The faithful WiredCfC's effective weights from plain autograd operations."""
    w_in, rec, bias = [], [], []
    for layer in model.layers:
        names = layer.head_names
        heads = [getattr(layer, name) for name in names]
        w = torch.cat([h.weight * layer.head_mask(n) for h, n in zip(heads, names, strict=True)])
        w = w.t()  # (in + n, 4n)
        w_in.append(w[: layer.n_in].contiguous())  # the layout addmm gets in the model
        rec.append(w[layer.n_in :])
        bias += [h.bias for h in heads]
    return w_in, torch.block_diag(*rec), torch.cat(bias)


def _plain_forward(model, x, ts, h):
    """Unrolled wired_step with plain autograd: x (B, T, S), ts (B, T, 1) -> states (B, T, N)."""
    w_in, rec, bias = _plain_weights(model)
    states = []
    for t in range(x.shape[1]):
        heads = gated_layer_heads(ts[:, t], model.mode == "default")
        h = wired_step(x[:, t], h, w_in, rec, bias, heads)
        states.append(h)
    return torch.stack(states, dim=1)


def _data(batch, steps=7, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, S, generator=gen, dtype=dtype)
    ts = torch.rand(batch, steps, 1, generator=gen, dtype=dtype) * 1.5 + 0.05
    h0 = torch.randn(batch, 19, generator=gen, dtype=dtype) * 0.3
    return x, ts, h0


@pytest.mark.parametrize("batch", [1, 2, 19, 32])
@pytest.mark.parametrize("mode", ["default", "no_gate"])
def test_fused_window_equals_the_plain_step_bit_for_bit(mode, batch):
    torch.manual_seed(batch)
    model = WiredCfC(S, default_steering_wiring(), mode=mode)
    x, ts, h0 = _data(batch, seed=batch)
    with torch.no_grad():
        plain = _plain_forward(model, x, ts, h0)
        w = model._weights()
        window = torch.stack(gated_window(x, ts, h0, w.w_in, w.rec, w.bias, mode == "default"), 1)
        _, states = model(x, ts[..., 0], h0)
    training = model(x, ts[..., 0], h0)[1]  # autograd on: WiredSequence
    assert torch.equal(window, plain) and torch.equal(states, plain)
    assert torch.equal(training, plain)


def _small():
    """A small wiring (4 inputs, 3 + 2 + 1 neurons) for gradcheck."""
    return WiredCfC(4, NCP(3, 2, 1, 2, 2, 2, 2, seed=3)).double()


@pytest.mark.parametrize("gated", [True, False])
def test_wired_sequence_backward_passes_gradcheck(gated):
    torch.manual_seed(0)
    model = _small()
    w = model._weights()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, generator=gen, dtype=torch.double, requires_grad=True)
    ts = torch.rand(2, 3, 1, generator=gen, dtype=torch.double) + 0.2
    h0 = torch.randn(2, 6, generator=gen, dtype=torch.double, requires_grad=True)
    weights = [t.detach().requires_grad_() for t in (w.rec, w.bias, *w.w_in)]

    def run(x, h0, rec, bias, *w_in):
        return WiredSequence.apply(x, ts, h0, rec, bias, gated, *w_in)

    assert torch.autograd.gradcheck(run, (x, h0, *weights))


@pytest.mark.parametrize("mode", ["default", "pure"])
def test_fused_weights_backward_passes_gradcheck(mode):
    torch.manual_seed(1)
    model = WiredCfC(4, NCP(3, 2, 1, 2, 2, 2, 2, seed=3), mode=mode).double()
    layout, masks, weights, biases = [], [], [], []
    for layer in model.layers:
        names = layer.head_names
        layout.append((int(layer.n_in), int(layer.n), len(names)))
        masks.append(torch.cat([layer.head_mask(n) for n in names]))
        weights += [getattr(layer, n).weight.detach().clone().requires_grad_() for n in names]
        biases += [getattr(layer, n).bias.detach().clone().requires_grad_() for n in names]

    def run(*params):
        return FusedWiredWeights.apply(tuple(layout), *masks, *params)

    assert torch.autograd.gradcheck(run, (*weights, *biases))


@pytest.mark.parametrize("mode", ["default", "no_gate"])
def test_float32_gradients_equal_plain_autograd(mode):
    """Tolerance: rtol 1e-4 with atol 1e-5 x the largest gradient of each tensor (float32)."""
    torch.manual_seed(2)
    model = WiredCfC(S, default_steering_wiring(), mode=mode)
    x, ts, h0 = _data(32, steps=32, seed=3)
    target = torch.linspace(-1, 1, 19)

    def grads(forward):
        xi, hi = x.clone().requires_grad_(), h0.clone().requires_grad_()
        model.zero_grad()
        states = forward(xi, hi)
        ((states - 0.3).square().mean() + (states * target).mean()).backward()
        return states, [p.grad.clone() for p in model.parameters()] + [xi.grad, hi.grad]

    fused_states, fused = grads(lambda xi, hi: model(xi, ts[..., 0], hi)[1])
    plain_states, plain = grads(lambda xi, hi: _plain_forward(model, xi, ts, hi))
    assert torch.equal(fused_states, plain_states)
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))

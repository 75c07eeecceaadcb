"""driving.model.ltc: step == forward exactly, masks inert, polarity sets erev, constraints."""

import numpy as np
import pytest
import torch

from driving.model.cores import CoreError
from driving.model.ltc import LTC
from driving.model.wiring import default_steering_wiring

B, T, S = 3, 5, 32


def _data(seed=0, batch=B):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, T, S, generator=gen)
    elapsed = torch.rand(batch, T, generator=gen) + 0.1
    h0 = torch.randn(batch, 19, generator=gen) * 0.3
    return x, elapsed, h0


def test_unrolled_step_equals_forward_exactly():
    torch.manual_seed(0)
    model = LTC(S, default_steering_wiring())
    x, elapsed, h0 = _data()
    y_seq, states = model(x, elapsed, h0)
    assert y_seq.shape == (B, T, 1) and states.shape == (B, T, 19)
    h = h0
    with torch.no_grad():
        for t in range(T):
            y, h = model.step(x[:, t], elapsed[:, t], h)
            assert torch.equal(h, states[:, t]) and torch.equal(y, y_seq[:, t])


def test_polarity_initialises_reversal_potentials_and_masks_are_buffers():
    w = default_steering_wiring()
    model = LTC(S, w)
    np.testing.assert_array_equal(model.erev.detach().numpy(), w.state_adjacency)
    np.testing.assert_array_equal(model.sensory_erev.detach().numpy(), w.state_sensory_adjacency)
    np.testing.assert_array_equal(model.sparsity_mask.numpy(), np.abs(w.state_adjacency))
    assert "sparsity_mask" not in dict(model.named_parameters())
    assert "sensory_sparsity_mask" in model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 3999  # as ncps LTC, masks excluded


def test_masked_synapse_parameters_get_zero_gradient_and_change_nothing():
    torch.manual_seed(1)
    model = LTC(S, default_steering_wiring())
    x, elapsed, h0 = _data(seed=2)
    y, states = model(x, elapsed, h0)
    (y.square().sum() + states.square().sum()).backward()
    pairs = [(name, model.sparsity_mask == 0) for name in ("sigma", "mu", "w", "erev")] + [
        (f"sensory_{name}", model.sensory_sparsity_mask == 0)
        for name in ("sigma", "mu", "w", "erev")
    ]
    for name, off in pairs:
        grad = getattr(model, name).grad
        assert torch.all(grad[off] == 0), name
        assert grad[~off].abs().sum() > 0, name
    with torch.no_grad():
        _, before = model(x, elapsed, h0)
        for name, off in pairs:
            getattr(model, name)[off] = 5.0
        _, after = model(x, elapsed, h0)
    assert torch.equal(before, after)


def test_elapsed_time_is_per_sample():
    torch.manual_seed(3)
    model = LTC(S, default_steering_wiring())
    x, elapsed, _ = _data(seed=4, batch=19)
    with torch.no_grad():
        _, states = model(x, elapsed)
        _, alone = model(x[5:6], elapsed[5:6])
    torch.testing.assert_close(alone[0], states[5], atol=1e-6, rtol=0)


def test_explicit_constraints_clip_and_mappings():
    model = LTC(S, default_steering_wiring(), implicit_param_constraints=False)
    with torch.no_grad():
        model.w.fill_(-1.0)
        model.cm.fill_(-0.5)
    model.apply_weight_constraints()
    assert model.w.min() == 0 and model.cm.min() == 0
    bare = LTC(S, default_steering_wiring(), input_mapping="none", output_mapping="linear")
    assert bare.input_w is None and bare.output_b is None and bare.output_w is not None
    x, elapsed, _ = _data()
    with torch.no_grad():
        y, states = bare(x, elapsed)
    assert torch.equal(y, states[..., -1:] * bare.output_w)


def test_bad_arguments():
    with pytest.raises(CoreError, match="ode_unfolds"):
        LTC(S, default_steering_wiring(), ode_unfolds=0)
    with pytest.raises(CoreError, match="input_mapping"):
        LTC(S, default_steering_wiring(), input_mapping="relu")
    with pytest.raises(CoreError, match="wiring"):
        LTC(S, "AutoNCP(19, 1)")

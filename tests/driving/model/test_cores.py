"""driving.model.cores: one base for every core (checks, elapsed, initial state, time loop)."""

import pytest
import torch

from driving.model.cells import CfCCell
from driving.model.cfc import CfC, WiredCfC
from driving.model.cores import (
    CoreError,
    FeedForwardCore,
    GRUCore,
    LSTMCore,
    SequenceCore,
    StateReadoutCore,
)
from driving.model.ltc import LTC
from driving.model.wiring import WiringError, default_steering_wiring
from liquid_drive.errors import LiquidDriveError

B, T, S = 3, 5, 32


def _cores():
    torch.manual_seed(0)
    return [
        LSTMCore(S, 8, cell_clip=0.5),
        GRUCore(S, 8),
        FeedForwardCore(S, 8),
        CfC(S, 19, backbone_layers=0),
        WiredCfC(S, default_steering_wiring()),
        LTC(S, default_steering_wiring()),
    ]


@pytest.mark.parametrize("core", _cores(), ids=lambda c: type(c).__name__)
def test_every_core_shares_the_base_and_unrolls_step_to_forward_exactly(core):
    assert isinstance(core, SequenceCore)
    assert isinstance(core, StateReadoutCore) == isinstance(core, (CfC, WiredCfC, LTC))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, S, generator=gen) * 3.0
    elapsed = torch.rand(B, T, generator=gen) + 0.1
    y_seq, states = core(x, elapsed)
    assert y_seq.shape == (B, T, core.output_size) and states.shape == (B, T, core.state_size)
    h = None
    with torch.no_grad():
        for t in range(T):
            y, h = core.step(x[:, t], elapsed[:, t], h)
            assert torch.equal(y, y_seq[:, t]) and torch.equal(h, states[:, t])


@pytest.mark.parametrize("core", _cores(), ids=lambda c: type(c).__name__)
def test_every_core_checks_its_inputs_the_same_way(core):
    x = torch.zeros(B, T, S)
    with pytest.raises(CoreError, match="F=32"):
        core(x[..., :5])
    with pytest.raises(CoreError, match=r"\(B, T\)"):
        core(x, torch.ones(B, T + 1))
    with pytest.raises(CoreError, match="state"):
        core(x, None, torch.zeros(B, core.state_size + 1))
    with pytest.raises(CoreError, match=r"\(B, F\)"):
        core.step(x)
    with pytest.raises(CoreError, match=r"\(B,\)"):
        core.step(x[:, 0], torch.ones(B, 2))


def test_lstm_clips_its_cell_state_and_discrete_cores_ignore_elapsed():
    torch.manual_seed(2)
    lstm = LSTMCore(S, 8, cell_clip=0.25)
    x = torch.randn(B, T, S) * 10.0
    with torch.no_grad():
        y, states = lstm(x)
        assert states[..., 8:].abs().max() <= 0.25 and torch.equal(y, states[..., :8])
        assert torch.equal(lstm(x, torch.rand(B, T) + 2.0)[1], states)
        ff = FeedForwardCore(S, 4)
        assert ff(x)[1].shape == (B, T, 0)


def test_every_error_is_a_liquid_drive_error():
    assert issubclass(CoreError, LiquidDriveError) and issubclass(CoreError, ValueError)
    assert issubclass(WiringError, LiquidDriveError)
    with pytest.raises(LiquidDriveError):
        CfCCell(4, 4, mode="fast")

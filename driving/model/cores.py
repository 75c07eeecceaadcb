"""The sequence-core base and the discrete-time baseline cores (LSTM, GRU, feed-forward).

Every recurrent core of the policy (``driving.model.cfc``'s ``CfC`` and ``WiredCfC``,
``driving.model.ltc.LTC`` and the baselines here) derives from :class:`SequenceCore`, which
owns what they share: the input checks, the elapsed-time handling, the initial state, the
cache of effective weights for closed-loop steps, and the loop over time::

    forward(x (B, T, F), elapsed (B, T) | (B, T, 1) | None, h0 (B, N) | None)
        -> (y (B, T, M), states (B, T, N))
    step(x (B, F), elapsed (B,) | (B, 1) | None, h (B, N) | None) -> (y (B, M), h (B, N))

``B`` batch, ``T`` steps, ``F`` input features, ``N`` state size, ``M`` outputs. ``elapsed``
is the per-sample, per-step elapsed time (None = 1.0 everywhere); the discrete cores ignore
it. A core implements ``_cell`` (one step) and, if it has effective weights to assemble
(masks applied, heads fused), ``_weights``; ``forward`` runs ``_cell`` over the window and
``step`` runs it once, so unrolling ``step`` gives exactly (bit for bit) what ``forward``
gives. The continuous-time cores, whose output is a read-out of their state (the motor
neurons, a projection), derive from :class:`StateReadoutCore`, which reads the whole
window's states out at once. A core may override ``_sequence`` with a faster path over the
whole window (the wired CfC's fused training path) as long as it computes the same values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from liquid_drive.errors import LiquidDriveError

__all__ = [
    "CoreError",
    "FeedForwardCore",
    "GRUCore",
    "LSTMCore",
    "SequenceCore",
    "StateReadoutCore",
    "WeightCache",
    "check_input",
    "elapsed_sequence",
    "elapsed_step",
    "initial_state",
]


class CoreError(LiquidDriveError, ValueError):
    """Bad arguments or input shapes for a sequence core (CfC, WiredCfC, LTC, LSTM ...)."""


# ------------------------------------------------------------------------ input handling
def elapsed_sequence(elapsed: Tensor | float | None, x: Tensor) -> Tensor:
    """Per-sample per-step elapsed time as a (B, T, 1) tensor like ``x`` (B, T, F).

    Accepts None (1.0), a Python number, or a tensor of shape (B, T) or (B, T, 1).
    """
    b, t = x.shape[0], x.shape[1]
    if elapsed is None or isinstance(elapsed, (int, float)):
        value = 1.0 if elapsed is None else float(elapsed)
        return torch.full((b, t, 1), value, dtype=x.dtype, device=x.device)
    if not isinstance(elapsed, Tensor):
        raise CoreError(f"elapsed must be a tensor, a number or None, got {type(elapsed)}")
    if elapsed.dim() == 2:
        elapsed = elapsed.unsqueeze(-1)
    if tuple(elapsed.shape) != (b, t, 1):
        raise CoreError(
            f"elapsed must have shape (B, T) or (B, T, 1) = ({b}, {t}) for input of shape "
            f"{tuple(x.shape)}, got {tuple(elapsed.shape)}"
        )
    return elapsed.to(dtype=x.dtype)


def elapsed_step(elapsed: Tensor | float | None, x: Tensor) -> Tensor:
    """Per-sample elapsed time of one step as a (B, 1) tensor like ``x`` (B, F).

    Accepts None (1.0), a Python number, or a tensor of shape (B,) or (B, 1).
    """
    if (
        isinstance(elapsed, Tensor)
        and elapsed.numel() == x.shape[0]
        and (elapsed.dim() == 1 or (elapsed.dim() == 2 and elapsed.shape[1] == 1))
    ):
        return elapsed.reshape(-1, 1).to(dtype=x.dtype)  # (B, 1)
    if isinstance(elapsed, Tensor):
        raise CoreError(
            f"elapsed must have shape (B,) or (B, 1) with B={x.shape[0]}, "
            f"got {tuple(elapsed.shape)}"
        )
    return elapsed_sequence(elapsed, x.unsqueeze(1))[:, 0]


def check_input(x: Tensor, features: int, dims: int, what: str) -> None:
    """Raise ``CoreError`` unless ``x`` has ``dims`` dims and ``features`` last."""
    if not isinstance(x, Tensor) or x.dim() != dims or x.shape[-1] != features:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        expect = "(B, T, F)" if dims == 3 else "(B, F)"
        raise CoreError(f"{what} must have shape {expect} with F={features}, got {shape}")


def initial_state(h: Tensor | None, x: Tensor, size: int) -> Tensor:
    """Zeros (B, size) when ``h`` is None, else ``h`` checked to be (B, size)."""
    if h is None:
        return x.new_zeros(x.shape[0], size)
    if h.dim() != 2 or h.shape[0] != x.shape[0] or h.shape[1] != size:
        raise CoreError(f"state must have shape ({x.shape[0]}, {size}), got {tuple(h.shape)}")
    return h


class WeightCache:
    """Keeps effective (masked, fused) weights while the parameters are unchanged.

    Used by ``step`` when autograd is off (closed-loop inference): the key is the version
    counter of every parameter and buffer, which optimiser steps and ``load_state_dict``
    bump, so stale weights are never served; ``clear`` (called from ``_apply``: ``.to``,
    ``.float`` ...) forgets the tensors. With autograd on, weights are rebuilt every call.
    """

    def __init__(self) -> None:
        self.tensors: list[Tensor] | None = None
        self.key: list[int] | None = None
        self.value: Any = None

    def clear(self) -> None:
        """Forget the cached tensors (after ``.to``, ``.double`` ...)."""
        self.tensors = self.key = self.value = None

    def get(self, module: nn.Module, build: Callable[[], Any]) -> Any:
        """``build()``, reused while ``module``'s tensors are unchanged and autograd is off."""
        if torch.is_grad_enabled():
            return build()
        if self.tensors is None:
            self.tensors = [*module.parameters(), *module.buffers()]
        key = [t._version for t in self.tensors]
        if key != self.key:
            self.value, self.key = build(), key
        return self.value


# ---------------------------------------------------------------------------------- base
class SequenceCore(nn.Module):
    """Shared interface and time loop of every core (see the module docstring).

    Subclasses set ``state_size`` and ``output_size`` (attributes or properties) and
    implement ``_cell``; those with effective weights implement ``_weights`` and call
    ``super().__init__(input_size, cache_weights=True)``.

    Args:
        input_size: Input features F.
        cache_weights: Keep ``_weights()`` between ``step`` calls while autograd is off.
    """

    state_size: int
    output_size: int

    def __init__(self, input_size: int, cache_weights: bool = False) -> None:
        super().__init__()
        self.input_size = input_size
        self._cache = WeightCache() if cache_weights else None

    def _weights(self) -> Any:
        """Effective weights for one call (None: the core uses its parameters directly)."""
        return None

    def _cell(self, x: Tensor, ts: Tensor, h: Tensor, w: Any) -> tuple[Tensor, Tensor]:
        """One step: x (B, F), ts (B, 1), h (B, N), weights -> (y (B, M), new h (B, N))."""
        raise NotImplementedError

    def _sequence(self, x: Tensor, ts: Tensor, h: Tensor, w: Any) -> tuple[Tensor, Tensor]:
        """The window: x (B, T, F), ts (B, T, 1), h0 (B, N) -> (y (B, T, M), s (B, T, N))."""
        ys, states = [], []
        for t in range(x.shape[1]):
            y, h = self._cell(x[:, t], ts[:, t], h, w)
            ys.append(y)
            states.append(h)
        return torch.stack(ys, dim=1), torch.stack(states, dim=1)  # T x (B, .) -> (B, T, .)

    def forward(
        self, x: Tensor, elapsed: Tensor | float | None = None, h0: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run a window.

        Args:
            x: (B, T, F) inputs.
            elapsed: (B, T) or (B, T, 1) elapsed time per sample and step; None = 1.0.
            h0: (B, N) initial state (in the core's state order); None = zeros.

        Returns:
            ``(y, states)``: y (B, T, M) outputs and states (B, T, N) every step's state.
        """
        check_input(x, self.input_size, 3, "x")
        ts = elapsed_sequence(elapsed, x)  # (B, T, 1)
        h = initial_state(h0, x, self.state_size)
        return self._sequence(x, ts, h, self._weights())

    def step(
        self, x: Tensor, elapsed: Tensor | float | None = None, h: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """One step: x (B, F), elapsed (B,) | (B, 1) | None, h (B, N) | None -> (y (B, M), h)."""
        check_input(x, self.input_size, 2, "x")
        h = initial_state(h, x, self.state_size)
        w = self._cache.get(self, self._weights) if self._cache is not None else None
        return self._cell(x, elapsed_step(elapsed, x), h, w)

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> SequenceCore:
        if self._cache is not None:
            self._cache.clear()  # .to(), .double(), ...: the cached tensors are stale
        return super()._apply(fn, *args, **kwargs)


class StateReadoutCore(SequenceCore):
    """A core whose output is a read-out of its state: ``y = _readout(h)``.

    Subclasses implement ``_update`` (one step of the state) and ``_readout`` (any leading
    dims); the window's states are stacked and read out in one call.
    """

    def _update(self, x: Tensor, ts: Tensor, h: Tensor, w: Any) -> Tensor:
        """One step of the state: x (B, F), ts (B, 1), h (B, N) -> new h (B, N)."""
        raise NotImplementedError

    def _readout(self, h: Tensor) -> Tensor:
        """Outputs of states: h (..., N) -> y (..., M)."""
        raise NotImplementedError

    def _cell(self, x: Tensor, ts: Tensor, h: Tensor, w: Any) -> tuple[Tensor, Tensor]:
        h = self._update(x, ts, h, w)
        return self._readout(h), h

    def _sequence(self, x: Tensor, ts: Tensor, h: Tensor, w: Any) -> tuple[Tensor, Tensor]:
        states = []
        for t in range(x.shape[1]):
            h = self._update(x[:, t], ts[:, t], h, w)
            states.append(h)
        s = torch.stack(states, dim=1)  # T x (B, N) -> (B, T, N)
        return self._readout(s), s


class WiredCore(StateReadoutCore):
    """A state read-out core on an NCP wiring (``self.wiring``).

    One state per neuron; the motor neurons' states are the outputs.
    """

    wiring: Any

    @property
    def state_size(self) -> int:
        """Neurons N."""
        return self.wiring.units

    @property
    def output_size(self) -> int:
        """Motor neurons M."""
        return self.wiring.motor_neurons


# ---------------------------------------------------------------------- discrete cores
class LSTMCore(SequenceCore):
    """LSTM; state = [h | c] (N = 2 * units), output = h (M = units); ignores elapsed.

    The forget-gate bias starts at 1 and the cell state is clipped to +-``cell_clip``, as in
    the NCP paper's code.
    """

    def __init__(self, input_size: int, units: int, cell_clip: float) -> None:
        super().__init__(input_size)
        self.cell = nn.LSTMCell(input_size, units)
        with torch.no_grad():  # forget-gate bias 1 (gate order i, f, g, o)
            self.cell.bias_ih[units : 2 * units].fill_(1.0)
            self.cell.bias_hh[units : 2 * units].zero_()
        self.units, self.cell_clip = units, cell_clip
        self.state_size, self.output_size = 2 * units, units

    def _cell(self, x: Tensor, ts: Tensor, h: Tensor, w: Any) -> tuple[Tensor, Tensor]:
        hx, cx = self.cell(x, (h[:, : self.units], h[:, self.units :]))
        cx = cx.clamp(-self.cell_clip, self.cell_clip)
        return hx, torch.cat([hx, cx], dim=1)


class GRUCore(SequenceCore):
    """GRU; state = output = h (N = M = units); ignores elapsed."""

    def __init__(self, input_size: int, units: int) -> None:
        super().__init__(input_size)
        self.cell = nn.GRUCell(input_size, units)
        self.state_size = self.output_size = units

    def _cell(self, x: Tensor, ts: Tensor, h: Tensor, w: Any) -> tuple[Tensor, Tensor]:
        h = self.cell(x, h)
        return h, h


class FeedForwardCore(SequenceCore):
    """No memory: one hidden ReLU layer per frame; state size 0; ignores elapsed."""

    def __init__(self, input_size: int, units: int) -> None:
        super().__init__(input_size)
        self.hidden = nn.Linear(input_size, units)
        self.state_size, self.output_size = 0, units

    def _cell(self, x: Tensor, ts: Tensor, h: Tensor, w: Any) -> tuple[Tensor, Tensor]:
        return torch.relu(self.hidden(x)), h  # h: the empty state (B, 0)

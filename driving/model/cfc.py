"""Closed-form continuous-time (CfC) cells: dense and NCP-wired, with exact ncps interop.

CfC (Hasani et al. 2022, "Closed-form continuous-time neural networks", Nature Machine
Intelligence 4, 992-1003) replaces the ODE of a liquid time-constant network by a gated
closed-form approximation of its solution. For a neuron layer with input ``z = [x, h]``
(input first, then the previous state) and elapsed time ``t`` since the previous step::

    f1 = tanh(W1 z + b1)        f2 = tanh(W2 z + b2)        (ncps's "ff1", "ff2")
    g  = sigmoid((Wa z + ba) * t + (Wb z + bb))              ("time_a", "time_b")
    default:  h' = f1 * (1 - g) + g * f2                     (the paper's gated CfC, eq. 10)
    no_gate:  h' = f1 + g * f2                               (CfC-NoGate)
    pure:     h' = -A * exp(-t (|w_tau| + |a1|)) * a1 + A,   a1 = W1 z + b1   (Cf-S, x0 = 0)

Mapped to the paper's ``x(t) = sigma(-f t) g + (1 - sigma(-f t)) h``: ``1 - g`` is
``sigma(-f t)``, ``f1`` is the paper's ``g`` and ``f2`` its ``h``. These are exactly the
equations of the reference torch package ``ncps`` 1.0.1 (see ``reference/ncps.md``):
``lecun_tanh(x) = 1.7159 tanh(0.666 x)`` backbone activation, dropout only after backbone
layers 2.., xavier-uniform init of every 2-D parameter (``A`` and ``w_tau`` included).

``WiredCfC`` runs one CfC layer per NCP layer (Lechner et al. 2020, "Neural circuit policies
enabling auditable autonomy"), updated in the order inter -> command -> motor within a step;
each layer's input is the *new* state of the layer before it (sensory input for layer 0).
By default it is **faithful to the wiring**: all four heads of a layer (ff1, ff2, time_a,
time_b) are masked with the same mask, whose columns are

* the synapses from the previous layer (sensory synapses for the inter layer), and
* the synapses within the layer (the recurrent command synapses) **plus each neuron's own
  previous state** (its intrinsic memory: a CfC neuron has no leak term, so without its own
  state it could not integrate over time; this is our one addition to the wiring diagram).

Nothing else is connected. Synapse polarity (+1/-1) is **not used** by the CfC: its heads
are free-signed affine maps followed by tanh/sigmoid, so there is no reversal potential
for a sign to constrain (ncps also discards it, via ``abs``); polarity is used by the LTC
(``driving/model/ltc.py``), where it initialises the reversal potentials. ``ncps_compatible=True``
instead reproduces ncps's ``WiredCfCCell`` exactly: ff1/ff2 masked by the feed-forward
synapses only, the within-layer block dense (all ones, so recurrent command synapses are
not honoured and every neuron sees every neuron of its layer), time_a/time_b unmasked.

Masks are buffers. The masked entries of each weight are multiplied by zero when the
effective weights are assembled (once per ``forward`` call), so they get zero gradient and
have no effect.

Shapes: ``B`` batch, ``T`` steps, ``F`` input features, ``N`` neurons (state size), ``M``
outputs. Every module here offers::

    forward(x (B, T, F), elapsed (B, T) | (B, T, 1) | None, h0 (B, N) | None)
        -> (y (B, T, M), states (B, T, N))
    step(x (B, F), elapsed (B,) | (B, 1) | None, h (B, N) | None) -> (y (B, M), h (B, N))

``elapsed`` is the per-sample, per-step elapsed time (None = 1.0 everywhere), and
unrolling ``step`` gives exactly (bit for bit) what ``forward`` gives: both run the same
operations on the same shapes. States are in the wiring's state order (inter, command,
motor; see ``driving/model/wiring.py``).

How it is made fast (everything is dispatch-bound at 19 neurons; ``benchmarks/cells.py``):

* masks are applied and the four heads of a layer fused into one matrix once per
  ``forward`` call (and cached between ``step`` calls while autograd is off and the
  parameters are unchanged);
* the faithful ``WiredCfC`` computes the recurrent part of all three layers with one
  matmul against a block-diagonal matrix, then one matmul per layer for its input, and
  combines the heads with ``addcmul``/``lerp``; training runs a hand-written
  backpropagation through time (``_WiredSequence``) over the very same forward operations;
* the dense ``CfC`` and the ``ncps_compatible`` ``WiredCfC`` instead keep ncps's exact
  operations (one matmul per Linear over ``[x, h]``, the literal head formulas), because
  BLAS rounding depends on matrix shapes: they equal ncps bit for bit, and are slower.

The input projection is computed step by step rather than for all T steps in one matmul:
a batched matmul rounds differently from per-step ones, which would break step == forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from driving.model.wiring import NCP
from liquid_drive.errors import LiquidDriveError

__all__ = [
    "MODES",
    "CfC",
    "CfCCell",
    "CfCError",
    "NcpsStyle",
    "WiredCfC",
    "lecun_tanh",
]

MODES = ("default", "no_gate", "pure")


class CfCError(LiquidDriveError, ValueError):
    """Bad arguments or input shapes for a CfC/LTC module."""


def lecun_tanh(x: Tensor) -> Tensor:
    """LeCun's scaled tanh as ncps writes it: ``1.7159 * tanh(0.666 * x)``."""
    return 1.7159 * torch.tanh(0.666 * x)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "lecun_tanh": lecun_tanh,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "silu": nn.functional.silu,
    "gelu": nn.functional.gelu,
}


# --------------------------------------------------------------------------- shared helpers
def elapsed_sequence(elapsed: Tensor | float | None, x: Tensor) -> Tensor:
    """Per-sample per-step elapsed time as a (B, T, 1) tensor like ``x`` (B, T, F).

    Accepts None (1.0), a Python number, or a tensor of shape (B, T) or (B, T, 1).
    """
    b, t = x.shape[0], x.shape[1]
    if elapsed is None or isinstance(elapsed, (int, float)):
        value = 1.0 if elapsed is None else float(elapsed)
        return torch.full((b, t, 1), value, dtype=x.dtype, device=x.device)
    if not isinstance(elapsed, Tensor):
        raise CfCError(f"elapsed must be a tensor, a number or None, got {type(elapsed)}")
    if elapsed.dim() == 2:
        elapsed = elapsed.unsqueeze(-1)
    if tuple(elapsed.shape) != (b, t, 1):
        raise CfCError(
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
        raise CfCError(
            f"elapsed must have shape (B,) or (B, 1) with B={x.shape[0]}, "
            f"got {tuple(elapsed.shape)}"
        )
    return elapsed_sequence(elapsed, x.unsqueeze(1))[:, 0]


def check_input(x: Tensor, features: int, dims: int, what: str) -> None:
    """Raise ``CfCError`` unless ``x`` has ``dims`` dims and ``features`` last."""
    if not isinstance(x, Tensor) or x.dim() != dims or x.shape[-1] != features:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        expect = "(B, T, F)" if dims == 3 else "(B, F)"
        raise CfCError(f"{what} must have shape {expect} with F={features}, got {shape}")


def initial_state(h: Tensor | None, x: Tensor, size: int) -> Tensor:
    """Zeros (B, size) when ``h`` is None, else ``h`` checked to be (B, size)."""
    if h is None:
        return x.new_zeros(x.shape[0], size)
    if h.dim() != 2 or h.shape[0] != x.shape[0] or h.shape[1] != size:
        raise CfCError(f"state must have shape ({x.shape[0]}, {size}), got {tuple(h.shape)}")
    return h


class _WeightCache:
    """Keeps effective (masked, fused) weights while the parameters are unchanged.

    Used by ``step`` when autograd is off (closed-loop inference): the key is the version
    counter of every parameter and buffer, which optimiser steps and ``load_state_dict``
    bump, so stale weights are never served; ``clear`` (called from ``_apply``: ``.to``,
    ``.float`` ...) forgets the tensors. With autograd on, weights are rebuilt every call.
    """

    def __init__(self) -> None:
        self.tensors: list[Tensor] | None = None
        self.key: tuple[int, ...] | None = None
        self.value: Any = None

    def clear(self) -> None:
        self.tensors = self.key = self.value = None

    def get(self, module: nn.Module, build: Callable[[], Any]) -> Any:
        if torch.is_grad_enabled():
            return build()
        if self.tensors is None:
            self.tensors = [*module.parameters(), *module.buffers()]
        key = tuple(t._version for t in self.tensors)
        if key != self.key:
            self.value, self.key = build(), key
        return self.value


def _gated_heads(u: Tensor, ts: Tensor, gated: bool, literal: bool) -> tuple[Tensor, ...]:
    """Default / no_gate heads: u (B, 4n), ts (B, 1) -> (h, f1, f2, g, time_a), each (B, n).

    ``literal`` spells the equations with ncps's exact operations (bit-identical to ncps);
    otherwise fused ``addcmul``/``lerp`` (fewer dispatches, same maths, last-bit rounding).
    """
    n = u.shape[1] // 4
    ff1, ff2, t_a, t_b = u.view(-1, 4, n).unbind(1)  # (B, 4n) -> 4 x (B, n)
    f1 = torch.tanh(ff1)
    f2 = torch.tanh(ff2)
    if literal:
        g = torch.sigmoid(t_a * ts + t_b)
        h = f1 * (1.0 - g) + g * f2 if gated else f1 + g * f2
    else:
        g = torch.sigmoid(torch.addcmul(t_b, t_a, ts))  # time_a * t + time_b
        # default: f1 (1 - g) + g f2 ; no_gate: f1 + g f2
        h = torch.lerp(f1, f2, g) if gated else torch.addcmul(f1, g, f2)
    return h, f1, f2, g, t_a


class _GatedHeads(torch.autograd.Function):
    """default / no_gate heads of one layer with a hand-written backward.

    Forward: ``u`` (B, 4n) = ``[ff1 | ff2 | time_a | time_b]`` pre-activations, ``ts`` (B, 1)
    -> new state (B, n). One autograd node instead of eight keeps training dispatch-light;
    the forward runs the same operations whether or not autograd is on, so ``step`` and
    ``forward`` agree bit for bit. ``gradcheck`` in the tests proves the backward.
    """

    @staticmethod
    def forward(ctx: Any, u: Tensor, ts: Tensor, gated: bool, literal: bool) -> Tensor:
        h, f1, f2, g, t_a = _gated_heads(u, ts, gated, literal)
        ctx.save_for_backward(f1, f2, g, ts, t_a)
        ctx.gated = gated
        return h

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor | None, None, None]:
        f1, f2, g, ts, t_a = ctx.saved_tensors
        d_u, d_pre = _gated_heads_backward(grad, f1, f2, g, ts, ctx.gated)
        d_ts = (d_pre * t_a).sum(1, keepdim=True) if ctx.needs_input_grad[1] else None
        return d_u, d_ts, None, None


def _gated_heads_backward(
    grad: Tensor, f1: Tensor, f2: Tensor, g: Tensor, ts: Tensor, gated: bool
) -> tuple[Tensor, Tensor]:
    """Gradient of ``_gated_heads``: grad (B, n) -> (d_u (B, 4n), d_gate_input (B, n))."""
    if gated:  # h = f1 + g (f2 - f1)
        d_f2 = grad * g
        d_f1 = grad - d_f2
        d_g = grad * (f2 - f1)
    else:  # h = f1 + g f2
        d_f1, d_f2, d_g = grad, grad * g, grad * f2
    d_pre = _SIGMOID_BACKWARD(d_g, g)  # d_g * g * (1 - g)
    d_u = torch.cat([_TANH_BACKWARD(d_f1, f1), _TANH_BACKWARD(d_f2, f2), d_pre * ts, d_pre], 1)
    return d_u, d_pre


_TANH_BACKWARD = torch.ops.aten.tanh_backward  # (grad, tanh output) -> grad * (1 - y^2)
_SIGMOID_BACKWARD = torch.ops.aten.sigmoid_backward  # (grad, sigmoid output) -> grad y (1 - y)


def _heads(
    u: Tensor,
    ts: Tensor,
    n: int,
    mode: str,
    pure: tuple[Tensor, Tensor] | None,
    literal: bool = False,
) -> Tensor:
    """New state of one layer from its fused pre-activations ``u``.

    Args:
        u: (B, 4n) columns ``[ff1 | ff2 | time_a | time_b]``; pure mode (B, n) = ``a1``.
        ts: (B, 1) elapsed time.
        n: Neurons in the layer.
        mode: One of ``MODES``.
        pure: ``(w_tau, A)`` each (1, n) in pure mode.
        literal: Use ncps's exact operations (see ``_gated_heads``).

    Returns:
        (B, n) new state.
    """
    if mode == "pure":
        w_tau, a = pure  # type: ignore[misc]
        return -a * torch.exp(-ts * (torch.abs(w_tau) + torch.abs(u))) * u + a
    if torch.is_grad_enabled():
        return _GatedHeads.apply(u, ts, mode == "default", literal)
    return _gated_heads(u, ts, mode == "default", literal)[0]  # same ops, no autograd node


def _per_head(z: Tensor, heads: list[tuple[Tensor, Tensor]]) -> Tensor:
    """One matmul per head, concatenated: z (B, in) -> (B, k n) ``[ff1 | ff2 | ...]``."""
    if len(heads) == 1:
        return torch.addmm(heads[0][1], z, heads[0][0])
    return torch.cat([torch.addmm(b, z, w) for w, b in heads], dim=1)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise CfCError(f"mode must be one of {MODES}, got {mode!r}")


# --------------------------------------------------------------------------------- CfCCell
class CfCCell(nn.Module):
    """One CfC step, written as the equations read (the readable reference, ncps layout).

    Args:
        input_size: Input features F.
        hidden_size: Neurons H.
        mode: "default", "no_gate" or "pure".
        backbone_activation: "lecun_tanh", "tanh", "relu", "silu" or "gelu".
        backbone_units: Width U of each backbone layer.
        backbone_layers: Backbone depth (0: the heads see ``[x, h]`` directly).
        backbone_dropout: Dropout probability after backbone layers 2.. (as ncps).

    Parameter names and shapes follow ncps's ``CfCCell`` (``backbone.{i}``, ``ff1``, ``ff2``,
    ``time_a``, ``time_b``, or ``w_tau``/``A`` (1, H) in pure mode), so state dicts map 1:1.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        mode: str = "default",
        backbone_activation: str = "lecun_tanh",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        backbone_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_mode(mode)
        if backbone_activation not in ACTIVATIONS:
            raise CfCError(
                f"backbone_activation must be one of {sorted(ACTIVATIONS)}, "
                f"got {backbone_activation!r}"
            )
        if input_size < 1 or hidden_size < 1 or backbone_layers < 0 or backbone_units < 1:
            raise CfCError(
                f"bad sizes: input_size={input_size}, hidden_size={hidden_size}, "
                f"backbone_units={backbone_units}, backbone_layers={backbone_layers}"
            )
        if not 0.0 <= backbone_dropout < 1.0:
            raise CfCError(f"backbone_dropout must be in [0, 1), got {backbone_dropout}")
        self.input_size, self.hidden_size, self.mode = input_size, hidden_size, mode
        self.backbone_activation = backbone_activation
        self.backbone_layers = backbone_layers
        self.act = ACTIVATIONS[backbone_activation]
        layers: list[nn.Module] = []
        width = input_size + hidden_size
        for i in range(backbone_layers):
            layers += [nn.Linear(width if i == 0 else backbone_units, backbone_units)]
            layers += [_Activation(backbone_activation)]
            if i > 0 and backbone_dropout > 0:
                layers += [nn.Dropout(backbone_dropout)]
        self.backbone = nn.Sequential(*layers) if layers else None
        cat = backbone_units if backbone_layers > 0 else width
        self.ff1 = nn.Linear(cat, hidden_size)
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(1, hidden_size))
            self.A = nn.Parameter(torch.ones(1, hidden_size))
        else:
            self.ff2 = nn.Linear(cat, hidden_size)
            self.time_a = nn.Linear(cat, hidden_size)
            self.time_b = nn.Linear(cat, hidden_size)
        for p in self.parameters():  # ncps init: xavier on every 2-D parameter
            if p.dim() == 2:
                nn.init.xavier_uniform_(p)

    def forward(self, x: Tensor, h: Tensor, ts: Tensor | float = 1.0) -> Tensor:
        """One step: x (B, F), h (B, H), ts (B,) | (B, 1) | float -> new h (B, H)."""
        if isinstance(ts, Tensor):
            ts = ts.reshape(-1, 1)  # (B,) -> (B, 1): per-sample time, never across units
        z = torch.cat([x, h], dim=1)  # (B, F + H)
        if self.backbone is not None:
            z = self.backbone(z)  # (B, U)
        a1 = self.ff1(z)
        if self.mode == "pure":
            return -self.A * torch.exp(-ts * (torch.abs(self.w_tau) + torch.abs(a1))) * a1 + self.A
        f1 = torch.tanh(a1)
        f2 = torch.tanh(self.ff2(z))
        g = torch.sigmoid(self.time_a(z) * ts + self.time_b(z))
        if self.mode == "default":
            return f1 * (1.0 - g) + g * f2
        return f1 + g * f2


class _Activation(nn.Module):
    """Named activation as a module (keeps ncps's ``backbone`` indices)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name, self.fn = name, ACTIVATIONS[name]

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


# ------------------------------------------------------------------------------- dense CfC
class CfC(nn.Module):
    """Dense CfC sequence model (every neuron sees every input and every neuron).

    Args:
        input_size: Input features F.
        units: Neurons N (state size).
        mode: "default", "no_gate" or "pure".
        backbone_activation: Backbone activation name (see ``CfCCell``).
        backbone_units: Backbone width.
        backbone_layers: Backbone depth.
        backbone_dropout: Dropout after backbone layers 2..
        proj_size: If set, a Linear(N -> proj_size) read-out is applied to every step's
            state (ncps's ``fc``); otherwise the output is the whole state (M = N).

    The fast path fuses the four heads into one matmul and splits the first backbone layer
    into its input and state parts; ``cell`` (a ``CfCCell``) holds the parameters and is
    the readable reference for one step.
    """

    def __init__(
        self,
        input_size: int,
        units: int,
        mode: str = "default",
        backbone_activation: str = "lecun_tanh",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        backbone_dropout: float = 0.0,
        proj_size: int | None = None,
    ) -> None:
        super().__init__()
        self.cell = CfCCell(
            input_size,
            units,
            mode,
            backbone_activation,
            backbone_units,
            backbone_layers,
            backbone_dropout,
        )
        self.fc = nn.Linear(units, proj_size) if proj_size is not None else None
        self.input_size, self.mode = input_size, mode
        self._cache = _WeightCache()

    @property
    def state_size(self) -> int:
        """Neurons N."""
        return self.cell.hidden_size

    @property
    def output_size(self) -> int:
        """Outputs M: ``proj_size`` if set, else N."""
        return self.fc.out_features if self.fc is not None else self.cell.hidden_size

    def _weights(self) -> dict[str, Any]:
        """Effective weights, transposed for ``addmm``, heads fused (once per call)."""
        c = self.cell
        heads = [c.ff1] if c.mode == "pure" else [c.ff1, c.ff2, c.time_a, c.time_b]
        linears = [m for m in c.backbone if isinstance(m, nn.Linear)] if c.backbone else []
        drops = [m for m in c.backbone if isinstance(m, nn.Dropout)] if c.backbone else []
        return {
            "heads": [(m.weight.t(), m.bias) for m in heads],
            "backbone": [
                (lin.weight.t(), lin.bias, drops[i - 1] if i > 0 and drops else None)
                for i, lin in enumerate(linears)
            ],
            "pure": (c.w_tau, c.A) if c.mode == "pure" else None,
        }

    def _cell(self, x: Tensor, ts: Tensor, h: Tensor, w: dict[str, Any]) -> Tensor:
        """Fused step: x (B, F), ts (B, 1), h (B, N) -> new h (B, N).

        Same operations as ncps (one matmul per Linear over ``[x, h]``, literal head
        formulas), so it matches ncps bit for bit (BLAS rounding depends on matrix shapes,
        which is why the heads are not fused into one matmul here).
        """
        c = self.cell
        z = torch.cat([x, h], dim=1)  # (B, F + N)
        for weight, bias, drop in w["backbone"]:
            z = c.act(torch.addmm(bias, z, weight))  # (B, U)
            if drop is not None:
                z = drop(z)
        u = _per_head(z, w["heads"])  # (B, kN)
        return _heads(u, ts, c.hidden_size, c.mode, w["pure"], literal=True)

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> CfC:
        self._cache.clear()  # .to(), .double(), ...: the cached tensors are stale
        return super()._apply(fn, *args, **kwargs)

    def _readout(self, h: Tensor) -> Tensor:
        return self.fc(h) if self.fc is not None else h

    def forward(
        self, x: Tensor, elapsed: Tensor | float | None = None, h0: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run a sequence.

        Args:
            x: (B, T, F) inputs.
            elapsed: (B, T) or (B, T, 1) elapsed time per sample and step; None = 1.0.
            h0: (B, N) initial state; None = zeros.

        Returns:
            ``(y, states)``: y (B, T, M) outputs and states (B, T, N) all neuron states.
        """
        check_input(x, self.input_size, 3, "x")
        ts = elapsed_sequence(elapsed, x)  # (B, T, 1)
        h = initial_state(h0, x, self.state_size)
        w = self._weights()
        states = []
        for t in range(x.shape[1]):
            h = self._cell(x[:, t], ts[:, t], h, w)
            states.append(h)
        s = torch.stack(states, dim=1)  # T x (B, N) -> (B, T, N)
        return self._readout(s), s

    def step(
        self, x: Tensor, elapsed: Tensor | float | None = None, h: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """One step: x (B, F), elapsed (B,) | (B, 1) | None, h (B, N) | None -> (y (B, M), h)."""
        check_input(x, self.input_size, 2, "x")
        h = initial_state(h, x, self.state_size)
        h = self._cell(x, elapsed_step(elapsed, x), h, self._cache.get(self, self._weights))
        return self._readout(h), h

    @classmethod
    def from_ncps(cls, module: nn.Module) -> NcpsStyle:
        """Our dense CfC with the weights of an ncps ``CfC(input_size, int_units, ...)``.

        Returns an ``NcpsStyle`` wrapper (call it like ncps) around the new ``CfC`` (``.core``).
        """
        _check_ncps_wrapper(module)
        cell = module.rnn_cell
        if type(cell).__name__ != "CfCCell":
            raise CfCError(f"expected an ncps CfC with int units, got cell {type(cell).__name__}")
        linears = (
            [m for m in cell.backbone if isinstance(m, nn.Linear)] if cell.backbone_layers else []
        )
        acts = [type(m).__name__ for m in cell.backbone] if cell.backbone_layers else []
        activation = _ncps_activation_name(acts)
        drops = (
            [m.p for m in cell.backbone if isinstance(m, nn.Dropout)]
            if cell.backbone_layers
            else []
        )
        fc = module.fc if isinstance(module.fc, nn.Linear) else None
        ours = cls(
            input_size=module.input_size,
            units=cell.hidden_size,
            mode=cell.mode,
            backbone_activation=activation,
            backbone_units=linears[0].out_features if linears else 128,
            backbone_layers=cell.backbone_layers,
            backbone_dropout=drops[0] if drops else 0.0,
            proj_size=fc.out_features if fc is not None else None,
        )
        if getattr(cell, "sparsity_mask", None) is not None:
            raise CfCError("ncps CfCCell with a sparsity_mask is not supported; use WiredCfC")
        sd = {k: v for k, v in cell.state_dict().items() if k != "sparsity_mask"}
        ours.cell.load_state_dict(sd, strict=True)
        if fc is not None:
            ours.fc.load_state_dict(fc.state_dict())
        return NcpsStyle(ours, module)


def _ncps_activation_name(module_names: Sequence[str]) -> str:
    names = {"LeCun": "lecun_tanh", "Tanh": "tanh", "ReLU": "relu", "SiLU": "silu", "GELU": "gelu"}
    for n in module_names:
        if n in names:
            return names[n]
    return "lecun_tanh"


def _check_ncps_wrapper(module: nn.Module) -> None:
    if not hasattr(module, "rnn_cell") or not hasattr(module, "state_size"):
        raise CfCError(f"expected an ncps CfC/LTC wrapper module, got {type(module).__name__}")
    if getattr(module, "use_mixed", False):
        raise CfCError("ncps modules with mixed_memory=True are not supported by from_ncps")


# ------------------------------------------------------------------------------- wired CfC
class _WiredLayer(nn.Module):
    """Parameters and masks of one NCP layer (ncps's ``layer_{l}`` names and shapes).

    ``ff1``, ``ff2``, ``time_a``, ``time_b``: Linear(in + n -> n) over ``[input, own layer
    state]`` (pure mode: ``ff1``, ``w_tau`` (1, n), ``A`` (1, n)). Buffers ``ff_mask`` and
    ``time_mask`` (n, in + n) are 0/1.
    """

    def __init__(self, n_in: int, n: int, mode: str, ff_mask: np.ndarray, time_mask: np.ndarray):
        super().__init__()
        self.n_in, self.n, self.mode = n_in, n, mode
        self.ff1 = nn.Linear(n_in + n, n)
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(1, n))
            self.A = nn.Parameter(torch.ones(1, n))
        else:
            self.ff2 = nn.Linear(n_in + n, n)
            self.time_a = nn.Linear(n_in + n, n)
            self.time_b = nn.Linear(n_in + n, n)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.xavier_uniform_(p)
        self.register_buffer("ff_mask", torch.as_tensor(ff_mask, dtype=torch.float32))
        self.register_buffer("time_mask", torch.as_tensor(time_mask, dtype=torch.float32))

    def effective_heads(self) -> list[tuple[Tensor, Tensor]]:
        """Masked heads one by one: [(weight (in + n, n) transposed, bias (n,)), ...]."""
        if self.mode == "pure":
            return [((self.ff1.weight * self.ff_mask).t(), self.ff1.bias)]
        return [
            ((self.ff1.weight * self.ff_mask).t(), self.ff1.bias),
            ((self.ff2.weight * self.ff_mask).t(), self.ff2.bias),
            ((self.time_a.weight * self.time_mask).t(), self.time_a.bias),
            ((self.time_b.weight * self.time_mask).t(), self.time_b.bias),
        ]

    def effective(self) -> tuple[Tensor, Tensor]:
        """Masked heads fused: weight (in + n, kn) transposed for ``addmm``, bias (kn,)."""
        if self.mode == "pure":
            return (self.ff1.weight * self.ff_mask).t(), self.ff1.bias
        w = torch.cat(
            [
                self.ff1.weight * self.ff_mask,
                self.ff2.weight * self.ff_mask,
                self.time_a.weight * self.time_mask,
                self.time_b.weight * self.time_mask,
            ]
        )  # (4n, in + n)
        b = torch.cat([self.ff1.bias, self.ff2.bias, self.time_a.bias, self.time_b.bias])
        return w.t(), b


class WiredCfC(nn.Module):
    """CfC on an NCP wiring: inter -> command -> motor layers, masked to the wiring.

    Args:
        input_size: Sensory inputs S (the wiring is built for it; a wiring built for another
            width is an error).
        wiring: An ``NCP``/``AutoNCP`` from ``driving.model.wiring``.
        mode: "default", "no_gate" or "pure".
        ncps_compatible: False (default): faithful masks (see the module docstring).
            True: ncps 1.0.1's ``WiredCfCCell`` numerics (dense within-layer recurrence,
            unmasked time heads).

    The output is the motor neurons' state (M = wiring.motor_neurons); states are all N
    neurons in state order ``[inter | command | motor]``.
    """

    def __init__(
        self, input_size: int, wiring: NCP, mode: str = "default", ncps_compatible: bool = False
    ) -> None:
        super().__init__()
        _check_mode(mode)
        if not isinstance(wiring, NCP):
            raise CfCError(
                f"wiring must be a driving.model.wiring.NCP, got {type(wiring).__name__}"
            )
        wiring.build(input_size)
        self.wiring, self.input_size, self.mode = wiring, input_size, mode
        self.ncps_compatible = ncps_compatible
        adj = np.abs(wiring.state_adjacency)  # (N, N) [src, dst], polarity dropped
        sens = np.abs(wiring.state_sensory_adjacency)  # (S, N)
        bounds = np.cumsum([0, *wiring.layer_sizes])
        spans = [slice(bounds[i], bounds[i + 1]) for i in range(3)]
        _check_layered(adj, spans)
        layers = []
        for i, span in enumerate(spans):
            n = span.stop - span.start
            into = sens[:, span] if i == 0 else adj[spans[i - 1], span]  # (in, n) [src, dst]
            # ncps: dense within the layer; ours: own state + the layer's own synapses.
            rec = np.ones((n, n)) if ncps_compatible else np.maximum(adj[span, span], np.eye(n))
            ff = np.concatenate([into, rec]).T  # (n, in + n) [dst, src] like Linear.weight
            time = np.ones_like(ff) if ncps_compatible else ff
            layers.append(_WiredLayer(into.shape[0], n, mode, ff, time))
        self.layers = nn.ModuleList(layers)
        self._sizes = [int(s) for s in wiring.layer_sizes]
        self._cache = _WeightCache()

    @property
    def state_size(self) -> int:
        """Neurons N."""
        return self.wiring.units

    @property
    def output_size(self) -> int:
        """Motor neurons M."""
        return self.wiring.motor_neurons

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> WiredCfC:
        self._cache.clear()  # .to(), .double(), ...: the cached tensors are stale
        return super()._apply(fn, *args, **kwargs)

    def _weights(self) -> tuple[list[Tensor], Any, Any, list[Any], list[Any]]:
        """Per-call effective weights (masks applied once per call).

        Fast path: input parts, block-diagonal recurrence, bias, pure-mode parameters. The
        ncps-compatible path: pure-mode parameters and each layer's heads one by one.
        """
        w_in, rec, bias, pure = [], [], [], []
        if self.ncps_compatible:
            for layer in self.layers:
                pure.append((layer.w_tau, layer.A) if self.mode == "pure" else None)
            return [], None, None, pure, [layer.effective_heads() for layer in self.layers]
        for layer in self.layers:
            w, b = layer.effective()  # (in + n, kn), (kn,)
            w_in.append(w[: layer.n_in].contiguous())  # (in, kn)
            rec.append(w[layer.n_in :])  # (n, kn)
            bias.append(b)
            pure.append((layer.w_tau, layer.A) if self.mode == "pure" else None)
        # (N, kN): the previous state of each layer feeds only its own layer's columns.
        return w_in, torch.block_diag(*rec), torch.cat(bias), pure, []

    def _cell(self, x: Tensor, ts: Tensor, h: Tensor, w: tuple) -> Tensor:
        """Fused step: x (B, S), ts (B, 1), h (B, N) -> new h (B, N)."""
        if self.ncps_compatible:
            return self._cell_ncps(x, ts, h, w)
        w_in, rec, bias, pure, _ = w
        if self.mode != "pure":
            return _wired_step(x, ts, h, w_in, rec, bias, self._sizes, self.mode == "default")
        u = torch.addmm(bias, h, rec).split(self._sizes, dim=1)
        inp, new = x, []
        for i, n in enumerate(self._sizes):
            inp = _heads(torch.addmm(u[i], inp, w_in[i]), ts, n, self.mode, pure[i])  # (B, n)
            new.append(inp)
        return torch.cat(new, dim=1)  # (B, N) in state order

    def _cell_ncps(self, x: Tensor, ts: Tensor, h: Tensor, w: tuple) -> Tensor:
        """The ncps operation order: per layer one matmul over ``[input, own layer state]``."""
        pure, layers = w[3], w[4]
        inp, new = x, []
        for i, (h_l, n) in enumerate(zip(h.split(self._sizes, dim=1), self._sizes, strict=True)):
            z = torch.cat([inp, h_l], dim=1)  # (B, in + n)
            u = _per_head(z, layers[i])  # (B, kn)
            inp = _heads(u, ts, n, self.mode, pure[i], literal=True)
            new.append(inp)
        return torch.cat(new, dim=1)

    def forward(
        self, x: Tensor, elapsed: Tensor | float | None = None, h0: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run a sequence.

        Args:
            x: (B, T, S) sensory inputs.
            elapsed: (B, T) or (B, T, 1) elapsed time per sample and step; None = 1.0.
            h0: (B, N) initial state in state order; None = zeros.

        Returns:
            ``(y, states)``: y (B, T, M) motor neuron states, states (B, T, N).
        """
        check_input(x, self.input_size, 3, "x")
        ts = elapsed_sequence(elapsed, x)  # (B, T, 1)
        h = initial_state(h0, x, self.state_size)
        w = self._weights()
        if (
            torch.is_grad_enabled()
            and not self.ncps_compatible
            and self.mode != "pure"
            and not ts.requires_grad
        ):  # training: the same forward operations, hand-written backward through time
            w_in, rec, bias = w[0], w[1], w[2]
            gated = self.mode == "default"
            s = _WiredSequence.apply(x, ts, h, rec, bias, self._sizes, gated, *w_in)
            return s[..., -self.output_size :], s
        states = []
        for t in range(x.shape[1]):
            h = self._cell(x[:, t], ts[:, t], h, w)
            states.append(h)
        s = torch.stack(states, dim=1)  # (B, T, N)
        return s[..., -self.output_size :], s

    def step(
        self, x: Tensor, elapsed: Tensor | float | None = None, h: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """One step: x (B, S), elapsed (B,) | (B, 1) | None, h (B, N) | None -> (y (B, M), h)."""
        check_input(x, self.input_size, 2, "x")
        h = initial_state(h, x, self.state_size)
        h = self._cell(x, elapsed_step(elapsed, x), h, self._cache.get(self, self._weights))
        return h[:, -self.output_size :], h

    def masked_parameter_count(self) -> int:
        """Trainable entries that are real connections (masked-out weights excluded)."""
        total = 0
        for layer in self.layers:
            for name, p in layer.named_parameters():
                if name.endswith("weight"):
                    mask = layer.time_mask if name.startswith("time") else layer.ff_mask
                    total += int(mask.sum())
                else:
                    total += p.numel()
        return total

    @classmethod
    def from_ncps(cls, module: nn.Module, wiring_seed: int | None = None) -> NcpsStyle:
        """An ``ncps_compatible`` WiredCfC with the weights of an ncps ``CfC(S, wiring)``.

        The ncps wiring is re-created with ``driving.model.wiring`` (AutoNCP or NCP, same
        arguments) and checked against the matrices the ncps model was built with.

        Args:
            module: ncps ``CfC`` built on an ``AutoNCP`` or ``NCP`` wiring.
            wiring_seed: The seed of an ncps ``NCP`` wiring (ncps does not record it);
                not needed for ``AutoNCP``.

        Returns:
            An ``NcpsStyle`` wrapper (call it like ncps) around the new ``WiredCfC``.
        """
        _check_ncps_wrapper(module)
        cell = module.rnn_cell
        if type(cell).__name__ != "WiredCfCCell":
            raise CfCError(f"expected an ncps CfC on a wiring, got cell {type(cell).__name__}")
        wiring = wiring_from_ncps(cell._wiring, module.input_size, wiring_seed)
        mode = cell.layer_0.mode if hasattr(cell.layer_0, "mode") else "default"
        ours = cls(module.input_size, wiring, mode=mode, ncps_compatible=True)
        for i, layer in enumerate(ours.layers):
            sd = {k: v for k, v in getattr(cell, f"layer_{i}").state_dict().items()}
            mask = sd.pop("sparsity_mask")
            if not torch.equal(mask, layer.ff_mask):
                raise CfCError(f"ncps layer_{i} mask differs from the rebuilt wiring's")
            sd["ff_mask"], sd["time_mask"] = layer.ff_mask, layer.time_mask
            layer.load_state_dict(sd, strict=True)
        return NcpsStyle(ours, module)


def _wired_step(
    x: Tensor,
    ts: Tensor,
    h: Tensor,
    w_in: Sequence[Tensor],
    rec: Tensor,
    bias: Tensor,
    sizes: Sequence[int],
    gated: bool,
    saved: list[tuple[Tensor, ...]] | None = None,
) -> Tensor:
    """One faithful wired step (default / no_gate): x (B, S), ts (B, 1), h (B, N) -> (B, N).

    ``u = bias + h @ rec`` gives every layer's recurrent part at once (rec is block
    diagonal); then layer by layer ``u_l += input_l @ w_in_l`` where input_l is the sensory
    input (l = 0) or the new state of layer l - 1. ``saved`` collects (f1, f2, g, time_a)
    per layer for the hand-written backward.
    """
    u = torch.addmm(bias, h, rec).split([4 * n for n in sizes], dim=1)  # L x (B, 4 n_l)
    inp, new = x, []
    for i in range(len(sizes)):
        inp, f1, f2, g, t_a = _gated_heads(torch.addmm(u[i], inp, w_in[i]), ts, gated, False)
        if saved is not None:
            saved.append((f1, f2, g, t_a))
        new.append(inp)
    return torch.cat(new, dim=1)  # (B, N) in state order


class _WiredSequence(torch.autograd.Function):
    """The faithful WiredCfC over a whole sequence, with backpropagation through time by hand.

    Forward runs ``_wired_step`` T times (exactly the operations ``step`` runs). Backward
    walks the steps in reverse with plain tensor operations (no autograd graph of ~40 nodes
    per step), collects the gradients of every step's fused pre-activations, and turns them
    into weight gradients with one large matmul per weight at the end. The tests compare it
    with plain autograd through ``_wired_step``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        ts: Tensor,
        h0: Tensor,
        rec: Tensor,
        bias: Tensor,
        sizes: Sequence[int],
        gated: bool,
        *w_in: Tensor,
    ) -> Tensor:
        h, states, saved = h0, [], []
        for t in range(x.shape[1]):
            h = _wired_step(x[:, t], ts[:, t], h, w_in, rec, bias, sizes, gated, saved)
            states.append(h)
        s = torch.stack(states, dim=1)  # (B, T, N)
        ctx.save_for_backward(x, ts, h0, rec, s, *w_in)
        ctx.heads, ctx.sizes, ctx.gated = saved, list(sizes), gated
        return s

    @staticmethod
    def backward(ctx: Any, d_s: Tensor) -> tuple[Tensor | None, ...]:
        x, ts, h0, rec, s, *w_in = ctx.saved_tensors
        sizes, n_layers = ctx.sizes, len(ctx.sizes)
        b, t_len, n = s.shape
        w_in_t = [w.t() for w in w_in]  # (4 n_l, in_l)
        d_h = torch.zeros_like(h0)  # gradient reaching h_t through step t + 1
        d_us: list[Tensor] = [d_h] * t_len
        for t in reversed(range(t_len)):
            parts = list((d_s[:, t] + d_h).split(sizes, dim=1))  # dL/dh_t per layer
            d_layer: list[Tensor] = [d_h] * n_layers
            for i in reversed(range(n_layers)):
                f1, f2, g, _ = ctx.heads[t * n_layers + i]
                d_layer[i] = _gated_heads_backward(parts[i], f1, f2, g, ts[:, t], ctx.gated)[0]
                if i > 0:  # layer i's input is layer i - 1's new state
                    parts[i - 1] = torch.addmm(parts[i - 1], d_layer[i], w_in_t[i])
            d_us[t] = torch.cat(d_layer, dim=1)  # (B, 4N)
            d_h = torch.mm(d_us[t], rec.t())  # (B, N)
        d_u = torch.stack(d_us, dim=1).reshape(b * t_len, -1)  # (B T, 4N)
        d_u_layers = d_u.split([4 * k for k in sizes], dim=1)
        h_prev = torch.cat([h0.unsqueeze(1), s[:, :-1]], dim=1).reshape(b * t_len, n)
        d_rec = torch.mm(h_prev.t(), d_u)  # (N, 4N)
        d_bias = d_u.sum(0)
        bounds = np.cumsum([0, *sizes])
        inputs = [x.reshape(b * t_len, -1)] + [
            s[..., bounds[i - 1] : bounds[i]].reshape(b * t_len, -1) for i in range(1, n_layers)
        ]
        d_w_in = [torch.mm(inp.t(), d) for inp, d in zip(inputs, d_u_layers, strict=True)]
        d_x = None
        if ctx.needs_input_grad[0]:
            d_x = torch.mm(d_u_layers[0], w_in_t[0]).view(x.shape)
        d_h0 = d_h if ctx.needs_input_grad[2] else None
        return (d_x, None, d_h0, d_rec, d_bias, None, None, *d_w_in)


def _check_layered(adj: np.ndarray, spans: list[slice]) -> None:
    """Every synapse must go to the next layer or stay within a layer (NCP structure)."""
    allowed = np.zeros_like(adj, dtype=bool)
    for i, span in enumerate(spans):
        allowed[span, span] = True
        if i + 1 < len(spans):
            allowed[span, spans[i + 1]] = True
    if np.any((adj != 0) & ~allowed):
        src, dst = np.argwhere((adj != 0) & ~allowed)[0]
        raise CfCError(f"synapse {src}->{dst} (state order) skips or goes back a layer")


def wiring_from_ncps(ncps_wiring: Any, input_size: int, seed: int | None = None) -> NCP:
    """Our ``NCP``/``AutoNCP`` equal to a built ncps wiring (matrices compared exactly).

    ``seed`` is required for an ncps ``NCP`` (it does not record its seed).
    """
    from driving.model.wiring import AutoNCP  # local: keeps the names above readable

    name = type(ncps_wiring).__name__
    if name == "AutoNCP":
        cfg = ncps_wiring.get_config()
        ours: NCP = AutoNCP(cfg["units"], cfg["output_size"], cfg["sparsity_level"], cfg["seed"])
    elif name == "NCP":
        if seed is None:
            raise CfCError("an ncps NCP wiring does not record its seed: pass wiring_seed")
        ours = NCP(
            ncps_wiring._num_inter_neurons,
            ncps_wiring._num_command_neurons,
            ncps_wiring._num_motor_neurons,
            ncps_wiring._sensory_fanout,
            ncps_wiring._inter_fanout,
            ncps_wiring._recurrent_command_synapses,
            ncps_wiring._motor_fanin,
            seed=seed,
        )
    else:
        raise CfCError(f"only ncps NCP/AutoNCP wirings are supported, got {name}")
    ours.build(input_size)
    if not (
        np.array_equal(ours.adjacency_matrix, ncps_wiring.adjacency_matrix)
        and np.array_equal(ours.sensory_adjacency_matrix, ncps_wiring.sensory_adjacency_matrix)
    ):
        raise CfCError(
            f"ncps {name} matrices differ from {ours!r}: was the ncps wiring built more than "
            "once (ncps adds synapses on every build) or seeded unusually?"
        )
    return ours


# ------------------------------------------------------------------------ ncps-style calls
class NcpsStyle(nn.Module):
    """ncps's calling convention over one of our modules (``.core``, same weights).

    ``forward(x, hx=None, timespans=None) -> (outputs, h)`` with ncps's input layouts
    (batch-first (B, T, F) by default, time-major when the source had ``batch_first=False``,
    or unbatched (T, F)), ``return_sequences`` as the source module, and ``hx`` in ncps's
    layout. Unlike ncps, ``timespans`` (B, T) or (B, T, 1) is applied per sample for any
    batch size (ncps issues 81-83).

    Args:
        core: Our ``CfC``, ``WiredCfC`` or ``LTC``.
        source: The ncps module whose conventions to copy (only flags are read).
        hx_order: For each of our state indices, its index in ncps's ``hx`` (LTC: ncps ids);
            None when the layouts agree (CfC).
    """

    def __init__(
        self, core: nn.Module, source: nn.Module | None = None, hx_order: np.ndarray | None = None
    ) -> None:
        super().__init__()
        self.core = core
        self.batch_first = bool(getattr(source, "batch_first", True))
        self.return_sequences = bool(getattr(source, "return_sequences", True))
        order = (
            None if hx_order is None else torch.as_tensor(np.asarray(hx_order), dtype=torch.long)
        )
        inverse = None if order is None else torch.argsort(order)
        self.register_buffer("hx_order", order, persistent=False)
        self.register_buffer("hx_inverse", inverse, persistent=False)

    def forward(
        self, x: Tensor, hx: Tensor | None = None, timespans: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """ncps-style call: returns ``(outputs, h)`` with h (B, N) the last state."""
        batched = x.dim() == 3
        if not batched:  # (T, F) -> (1, T, F)
            x = x.unsqueeze(0)
            timespans = None if timespans is None else timespans.unsqueeze(0)
            hx = None if hx is None else hx.unsqueeze(0)
        elif not self.batch_first:  # (T, B, F) -> (B, T, F)
            x = x.transpose(0, 1)
            timespans = None if timespans is None else timespans.transpose(0, 1)
        if hx is not None and self.hx_order is not None:
            hx = hx[:, self.hx_order]  # ncps layout -> our state order
        y, states = self.core(x, timespans, hx)
        h = states[:, -1]
        if self.hx_inverse is not None:
            h = h[:, self.hx_inverse]  # our state order -> ncps layout
        if not self.return_sequences:
            y = y[:, -1]
        elif batched and not self.batch_first:
            y = y.transpose(0, 1)
        if not batched:
            y, h = y[0], h[0]
        return y, h

"""The CfC cell maths: one step of a closed-form continuous-time layer, and its heads.

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

:class:`CfCCell` writes one step as the equations read (the readable reference). The fast
modules (``driving.model.cfc``) assemble the four heads of a layer into one pre-activation
``u = [ff1 | ff2 | time_a | time_b]`` (B, 4n) and turn it into the new state with
:func:`heads`; :class:`GatedHeads` is the same with a hand-written backward (one autograd
node instead of eight).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from driving.model.cores import CoreError

__all__ = ["ACTIVATIONS", "MODES", "CfCCell", "GatedHeads", "check_mode", "heads", "lecun_tanh"]

MODES = ("default", "no_gate", "pure")


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

TANH_BACKWARD = torch.ops.aten.tanh_backward  # (grad, tanh output) -> grad * (1 - y^2)
SIGMOID_BACKWARD = torch.ops.aten.sigmoid_backward  # (grad, sigmoid output) -> grad y (1 - y)


def check_mode(mode: str) -> None:
    """Raise ``CoreError`` unless ``mode`` is one of ``MODES``."""
    if mode not in MODES:
        raise CoreError(f"mode must be one of {MODES}, got {mode!r}")


# ----------------------------------------------------------------------------- the heads
def gated_heads(u: Tensor, ts: Tensor, gated: bool, literal: bool) -> tuple[Tensor, ...]:
    """Default / no_gate heads: u (B, 4n), ts (B, 1) -> (h, f1, f2, g, time_a), each (B, n).

    ``literal`` spells the equations with ncps's exact operations (bit-identical to ncps);
    otherwise fused ``addcmul``/``lerp`` (fewer dispatches, same maths, last-bit rounding).
    """
    n = u.shape[1] // 4
    ff1, ff2, t_a, t_b = u.split_with_sizes([n, n, n, n], dim=1)  # (B, 4n) -> 4 x (B, n)
    if literal:
        f1, f2 = torch.tanh(ff1), torch.tanh(ff2)
        g = torch.sigmoid(t_a * ts + t_b)
        h = f1 * (1.0 - g) + g * f2 if gated else f1 + g * f2
    else:  # one tanh over the contiguous row is cheaper than two over strided blocks
        f1, f2, _ = torch.tanh(u).split_with_sizes([n, n, 2 * n], dim=1)
        g = torch.sigmoid(torch.addcmul(t_b, t_a, ts))  # time_a * t + time_b
        # default: f1 (1 - g) + g f2 ; no_gate: f1 + g f2
        h = torch.lerp(f1, f2, g) if gated else torch.addcmul(f1, g, f2)
    return h, f1, f2, g, t_a


def gated_heads_backward(
    grad: Tensor, f1: Tensor, f2: Tensor, g: Tensor, ts: Tensor, gated: bool
) -> tuple[Tensor, Tensor]:
    """Gradient of ``gated_heads``: grad (B, n) -> (d_u (B, 4n), d_gate_input (B, n))."""
    if gated:  # h = f1 + g (f2 - f1)
        d_f2 = grad * g
        d_f1 = grad - d_f2
        d_g = grad * (f2 - f1)
    else:  # h = f1 + g f2
        d_f1, d_f2, d_g = grad, grad * g, grad * f2
    d_pre = SIGMOID_BACKWARD(d_g, g)  # d_g * g * (1 - g)
    d_u = torch.cat([TANH_BACKWARD(d_f1, f1), TANH_BACKWARD(d_f2, f2), d_pre * ts, d_pre], 1)
    return d_u, d_pre


class GatedHeads(torch.autograd.Function):
    """default / no_gate heads of one layer with a hand-written backward.

    Forward: ``u`` (B, 4n) = ``[ff1 | ff2 | time_a | time_b]`` pre-activations, ``ts`` (B, 1)
    -> new state (B, n). One autograd node instead of eight keeps training dispatch-light;
    the forward runs the same operations whether or not autograd is on, so ``step`` and
    ``forward`` agree bit for bit. ``gradcheck`` in the tests proves the backward.
    """

    @staticmethod
    def forward(ctx: Any, u: Tensor, ts: Tensor, gated: bool, literal: bool) -> Tensor:
        """New state (B, n) from u (B, 4n) and ts (B, 1); saves what the backward needs."""
        h, f1, f2, g, t_a = gated_heads(u, ts, gated, literal)
        ctx.save_for_backward(f1, f2, g, ts, t_a)
        ctx.gated = gated
        return h

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor | None, None, None]:
        """Gradients (d_u (B, 4n), d_ts (B, 1) or None, None, None) from grad (B, n)."""
        f1, f2, g, ts, t_a = ctx.saved_tensors
        d_u, d_pre = gated_heads_backward(grad, f1, f2, g, ts, ctx.gated)
        d_ts = (d_pre * t_a).sum(1, keepdim=True) if ctx.needs_input_grad[1] else None
        return d_u, d_ts, None, None


def heads(
    u: Tensor,
    ts: Tensor,
    mode: str,
    pure: tuple[Tensor, Tensor] | None,
    literal: bool = False,
) -> Tensor:
    """New state of one layer from its fused pre-activations ``u``.

    Args:
        u: (B, 4n) columns ``[ff1 | ff2 | time_a | time_b]``; pure mode (B, n) = ``a1``.
        ts: (B, 1) elapsed time.
        mode: One of ``MODES``.
        pure: ``(w_tau, A)`` each (1, n) in pure mode.
        literal: Use ncps's exact operations (see ``gated_heads``).

    Returns:
        (B, n) new state.
    """
    if mode == "pure":
        w_tau, a = pure  # type: ignore[misc]
        return -a * torch.exp(-ts * (torch.abs(w_tau) + torch.abs(u))) * u + a
    if torch.is_grad_enabled():
        return GatedHeads.apply(u, ts, mode == "default", literal)
    return gated_heads(u, ts, mode == "default", literal)[0]  # same ops, no autograd node


def per_head(z: Tensor, weights: list[tuple[Tensor, Tensor]]) -> Tensor:
    """One matmul per head, concatenated: z (B, in) -> (B, k n) ``[ff1 | ff2 | ...]``."""
    if len(weights) == 1:
        return torch.addmm(weights[0][1], z, weights[0][0])
    return torch.cat([torch.addmm(b, z, w) for w, b in weights], dim=1)


def head_linears(n_in: int, n: int, mode: str) -> dict[str, nn.Module | nn.Parameter]:
    """The head parameters of a layer over ``n_in`` inputs (ncps's): Linear(n_in -> n) each.

    ``ff1``, ``ff2``, ``time_a``, ``time_b``; pure mode: ``ff1``, ``w_tau`` (1, n) and
    ``A`` (1, n) (zeros and ones before the xavier init of :func:`xavier_init`).
    """
    if mode == "pure":
        return {
            "ff1": nn.Linear(n_in, n),
            "w_tau": nn.Parameter(torch.zeros(1, n)),
            "A": nn.Parameter(torch.ones(1, n)),
        }
    return {name: nn.Linear(n_in, n) for name in ("ff1", "ff2", "time_a", "time_b")}


def xavier_init(module: nn.Module) -> None:
    """The ncps init: xavier-uniform on every 2-D parameter (``A`` and ``w_tau`` included)."""
    for p in module.parameters():
        if p.dim() == 2:
            nn.init.xavier_uniform_(p)


# ------------------------------------------------------------------------------- CfCCell
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
        check_mode(mode)
        if backbone_activation not in ACTIVATIONS:
            raise CoreError(
                f"backbone_activation must be one of {sorted(ACTIVATIONS)}, "
                f"got {backbone_activation!r}"
            )
        if input_size < 1 or hidden_size < 1 or backbone_layers < 0 or backbone_units < 1:
            raise CoreError(
                f"bad sizes: input_size={input_size}, hidden_size={hidden_size}, "
                f"backbone_units={backbone_units}, backbone_layers={backbone_layers}"
            )
        if not 0.0 <= backbone_dropout < 1.0:
            raise CoreError(f"backbone_dropout must be in [0, 1), got {backbone_dropout}")
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
        for name, part in head_linears(cat, hidden_size, mode).items():
            setattr(self, name, part)
        xavier_init(self)

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

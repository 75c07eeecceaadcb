"""The fused wired-CfC step and its sequence with a hand-written backward through time.

One step of the faithful ``WiredCfC`` (``driving.model.cfc``) in fused form: ``u = bias +
h @ rec`` gives every layer's recurrent part at once (``rec`` (N, kN) is block diagonal:
the previous state of each layer feeds only its own layer's columns); then layer by layer
``u_l += input_l @ w_in_l``, where input_l is the sensory input (l = 0) or the new state of
layer l - 1, and the layer's heads turn ``u_l`` into its new state.

:class:`WiredSequence` runs that step over a window (default / no_gate modes) and walks
back through time by hand: no autograd graph of ~40 nodes per step, and the weight
gradients come from one large matmul per weight at the end. The tests compare it with
plain autograd through :func:`wired_step`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from driving.model.cells import gated_heads, gated_heads_backward, heads

__all__ = ["WiredSequence", "gated_layer_heads", "pure_layer_heads", "wired_step"]


def wired_step(
    x: Tensor,
    h: Tensor,
    w_in: Sequence[Tensor],
    rec: Tensor,
    bias: Tensor,
    layer_heads: Callable[[int, Tensor], Tensor],
) -> Tensor:
    """One fused wired step: x (B, S), h (B, N) -> new h (B, N) in state order.

    Args:
        x: (B, S) sensory input.
        h: (B, N) previous state.
        w_in: Per layer l, (in_l, k n_l) input weights (k = 4 heads, 1 in pure mode).
        rec: (N, k N) block-diagonal recurrent weights.
        bias: (k N,) biases.
        layer_heads: ``(l, u_l (B, k n_l)) -> (B, n_l)`` new state of layer l.
    """
    u = torch.addmm(bias, h, rec).split([w.shape[1] for w in w_in], dim=1)  # L x (B, k n_l)
    inp, new = x, []
    for i in range(len(w_in)):
        inp = layer_heads(i, torch.addmm(u[i], inp, w_in[i]))  # (B, n_l)
        new.append(inp)
    return torch.cat(new, dim=1)  # (B, N)


def gated_layer_heads(
    ts: Tensor, gated: bool, saved: list[tuple[Tensor, ...]] | None = None
) -> Callable[[int, Tensor], Tensor]:
    """``layer_heads`` for default / no_gate; ``saved`` collects (f1, f2, g) per layer."""

    def run(_: int, u: Tensor) -> Tensor:
        h, f1, f2, g, _t_a = gated_heads(u, ts, gated, False)
        if saved is not None:
            saved.append((f1, f2, g))
        return h

    return run


def pure_layer_heads(
    ts: Tensor, pure: Sequence[tuple[Tensor, Tensor] | None]
) -> Callable[[int, Tensor], Tensor]:
    """``layer_heads`` for pure mode: ``pure[l]`` = (w_tau, A) of layer l."""
    return lambda i, u: heads(u, ts, "pure", pure[i])


class WiredSequence(torch.autograd.Function):
    """The faithful WiredCfC over a whole window, with backpropagation through time by hand.

    ``apply(x (B, T, S), ts (B, T, 1), h0 (B, N), rec, bias, sizes, gated, *w_in)`` ->
    states (B, T, N). Forward runs :func:`wired_step` T times (exactly the operations
    ``step`` runs). Backward walks the steps in reverse with plain tensor operations,
    collects the gradients of every step's fused pre-activations, and turns them into
    weight gradients with one large matmul per weight at the end.
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
        """Run the window; saves the heads of every step and layer for the backward."""
        h, states, saved = h0, [], []
        for t in range(x.shape[1]):
            h = wired_step(x[:, t], h, w_in, rec, bias, gated_layer_heads(ts[:, t], gated, saved))
            states.append(h)
        s = torch.stack(states, dim=1)  # (B, T, N)
        ctx.save_for_backward(x, ts, h0, rec, s, *w_in)
        ctx.heads, ctx.sizes, ctx.gated = saved, list(sizes), gated
        return s

    @staticmethod
    def backward(ctx: Any, d_s: Tensor) -> tuple[Tensor | None, ...]:
        """d_s (B, T, N) -> gradients of x, h0, rec, bias and every w_in (not of ts)."""
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
                f1, f2, g = ctx.heads[t * n_layers + i]
                d_layer[i] = gated_heads_backward(parts[i], f1, f2, g, ts[:, t], ctx.gated)[0]
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

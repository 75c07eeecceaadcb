"""The fused wired-CfC path: one step in fused form, and a window with its own backward.

One step of the faithful ``WiredCfC`` (``driving.model.cfc``) in fused form: ``u = bias +
h @ rec`` gives every layer's recurrent part at once (``rec`` (N, kN) is block diagonal:
the previous state of each layer feeds only its own layer's columns); then layer by layer
``u_l += input_l @ w_in_l``, where input_l is the sensory input (l = 0) or the new state of
layer l - 1, and the layer's heads turn ``u_l`` into its new state.

:func:`wired_step` is that step written plainly (any mode, autograd goes through it): the
reference. :func:`gated_window` runs the same operations over a whole window for the
default / no_gate modes, with the per-step views and scratch tensors made once per window
instead of once per step, and optionally keeps the head activations; its states equal
:func:`wired_step`'s bit for bit (the tests check it). :class:`WiredSequence` is the
training path: ``gated_window`` forward, and a hand-written backward through time.

The backward needs no autograd graph. A layer's new state is ``h = f1 + g (f2 - f1)``
(no_gate: ``f1 + g f2``) of ``f1 = tanh(ff1)``, ``f2 = tanh(ff2)``, ``g = sigmoid(time_a
ts + time_b)``, so the gradient of its four pre-activations is the gradient of ``h`` times
four local factors: ``(1 - g)(1 - f1^2)``, ``g (1 - f2^2)``, ``ts q`` and ``q`` with
``q = (f2 - f1) g (1 - g)`` (no_gate: ``1 - f1^2``, ``g (1 - f2^2)``, ``q = f2 g (1 -
g)``). These are computed for all steps at once after the forward; the sequential part of
the backward is then one multiply per layer, one matmul per layer boundary and one matmul
through the recurrence per step. The weight gradients come from one matmul per weight
over the whole window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from driving.model.cells import gated_heads, heads

__all__ = ["WiredSequence", "gated_layer_heads", "gated_window", "pure_layer_heads", "wired_step"]


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
    widths = [w.shape[1] for w in w_in]
    u = torch.addmm(bias, h, rec).split_with_sizes(widths, dim=1)  # L x (B, k n_l)
    inp, new = x, []
    for i in range(len(w_in)):
        inp = layer_heads(i, torch.addmm(u[i], inp, w_in[i]))  # (B, n_l)
        new.append(inp)
    return torch.cat(new, dim=1)  # (B, N)


def gated_layer_heads(ts: Tensor, gated: bool) -> Callable[[int, Tensor], Tensor]:
    """``layer_heads`` of :func:`wired_step` for the default (gated) / no_gate modes."""
    return lambda _, u: gated_heads(u, ts, gated, False)[0]


def pure_layer_heads(
    ts: Tensor, pure: Sequence[tuple[Tensor, Tensor] | None]
) -> Callable[[int, Tensor], Tensor]:
    """``layer_heads`` for pure mode: ``pure[l]`` = (w_tau, A) of layer l."""
    return lambda i, u: heads(u, ts, "pure", pure[i])


# ------------------------------------------------------------------------- the window
class _Activations:
    """What the backward needs of every step, time-major, per layer l of n_l neurons.

    ``tanh[l]`` (T, B, 4 n_l): tanh of the layer's whole pre-activation (f1 and f2 are its
    first two blocks; tanh of the time heads is computed along because one tanh over the
    contiguous row is cheaper than two over strided blocks); ``gate[l]`` (T, B, n_l): g.
    Step t's slices have exactly the layout of fresh (B, .) tensors.
    """

    def __init__(self, tanh: Sequence[Tensor], gate: Sequence[Tensor]) -> None:
        self.tanh, self.gate = list(tanh), list(gate)
        self.sizes = [g.shape[-1] for g in gate]

    @classmethod
    def empty(cls, t: int, b: int, sizes: Sequence[int], like: Tensor) -> _Activations:
        """Uninitialised storage for a window of T steps at batch B."""
        return cls(
            [like.new_empty(t, b, 4 * n) for n in sizes], [like.new_empty(t, b, n) for n in sizes]
        )


def gated_window(
    x: Tensor,
    ts: Tensor,
    h: Tensor,
    w_in: Sequence[Tensor],
    rec: Tensor,
    bias: Tensor,
    gated: bool,
    keep: _Activations | None = None,
) -> list[Tensor]:
    """:func:`wired_step` (default / no_gate) over a window, autograd off.

    The same values as :func:`wired_step` (each element of tanh, lerp and addcmul does
    not depend on the layout it is computed in, and sigmoid runs on the same contiguous
    (B, n_l) tensors), with fewer and cheaper calls: scratch tensors and views are made
    once per window, and one tanh covers a layer's whole pre-activation.

    Args:
        x: (B, T, S) sensory inputs.
        ts: (B, T, 1) elapsed times.
        h: (B, N) initial state.
        w_in: Per layer l, (in_l, 4 n_l) input weights.
        rec: (N, 4N) block-diagonal recurrent weights.
        bias: (4N,) biases.
        gated: default (True) or no_gate mode.
        keep: Where to write tanh and g of every step (for the backward); None: nowhere.

    Returns:
        T states, each a fresh (B, N) tensor.
    """
    b, sizes = x.shape[0], [w.shape[1] // 4 for w in w_in]
    u_all = x.new_empty(b, 4 * sum(sizes))  # scratch, overwritten every step
    u = u_all.split([4 * n for n in sizes], dim=1)
    z = [x.new_empty(b, 4 * n) for n in sizes]
    time_heads = [zi.split(n, dim=1)[2:] for zi, n in zip(z, sizes, strict=True)]  # ta, tb
    if keep is not None:  # per layer, T-tuples of step views
        tanh_t = [th.unbind(0) for th in keep.tanh]
        f1_t = [th[..., :n].unbind(0) for th, n in zip(keep.tanh, sizes, strict=True)]
        f2_t = [th[..., n : 2 * n].unbind(0) for th, n in zip(keep.tanh, sizes, strict=True)]
        gate_t = [gt.unbind(0) for gt in keep.gate]
    states = []
    for t, (x_t, ts_t) in enumerate(zip(x.unbind(1), ts.unbind(1), strict=True)):
        torch.addmm(bias, h, rec, out=u_all)
        inp, new = x_t, []
        for i, (n, (t_a, t_b)) in enumerate(zip(sizes, time_heads, strict=True)):
            torch.addmm(u[i], inp, w_in[i], out=z[i])
            if keep is not None:
                torch.tanh(z[i], out=tanh_t[i][t])
                f1, f2 = f1_t[i][t], f2_t[i][t]
                g = torch.addcmul(t_b, t_a, ts_t, out=gate_t[i][t]).sigmoid_()
            else:
                f1, f2, _ = torch.tanh(z[i]).split_with_sizes([n, n, 2 * n], dim=1)
                g = torch.addcmul(t_b, t_a, ts_t).sigmoid_()
            inp = torch.lerp(f1, f2, g) if gated else torch.addcmul(f1, g, f2)  # (B, n_l)
            new.append(inp)
        h = torch.cat(new, dim=1)  # (B, N)
        states.append(h)
    return states


def _local_factors(acts: _Activations, ts: Tensor, gated: bool) -> list[Tensor]:
    """Local factors dh / d[ff1 | ff2 | time_a | time_b] of every step: L x (T, B, 4, n_l).

    ``ts`` (T, B, 1). The layers go through ``torch._foreach_*`` together (one call per
    operation instead of one per layer and operation).
    """
    heads = [
        th.view(*th.shape[:2], 4, n).unbind(2) for th, n in zip(acts.tanh, acts.sizes, strict=True)
    ]
    f1, f2, g = [h[0] for h in heads], [h[1] for h in heads], acts.gate
    rest = torch._foreach_add(torch._foreach_neg(g), 1.0)  # 1 - g
    slope = torch._foreach_mul(f1 + f2, f1 + f2)
    torch._foreach_neg_(slope)
    torch._foreach_add_(slope, 1.0)  # 1 - f^2 of f1 (first L) and f2 (last L)
    n_layers = len(g)
    d_ff1 = torch._foreach_mul(slope[:n_layers], rest) if gated else slope[:n_layers]
    d_ff2 = torch._foreach_mul(slope[n_layers:], g)
    q = torch._foreach_mul(torch._foreach_sub(f2, f1) if gated else f2, g)
    torch._foreach_mul_(q, rest)  # dh / d(time_a ts + time_b)
    q_ts = torch._foreach_mul(q, [ts] * n_layers)
    return [torch.stack(parts, dim=2) for parts in zip(d_ff1, d_ff2, q_ts, q, strict=True)]


class WiredSequence(torch.autograd.Function):
    """The faithful WiredCfC (default / no_gate) over a window, backward through time by hand.

    ``apply(x (B, T, S), ts (B, T, 1), h0 (B, N), rec, bias, gated, *w_in)`` -> states
    (B, T, N), equal bit for bit to unrolling :func:`wired_step`. No gradient for ``ts``
    (the caller takes the plain autograd path when elapsed time needs one).
    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, ts: Tensor, h0: Tensor, rec: Tensor, bias: Tensor, gated: bool, *w_in
    ) -> Tensor:
        """Run the window, keeping tanh and g of every step and layer."""
        sizes = [w.shape[1] // 4 for w in w_in]
        acts = _Activations.empty(x.shape[1], x.shape[0], sizes, x)
        s = torch.stack(gated_window(x, ts, h0, w_in, rec, bias, gated, acts), dim=1)
        ctx.save_for_backward(x, ts, h0, rec, s, *acts.tanh, *acts.gate, *w_in)
        ctx.sizes, ctx.gated = sizes, gated
        return s  # (B, T, N)

    @staticmethod
    def backward(ctx: Any, d_s: Tensor) -> tuple[Tensor | None, ...]:
        """d_s (B, T, N) -> gradients of x, h0, rec, bias and every w_in (not of ts)."""
        x, ts, h0, rec, s, *rest = ctx.saved_tensors
        sizes, n_layers = ctx.sizes, len(ctx.sizes)
        acts = _Activations(rest[:n_layers], rest[n_layers : 2 * n_layers])
        w_in = rest[2 * n_layers :]
        b, t_len, n = s.shape
        fac = [f.unbind(0) for f in _local_factors(acts, ts.transpose(0, 1), ctx.gated)]
        d_u = d_s.new_empty(b, t_len, 4 * n)  # gradient of every step's pre-activations
        d_u_layers = d_u.split([4 * k for k in sizes], dim=2)  # L x (B, T, 4 n_l)
        d_u4 = [d.view(b, t_len, 4, k).unbind(1) for d, k in zip(d_u_layers, sizes, strict=True)]
        d_u2 = [d.unbind(1) for d in d_u_layers]
        d_u_t, d_s_t = d_u.unbind(1), d_s.unbind(1)
        w_back = [w.t().contiguous() for w in w_in]  # (4 n_l, in_l)
        rec_back = rec.t().contiguous()  # (4N, N)
        grad = d_s.new_empty(b, n)  # dL/dh_t from the outputs and from step t + 1
        grad_2d = grad.split(sizes, dim=1)  # L x (B, n_l)
        grad_3d = [g.unsqueeze(1) for g in grad_2d]  # (B, 1, n_l)
        total = [d_s.new_empty(b, k) for k in sizes[:-1]]  # + from the next layer's input
        total_3d = [tot.unsqueeze(1) for tot in total]
        for t in reversed(range(t_len)):
            if t == t_len - 1:
                grad.copy_(d_s_t[t])
            else:  # through the recurrence of step t + 1
                torch.addmm(d_s_t[t], d_u_t[t + 1], rec_back, out=grad)
            torch.mul(grad_3d[-1], fac[-1][t], out=d_u4[-1][t])
            for i in reversed(range(n_layers - 1)):  # layer i + 1's input is layer i's state
                torch.addmm(grad_2d[i], d_u2[i + 1][t], w_back[i + 1], out=total[i])
                torch.mul(total_3d[i], fac[i][t], out=d_u4[i][t])
        bt = b * t_len
        d_flat = d_u.view(bt, 4 * n)
        h_prev = torch.cat([h0.unsqueeze(1), s[:, :-1]], dim=1).view(bt, n)
        inputs = [x.reshape(bt, -1), *s.view(bt, n).split(sizes, dim=1)[:-1]]  # (B T, in_l)
        d_layers = d_flat.split([4 * k for k in sizes], dim=1)  # (B T, 4 n_l)
        d_w_in = [torch.mm(i.t(), d) for i, d in zip(inputs, d_layers, strict=True)]
        d_x = torch.mm(d_layers[0], w_back[0]).view(x.shape) if ctx.needs_input_grad[0] else None
        d_h0 = torch.mm(d_u_t[0], rec_back) if ctx.needs_input_grad[2] else None
        d_rec = torch.mm(h_prev.t(), d_flat)  # (N, 4N)
        return (d_x, None, d_h0, d_rec, d_flat.sum(0), None, *d_w_in)

"""The effective weights of a faithful wired CfC, assembled in one autograd node.

Each NCP layer l (``driving.model.cfc``) has k heads (4: ff1, ff2, time_a, time_b; pure
mode 1: ff1), each a Linear over ``[input_l, own state]`` whose weight is multiplied by the
layer's 0/1 mask. The fused step (``driving.model.fused``) wants them as

* ``w_in[l]`` (in_l, k n_l): the input part of every head, transposed for ``addmm``;
* ``rec`` (N, k N): the own-state parts on the block diagonal;
* ``bias`` (k N,): every head's bias, layer by layer.

Built from autograd operations this takes ~40 graph nodes per call (masks, concatenations,
transposes, the block-diagonal matrix) for a few thousand numbers; :class:`FusedWiredWeights`
builds the same tensors (the same values bit for bit) with one node and writes the gradient
back by hand: the blocks are cut out again, transposed and masked, so masked weights get
exactly zero gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["FusedWiredWeights", "fuse_wired_weights"]


class FusedWiredWeights(torch.autograd.Function):
    """``apply(layout, *masks, *weights, *biases) -> (*w_in, rec, bias)``.

    ``layout`` = ((in_l, n_l, k), ...) per layer; ``masks[l]`` (k n_l, in_l + n_l) is the
    layer's head masks stacked like its weights; ``weights`` and ``biases`` are the heads'
    ``Linear.weight`` (n_l, in_l + n_l) and ``Linear.bias`` (n_l,), layer by layer.
    """

    @staticmethod
    def forward(ctx: Any, layout: tuple[tuple[int, int, int], ...], *tensors: Tensor) -> tuple:
        """Masked, fused and transposed weights (see the module docstring)."""
        n_layers, n_heads = len(layout), sum(k for _, _, k in layout)
        masks, weights = tensors[:n_layers], tensors[n_layers : n_layers + n_heads]
        biases = tensors[n_layers + n_heads :]
        w_in, rec, start = [], [], 0
        for (n_in, _, k), mask in zip(layout, masks, strict=True):
            w = (torch.cat(weights[start : start + k]) * mask).t()  # (in + n, k n)
            w_in.append(w[:n_in].contiguous())
            rec.append(w[n_in:])
            start += k
        ctx.layout = layout
        ctx.save_for_backward(*masks)
        return (*w_in, torch.block_diag(*rec), torch.cat(biases))

    @staticmethod
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        """Gradients of every head weight and bias (masked), none for layout and masks."""
        layout, masks = ctx.layout, ctx.saved_tensors
        d_w_in, d_rec, d_bias = grads[: len(layout)], grads[-2], grads[-1]
        d_weights, row, col = [], 0, 0
        for (n_in, n, k), mask, d_in in zip(layout, masks, d_w_in, strict=True):
            parts = [
                d_in if d_in is not None else mask.new_zeros(n_in, k * n),
                d_rec[row : row + n, col : col + k * n]
                if d_rec is not None
                else mask.new_zeros(n, k * n),
            ]
            d_w = torch.cat(parts).t() * mask  # (k n, in + n)
            d_weights += list(d_w.split(n))
            row, col = row + n, col + k * n
        if d_bias is None:
            d_bias = masks[0].new_zeros(sum(n * k for _, n, k in layout))
        sizes = [n for _, n, k in layout for _ in range(k)]
        return (None, *(None for _ in masks), *d_weights, *d_bias.split(sizes))


def fuse_wired_weights(
    layout: Sequence[tuple[int, int, int]],
    masks: Sequence[Tensor],
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
) -> tuple[list[Tensor], Tensor, Tensor]:
    """``(w_in list, rec, bias)`` of :class:`FusedWiredWeights`."""
    out = FusedWiredWeights.apply(tuple(layout), *masks, *weights, *biases)
    return list(out[:-2]), out[-2], out[-1]

"""CfC sequence cores: dense (``CfC``) and NCP-wired (``WiredCfC``).

The cell maths (heads, modes, ``CfCCell``) is in ``driving/model/cells.py``; the shared
interface and time loop in ``driving/model/cores.py``; the fused wired training path in
``driving/model/fused.py``; conversion from ncps modules in ``driving/model/ncps_interop.py``.

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
have no effect. States are in the wiring's state order (inter, command, motor; see
``driving/model/wiring.py``).

How it is made fast (everything is dispatch-bound at 19 neurons; ``benchmarks/cells.py``):

* masks are applied and the four heads of a layer fused into one matrix once per
  ``forward`` call, in one autograd node (``driving.model.wired_weights``), and cached
  between ``step`` calls while autograd is off and the parameters are unchanged;
* the faithful ``WiredCfC`` computes the recurrent part of all three layers with one
  matmul against a block-diagonal matrix, then one matmul per layer for its input
  (``driving.model.fused.wired_step``); a window runs the same operations with its scratch
  tensors and views made once (``driving.model.fused.gated_window``), and training adds a
  hand-written backpropagation through time (``driving.model.fused.WiredSequence``);
* the dense ``CfC`` and the ``ncps_compatible`` ``WiredCfC`` instead keep ncps's exact
  operations (one matmul per Linear over ``[x, h]``, the literal head formulas), because
  BLAS rounding depends on matrix shapes: they equal ncps bit for bit, and are slower.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from driving.model.cells import CfCCell, check_mode, head_linears, heads, per_head, xavier_init
from driving.model.cores import CoreError, StateReadoutCore, WiredCore
from driving.model.fused import (
    WiredSequence,
    gated_layer_heads,
    gated_window,
    pure_layer_heads,
    wired_step,
)
from driving.model.wired_weights import fuse_wired_weights
from driving.model.wiring import NCP

__all__ = ["CfC", "WiredCfC"]


# ------------------------------------------------------------------------------- dense CfC
class CfC(StateReadoutCore):
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

    ``cell`` (a ``CfCCell``) holds the parameters and is the readable reference for one
    step; the step here runs the same operations on pre-transposed weights.
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
        super().__init__(input_size, cache_weights=True)
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
        self.mode = mode

    @property
    def state_size(self) -> int:
        """Neurons N."""
        return self.cell.hidden_size

    @property
    def output_size(self) -> int:
        """Outputs M: ``proj_size`` if set, else N."""
        return self.fc.out_features if self.fc is not None else self.cell.hidden_size

    def _weights(self) -> dict[str, Any]:
        """Effective weights, transposed for ``addmm`` (once per call)."""
        c = self.cell
        head_modules = [c.ff1] if c.mode == "pure" else [c.ff1, c.ff2, c.time_a, c.time_b]
        linears = [m for m in c.backbone if isinstance(m, nn.Linear)] if c.backbone else []
        drops = [m for m in c.backbone if isinstance(m, nn.Dropout)] if c.backbone else []
        return {
            "heads": [(m.weight.t(), m.bias) for m in head_modules],
            "backbone": [
                (lin.weight.t(), lin.bias, drops[i - 1] if i > 0 and drops else None)
                for i, lin in enumerate(linears)
            ],
            "pure": (c.w_tau, c.A) if c.mode == "pure" else None,
        }

    def _update(self, x: Tensor, ts: Tensor, h: Tensor, w: dict[str, Any]) -> Tensor:
        """One step: x (B, F), ts (B, 1), h (B, N) -> new h (B, N).

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
        return heads(per_head(z, w["heads"]), ts, c.mode, w["pure"], literal=True)

    def _readout(self, h: Tensor) -> Tensor:
        return self.fc(h) if self.fc is not None else h


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
        for name, part in head_linears(n_in + n, n, mode).items():
            setattr(self, name, part)
        xavier_init(self)
        self.register_buffer("ff_mask", torch.as_tensor(ff_mask, dtype=torch.float32))
        self.register_buffer("time_mask", torch.as_tensor(time_mask, dtype=torch.float32))

    @property
    def head_names(self) -> list[str]:
        """The heads' Linear names: ff1, ff2, time_a, time_b (pure mode: ff1)."""
        return ["ff1"] if self.mode == "pure" else ["ff1", "ff2", "time_a", "time_b"]

    def head_mask(self, name: str) -> Tensor:
        """The 0/1 mask (n, in + n) of head ``name``."""
        return self.time_mask if name.startswith("time") else self.ff_mask

    def effective_heads(self) -> list[tuple[Tensor, Tensor]]:
        """Masked heads one by one: [(weight (in + n, n) transposed, bias (n,)), ...]."""
        heads = [getattr(self, name) for name in self.head_names]
        masks = [self.head_mask(name) for name in self.head_names]
        return [((lin.weight * m).t(), lin.bias) for lin, m in zip(heads, masks, strict=True)]


class _WiredWeights(NamedTuple):
    """Effective weights of one ``WiredCfC`` call (see ``WiredCfC._weights``)."""

    w_in: list[Tensor]  # per layer (in_l, k n_l); faithful path only
    rec: Tensor | None  # (N, k N) block diagonal; faithful path only
    bias: Tensor | None  # (k N,); faithful path only
    pure: list[tuple[Tensor, Tensor] | None]  # per layer (w_tau, A) in pure mode
    layer_heads: list[list[tuple[Tensor, Tensor]]]  # ncps path: per layer, head by head


class WiredCfC(WiredCore):
    """CfC on an NCP wiring: inter -> command -> motor layers, masked to the wiring.

    Args:
        input_size: Sensory inputs S (the wiring is built for it; a wiring built for another
            width is an error).
        wiring: An ``NCP`` / ``AutoNCP`` / ``MatrixNCP`` from ``driving.model.wiring``.
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
        super().__init__(input_size, cache_weights=True)
        check_mode(mode)
        if not isinstance(wiring, NCP):
            raise CoreError(
                f"wiring must be a driving.model.wiring.NCP, got {type(wiring).__name__}"
            )
        wiring.build(input_size)
        self.wiring, self.mode, self.ncps_compatible = wiring, mode, ncps_compatible
        adj = np.abs(wiring.state_adjacency)  # (N, N) [src, dst], polarity dropped
        sens = np.abs(wiring.state_sensory_adjacency)  # (S, N)
        bounds = np.cumsum([0, *wiring.layer_sizes])
        spans = [slice(bounds[i], bounds[i + 1]) for i in range(3)]
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

    def _weights(self) -> _WiredWeights:
        """Per-call effective weights (masks applied once per call).

        Faithful path: input parts, block-diagonal recurrence, bias. The ncps-compatible
        path: each layer's heads one by one. Both: the pure-mode parameters.
        """
        pure = [(layer.w_tau, layer.A) if self.mode == "pure" else None for layer in self.layers]
        if self.ncps_compatible:
            return _WiredWeights([], None, None, pure, [m.effective_heads() for m in self.layers])
        layout, masks, weights, biases = [], [], [], []
        for layer in self.layers:
            names = layer.head_names
            layout.append((int(layer.n_in), int(layer.n), len(names)))
            masks.append(torch.cat([layer.head_mask(name) for name in names]))  # (k n, in + n)
            weights += [getattr(layer, name).weight for name in names]
            biases += [getattr(layer, name).bias for name in names]
        # rec (N, kN): the previous state of each layer feeds only its own layer's columns.
        w_in, rec, bias = fuse_wired_weights(layout, masks, weights, biases)
        return _WiredWeights(w_in, rec, bias, pure, [])

    def _update(self, x: Tensor, ts: Tensor, h: Tensor, w: _WiredWeights) -> Tensor:
        """One step: x (B, S), ts (B, 1), h (B, N) -> new h (B, N)."""
        if self.ncps_compatible:
            return self._ncps_step(x, ts, h, w)
        if self.mode == "pure":
            layer_heads = pure_layer_heads(ts, w.pure)
        else:
            layer_heads = gated_layer_heads(ts, self.mode == "default")
        return wired_step(x, h, w.w_in, w.rec, w.bias, layer_heads)

    def _readout(self, h: Tensor) -> Tensor:
        return h[..., -self.output_size :]  # the motor neurons are the last M states

    def _ncps_step(self, x: Tensor, ts: Tensor, h: Tensor, w: _WiredWeights) -> Tensor:
        """The ncps operation order: per layer one matmul per head over ``[input, own state]``."""
        inp, new = x, []
        for i, h_l in enumerate(h.split(self._sizes, dim=1)):
            u = per_head(torch.cat([inp, h_l], dim=1), w.layer_heads[i])  # (B, kn)
            inp = heads(u, ts, self.mode, w.pure[i], literal=True)
            new.append(inp)
        return torch.cat(new, dim=1)

    def _sequence(
        self, x: Tensor, ts: Tensor, h: Tensor, w: _WiredWeights
    ) -> tuple[Tensor, Tensor]:
        grad = torch.is_grad_enabled()
        if not self.ncps_compatible and self.mode != "pure" and not (grad and ts.requires_grad):
            gated = self.mode == "default"  # the fused window: the same values as _update
            if grad:  # training: hand-written backward through time
                s = WiredSequence.apply(x, ts, h, w.rec, w.bias, gated, *w.w_in)
            else:
                s = torch.stack(gated_window(x, ts, h, w.w_in, w.rec, w.bias, gated), dim=1)
            return self._readout(s), s
        return super()._sequence(x, ts, h, w)

    def masked_parameter_count(self) -> int:
        """Trainable entries that are real connections (masked-out weights excluded)."""
        total = 0
        for layer in self.layers:
            for name, p in layer.named_parameters():
                if name.endswith("weight"):
                    total += int(layer.head_mask(name).sum())
                else:
                    total += p.numel()
        return total

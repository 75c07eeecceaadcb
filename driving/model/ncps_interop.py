"""Taking over modules of the reference package ncps 1.0.1, weights and wiring included.

:func:`from_ncps` turns an ncps ``CfC`` (dense, or on an ``NCP`` / ``AutoNCP`` wiring) or
``LTC`` into our equivalent core with the same weights, wrapped in :class:`NcpsStyle` so
that it is called like the ncps module. The wiring is read from the ncps module's own
matrices (``adjacency_matrix``, ``sensory_adjacency_matrix``), never rebuilt from a seed:
ncps does not record an NCP wiring's seed, and a wiring ncps built twice holds more
synapses than its arguments draw. A wired CfC becomes an ``ncps_compatible`` ``WiredCfC``
(ncps's numerics, see ``driving/model/cfc.py``); the tests check bit-identical outputs.

ncps is only read through the module's attributes: it is not imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from driving.model.cfc import CfC, WiredCfC
from driving.model.cores import CoreError
from driving.model.ltc import INPUT_MAPPINGS, LTC
from driving.model.wiring import MatrixNCP

__all__ = ["NcpsStyle", "from_ncps", "wiring_from_ncps"]


def from_ncps(module: nn.Module) -> NcpsStyle:
    """Our core with the weights of an ncps ``CfC`` or ``LTC`` wrapper module.

    Args:
        module: ncps ``CfC(input_size, units_or_wiring, ...)`` or ``LTC(input_size,
            wiring, ...)``; a wiring must be an ``NCP`` or ``AutoNCP`` (any sizes, seeds).

    Returns:
        An ``NcpsStyle`` wrapper (call it like ncps) around the new core (``.core``: a
        ``CfC``, an ``ncps_compatible`` ``WiredCfC`` or an ``LTC``).

    Raises:
        CoreError: Not an ncps wrapper, ``mixed_memory=True``, or another kind of wiring.
    """
    if not hasattr(module, "rnn_cell") or not hasattr(module, "state_size"):
        raise CoreError(f"expected an ncps CfC/LTC wrapper module, got {type(module).__name__}")
    if getattr(module, "use_mixed", False):
        raise CoreError("ncps modules with mixed_memory=True are not supported by from_ncps")
    cell = module.rnn_cell
    kind = type(cell).__name__
    if kind == "CfCCell":
        return NcpsStyle(_dense_from_ncps(module, cell), module)
    if kind == "WiredCfCCell":
        return NcpsStyle(_wired_from_ncps(module, cell), module)
    if kind == "LTCCell":
        ours = _ltc_from_ncps(module, cell)
        return NcpsStyle(ours, module, hx_order=np.asarray(ours.wiring.ncps_ids))
    raise CoreError(f"unsupported ncps cell {kind}")


def wiring_from_ncps(ncps_wiring: Any) -> MatrixNCP:
    """Our wiring with exactly the synapses of a built ncps ``NCP`` / ``AutoNCP``."""
    name = type(ncps_wiring).__name__
    sizes = [getattr(ncps_wiring, f"_num_{k}_neurons", None) for k in ("inter", "command", "motor")]
    if None in sizes:  # FullyConnected, Random, a bare Wiring: no inter/command/motor layers
        raise CoreError(
            f"only ncps NCP/AutoNCP wirings (inter, command and motor layers) are supported, "
            f"got {name}"
        )
    if not ncps_wiring.is_built():
        raise CoreError(f"the ncps {name} wiring is not built")
    return MatrixNCP(
        *sizes,
        adjacency_matrix=ncps_wiring.adjacency_matrix,
        sensory_adjacency_matrix=ncps_wiring.sensory_adjacency_matrix,
    )


# ---------------------------------------------------------------------------- converters
def _dense_from_ncps(module: nn.Module, cell: nn.Module) -> CfC:
    """Our dense CfC from an ncps ``CfC(input_size, int_units, ...)``."""
    if getattr(cell, "sparsity_mask", None) is not None:
        raise CoreError("ncps CfCCell with a sparsity_mask is not supported; use a wiring")
    backbone = list(cell.backbone) if cell.backbone_layers else []
    linears = [m for m in backbone if isinstance(m, nn.Linear)]
    drops = [m.p for m in backbone if isinstance(m, nn.Dropout)]
    fc = module.fc if isinstance(module.fc, nn.Linear) else None
    ours = CfC(
        input_size=module.input_size,
        units=cell.hidden_size,
        mode=cell.mode,
        backbone_activation=_activation_name([type(m).__name__ for m in backbone]),
        backbone_units=linears[0].out_features if linears else 128,
        backbone_layers=cell.backbone_layers,
        backbone_dropout=drops[0] if drops else 0.0,
        proj_size=fc.out_features if fc is not None else None,
    )
    sd = {k: v for k, v in cell.state_dict().items() if k != "sparsity_mask"}
    ours.cell.load_state_dict(sd, strict=True)
    if fc is not None:
        ours.fc.load_state_dict(fc.state_dict())
    return ours


def _activation_name(module_names: Sequence[str]) -> str:
    names = {"LeCun": "lecun_tanh", "Tanh": "tanh", "ReLU": "relu", "SiLU": "silu", "GELU": "gelu"}
    return next((names[n] for n in module_names if n in names), "lecun_tanh")


def _wired_from_ncps(module: nn.Module, cell: nn.Module) -> WiredCfC:
    """An ``ncps_compatible`` WiredCfC from an ncps ``CfC(input_size, wiring)``."""
    wiring = wiring_from_ncps(cell._wiring)
    mode = getattr(cell.layer_0, "mode", "default")
    ours = WiredCfC(module.input_size, wiring, mode=mode, ncps_compatible=True)
    for i, layer in enumerate(ours.layers):
        sd = dict(getattr(cell, f"layer_{i}").state_dict())
        _check_mask(sd.pop("sparsity_mask"), layer.ff_mask, f"layer_{i}")
        sd["ff_mask"], sd["time_mask"] = layer.ff_mask, layer.time_mask
        layer.load_state_dict(sd, strict=True)
    return ours


def _ltc_from_ncps(module: nn.Module, cell: nn.Module) -> LTC:
    """Our LTC from an ncps ``LTC(input_size, wiring)``, parameters permuted to state order."""
    wiring = wiring_from_ncps(cell._wiring)
    ours = LTC(
        module.input_size,
        wiring,
        ode_unfolds=cell._ode_unfolds,
        epsilon=cell._epsilon,
        input_mapping=cell._input_mapping if cell._input_mapping in INPUT_MAPPINGS else "none",
        output_mapping=cell._output_mapping if cell._output_mapping in INPUT_MAPPINGS else "none",
        implicit_param_constraints=cell._implicit_param_constraints,
    )
    ids = torch.as_tensor(wiring.ncps_ids)
    sd = {}
    for name, value in cell.state_dict().items():
        if name in ("gleak", "vleak", "cm"):
            value = value[ids]  # (N,) ncps ids -> state order
        elif name in ("sigma", "mu", "w", "erev", "sparsity_mask"):
            value = value[ids][:, ids]  # (N, N)
        elif name.startswith("sensory_"):
            value = value[:, ids]  # (S, N)
        sd[name] = value
    for name in ("sparsity_mask", "sensory_sparsity_mask"):
        _check_mask(sd[name], getattr(ours, name), name)
    ours.load_state_dict(sd, strict=True)
    return ours


def _check_mask(theirs: Tensor, ours: Tensor, what: str) -> None:
    if not torch.equal(theirs.to(ours), ours):
        raise CoreError(
            f"ncps {what} mask differs from its wiring's matrices: was the wiring built again "
            "after the model (ncps adds synapses on every build)?"
        )


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

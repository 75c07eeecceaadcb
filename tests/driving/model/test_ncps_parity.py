"""Our CfC / WiredCfC / LTC reproduce the installed ncps 1.0.1 numerically (ncps_interop).

ncps's wrappers mishandle batched timespans (issues 81-83: an error for B != units, silently
wrong for B == units), so the reference here steps ncps's own cell with ts of shape (B, 1),
the documented work-around; at batch 1 the ncps wrapper itself is compared too.
"""

import ncps.torch as nt
import ncps.wirings as nw
import numpy as np
import pytest
import torch

from driving.model.cfc import CfC, WiredCfC
from driving.model.cores import CoreError
from driving.model.ltc import LTC
from driving.model.ncps_interop import NcpsStyle, from_ncps

T = 12


def _ncps_reference(module, x, ts, hx):
    """Step ncps's cell with per-sample ts (B, 1); returns (outputs (B, T, M), h (B, N))."""
    h = torch.zeros(x.shape[0], module.state_size) if hx is None else hx
    outs = []
    for t in range(x.shape[1]):
        out, h = module.rnn_cell(x[:, t], h, ts[:, t].reshape(-1, 1))
        outs.append(module.fc(out) if hasattr(module, "fc") else out)
    return torch.stack(outs, 1), h


def _inputs(batch, features, seed, with_state=None):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, T, features, generator=gen)
    ts = torch.rand(batch, T, generator=gen) * 2.0 + 0.05  # random elapsed times
    hx = None if with_state is None else torch.randn(batch, with_state, generator=gen) * 0.5
    return x, ts, hx


def _check(ours, ref, batch, features, tol, seed, state=None):
    x, ts, hx = _inputs(batch, features, seed, state)
    with torch.no_grad():
        y_ref, h_ref = _ncps_reference(ref, x, ts, hx)
        y, h = ours(x, hx, ts)
        y3, h3 = ours(x, hx, ts.unsqueeze(-1))  # (B, T, 1) accepted as well
    assert y.shape == y_ref.shape and h.shape == h_ref.shape
    assert (y - y_ref).abs().max().item() <= tol
    assert (h - h_ref).abs().max().item() <= tol
    assert torch.equal(y, y3) and torch.equal(h, h3)
    if batch == 1:  # the ncps wrapper is right at batch 1: compare with it directly
        with torch.no_grad():
            y_w, h_w = ref(x, hx, ts)
        assert (y - y_w).abs().max().item() <= tol and (h - h_w).abs().max().item() <= tol


DENSE_CASES = [  # (backbone kwargs, batch): every batch size on the ncps default backbone
    *(({}, batch) for batch in (1, 7, 19)),  # 1 x 128 lecun_tanh
    ({"backbone_layers": 0}, 19),
    ({"backbone_layers": 2, "backbone_units": 24, "backbone_dropout": 0.2}, 7),
    ({"backbone_layers": 1, "backbone_units": 16, "activation": "silu", "proj_size": 3}, 1),
]


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
@pytest.mark.parametrize(("backbone", "batch"), DENSE_CASES, ids=lambda v: str(v))
def test_dense_cfc_matches_ncps(mode, backbone, batch):
    torch.manual_seed(1)
    ref = nt.CfC(10, 19, mode=mode, **backbone).eval()
    ours = from_ncps(ref).eval()
    assert isinstance(ours, NcpsStyle) and isinstance(ours.core, CfC)
    _check(ours, ref, batch, 10, 1e-6, seed=batch, state=19)


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
@pytest.mark.parametrize("batch", [1, 7, 19])
def test_wired_cfc_matches_ncps_autoncp(mode, batch):
    torch.manual_seed(2)
    ref = nt.CfC(32, nw.AutoNCP(19, 1), mode=mode)
    ours = from_ncps(ref)
    assert ours.core.ncps_compatible and ours.core.wiring.total_synapse_count == 206
    _check(ours, ref, batch, 32, 1e-6, seed=10 + batch, state=19)


@pytest.mark.parametrize("batch", [1, 7, 19])
def test_wired_cfc_matches_ncps_paper_wiring(batch):
    torch.manual_seed(3)
    ref = nt.CfC(32, nw.NCP(12, 6, 1, 6, 4, 6, 6, seed=20190120))
    ours = from_ncps(ref)  # no seed needed: the wiring is read from ncps's matrices
    assert ours.core.wiring.total_synapse_count == 252
    _check(ours, ref, batch, 32, 1e-6, seed=20 + batch)


NCPS_WIRINGS = [  # (ncps wiring factory, inputs): sizes and seeds ncps does not record
    (lambda: nw.NCP(12, 6, 1, 6, 4, 6, 6, seed=1), 32),
    (lambda: nw.NCP(5, 4, 2, 3, 2, 0, 2, seed=7), 9),
    (lambda: nw.NCP(20, 10, 3, 5, 4, 8, 3, seed=99), 16),
    (lambda: nw.NCP(8, 5, 4, 4, 3, 5, 5), 6),  # ncps's default seed
    (lambda: nw.AutoNCP(19, 1, seed=0), 32),
    (lambda: nw.AutoNCP(32, 8, seed=5), 12),
    (lambda: nw.AutoNCP(16, 3, sparsity_level=0.3, seed=123), 7),
    (lambda: nw.AutoNCP(40, 4, sparsity_level=0.8, seed=2024), 20),
]


@pytest.mark.parametrize("index", range(len(NCPS_WIRINGS)))
@pytest.mark.parametrize("module", [nt.CfC, nt.LTC])
def test_from_ncps_reads_any_ncp_wiring_from_its_matrices(index, module):
    make, inputs = NCPS_WIRINGS[index]
    torch.manual_seed(index)
    wiring = make()
    wiring.build(inputs)  # the module builds it again: ncps adds synapses on every build
    ref = module(inputs, wiring)
    ours = from_ncps(ref)
    np.testing.assert_array_equal(ours.core.wiring.adjacency_matrix, wiring.adjacency_matrix)
    np.testing.assert_array_equal(
        ours.core.wiring.sensory_adjacency_matrix, wiring.sensory_adjacency_matrix
    )
    state = wiring.units if module is nt.LTC else None  # hx in ncps id order
    _check(ours, ref, 5, inputs, 1e-5, seed=40 + index, state=state)
    wiring.build(inputs)  # built again after the module was made: its masks are now stale
    with pytest.raises(CoreError, match="built again"):
        from_ncps(ref)


def test_from_ncps_picks_the_matching_core():
    assert isinstance(from_ncps(nt.CfC(8, 6)).core, CfC)
    assert isinstance(from_ncps(nt.CfC(32, nw.AutoNCP(19, 1))).core, WiredCfC)
    assert isinstance(from_ncps(nt.LTC(32, nw.AutoNCP(19, 1))).core, LTC)


@pytest.mark.parametrize("batch", [1, 7, 19])
@pytest.mark.parametrize("wiring", ["auto", "paper"])
def test_ltc_matches_ncps(batch, wiring):
    torch.manual_seed(4)
    if wiring == "auto":
        ref = nt.LTC(32, nw.AutoNCP(19, 1))
    else:
        ref = nt.LTC(32, nw.NCP(12, 6, 1, 6, 4, 6, 6, seed=20190120))
    with torch.no_grad():  # move parameters off their init so the permutation matters
        for p in ref.rnn_cell.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    ours = from_ncps(ref)
    _check(ours, ref, batch, 32, 1e-5, seed=30 + batch, state=19)  # hx in ncps id order


def test_ncps_wrapper_is_silently_wrong_at_batch_equal_units_and_ours_is_not():
    torch.manual_seed(5)
    ref = nt.CfC(32, 19)
    ours = from_ncps(ref)
    x, ts, _ = _inputs(19, 32, seed=6)
    with torch.no_grad():
        y_ref, _ = _ncps_reference(ref, x, ts, None)
        y_wrapper, _ = ref(x, None, ts)  # broadcasts ts over the units axis
        y, _ = ours(x, None, ts)
    assert (y - y_ref).abs().max() <= 1e-6
    assert (y_wrapper - y_ref).abs().max() > 1e-3


def test_ncps_style_layouts_unbatched_time_major_and_last_output():
    torch.manual_seed(7)
    ref = nt.CfC(8, 6, batch_first=False, return_sequences=False, backbone_units=8)
    ours = from_ncps(ref)
    x = torch.randn(T, 3, 8)  # (T, B, F)
    with torch.no_grad():
        y_ref, h_ref = ref(x)
        y, h = ours(x)
        y1, h1 = from_ncps(nt.CfC(8, 6, backbone_units=8))(torch.randn(T, 8))
    assert y.shape == y_ref.shape == (3, 6)
    assert (y - y_ref).abs().max() <= 1e-6 and (h - h_ref).abs().max() <= 1e-6
    assert y1.shape == (T, 6) and h1.shape == (6,)


def test_from_ncps_rejects_what_it_cannot_mirror():
    with pytest.raises(CoreError, match="mixed_memory"):
        from_ncps(nt.CfC(8, 6, mixed_memory=True))
    with pytest.raises(CoreError, match="NCP/AutoNCP"):
        from_ncps(nt.CfC(32, nw.FullyConnected(19, 1)))
    with pytest.raises(CoreError, match="NCP/AutoNCP"):
        from_ncps(nt.LTC(32, nw.Random(19, 1, sparsity_level=0.5)))
    with pytest.raises(CoreError, match="wrapper"):
        from_ncps(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
def test_ncps_compatible_and_dense_are_bit_identical_to_ncps(mode):
    """Same operations on the same shapes as ncps: not just close, equal."""
    torch.manual_seed(8)
    for ref, ours in (
        (wired := nt.CfC(32, nw.AutoNCP(19, 1), mode=mode), from_ncps(wired)),
        (dense := nt.CfC(32, 19, mode=mode), from_ncps(dense)),
    ):
        x, ts, hx = _inputs(7, 32, seed=9, with_state=19)
        with torch.no_grad():
            y_ref, h_ref = _ncps_reference(ref, x, ts, hx)
            y, h = ours(x, hx, ts)
        assert torch.equal(y, y_ref) and torch.equal(h, h_ref)

"""Our CfC / WiredCfC / LTC reproduce the installed ncps 1.0.1 numerically (from_ncps).

ncps's wrappers mishandle batched timespans (issues 81-83: an error for B != units, silently
wrong for B == units), so the reference here steps ncps's own cell with ts of shape (B, 1),
the documented work-around; at batch 1 the ncps wrapper itself is compared too.
"""

import ncps.torch as nt
import ncps.wirings as nw
import pytest
import torch

from driving.model.cfc import CfC, CfCError, NcpsStyle, WiredCfC
from driving.model.ltc import LTC

T = 12


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    ours = CfC.from_ncps(ref).eval()
    assert isinstance(ours, NcpsStyle) and isinstance(ours.core, CfC)
    _check(ours, ref, batch, 10, 1e-6, seed=batch, state=19)


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
@pytest.mark.parametrize("batch", [1, 7, 19])
def test_wired_cfc_matches_ncps_autoncp(mode, batch):
    torch.manual_seed(2)
    ref = nt.CfC(32, nw.AutoNCP(19, 1), mode=mode)
    ours = WiredCfC.from_ncps(ref)
    assert ours.core.ncps_compatible and ours.core.wiring.total_synapse_count == 206
    _check(ours, ref, batch, 32, 1e-6, seed=10 + batch, state=19)


@pytest.mark.parametrize("batch", [1, 7, 19])
def test_wired_cfc_matches_ncps_paper_wiring(batch):
    torch.manual_seed(3)
    ref = nt.CfC(32, nw.NCP(12, 6, 1, 6, 4, 6, 6, seed=20190120))
    ours = WiredCfC.from_ncps(ref, wiring_seed=20190120)
    assert ours.core.wiring.total_synapse_count == 252
    _check(ours, ref, batch, 32, 1e-6, seed=20 + batch)


def test_ncps_ncp_wiring_needs_its_seed():
    ref = nt.CfC(32, nw.NCP(12, 6, 1, 6, 4, 6, 6, seed=20190120))
    with pytest.raises(CfCError, match="wiring_seed"):
        WiredCfC.from_ncps(ref)
    with pytest.raises(CfCError, match="differ"):
        WiredCfC.from_ncps(ref, wiring_seed=1)


@pytest.mark.parametrize("batch", [1, 7, 19])
@pytest.mark.parametrize("wiring", ["auto", "paper"])
def test_ltc_matches_ncps(batch, wiring):
    torch.manual_seed(4)
    if wiring == "auto":
        ref, seed = nt.LTC(32, nw.AutoNCP(19, 1)), None
    else:
        ref, seed = nt.LTC(32, nw.NCP(12, 6, 1, 6, 4, 6, 6, seed=20190120)), 20190120
    with torch.no_grad():  # move parameters off their init so the permutation matters
        for p in ref.rnn_cell.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    ours = LTC.from_ncps(ref, wiring_seed=seed)
    _check(ours, ref, batch, 32, 1e-5, seed=30 + batch, state=19)  # hx in ncps id order


def test_ncps_wrapper_is_silently_wrong_at_batch_equal_units_and_ours_is_not():
    torch.manual_seed(5)
    ref = nt.CfC(32, 19)
    ours = CfC.from_ncps(ref)
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
    ours = CfC.from_ncps(ref)
    x = torch.randn(T, 3, 8)  # (T, B, F)
    with torch.no_grad():
        y_ref, h_ref = ref(x)
        y, h = ours(x)
        y1, h1 = CfC.from_ncps(nt.CfC(8, 6, backbone_units=8))(torch.randn(T, 8))
    assert y.shape == y_ref.shape == (3, 6)
    assert (y - y_ref).abs().max() <= 1e-6 and (h - h_ref).abs().max() <= 1e-6
    assert y1.shape == (T, 6) and h1.shape == (6,)


def test_from_ncps_rejects_what_it_cannot_mirror():
    with pytest.raises(CfCError, match="mixed_memory"):
        CfC.from_ncps(nt.CfC(8, 6, mixed_memory=True))
    with pytest.raises(CfCError, match="int units"):
        CfC.from_ncps(nt.CfC(32, nw.AutoNCP(19, 1)))
    with pytest.raises(CfCError, match="wiring"):
        WiredCfC.from_ncps(nt.CfC(8, 6))
    with pytest.raises(CfCError, match="wrapper"):
        LTC.from_ncps(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
def test_ncps_compatible_and_dense_are_bit_identical_to_ncps(mode):
    """Same operations on the same shapes as ncps: not just close, equal."""
    torch.manual_seed(8)
    for ref, ours in (
        (wired := nt.CfC(32, nw.AutoNCP(19, 1), mode=mode), WiredCfC.from_ncps(wired)),
        (dense := nt.CfC(32, 19, mode=mode), CfC.from_ncps(dense)),
    ):
        x, ts, hx = _inputs(7, 32, seed=9, with_state=19)
        with torch.no_grad():
            y_ref, h_ref = _ncps_reference(ref, x, ts, hx)
            y, h = ours(x, hx, ts)
        assert torch.equal(y, y_ref) and torch.equal(h, h_ref)

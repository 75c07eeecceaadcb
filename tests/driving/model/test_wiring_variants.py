"""driving.model.wiring_variants: the NCP's synapse counts at random, and the full NCP."""

import json

import numpy as np
import pytest

from driving.model.wiring import NCP, MatrixNCP, default_steering_wiring, wiring_from_dict
from driving.model.wiring_variants import FullNCP, RandomNCP, block_masks

NCPS = [  # (args, inputs): the default steering NCP, one with fill-in synapses, a small one
    ((12, 6, 1, 6, 4, 6, 6, 20190120), 32),
    ((20, 10, 3, 5, 4, 8, 3, 99), 7),
    ((5, 4, 2, 3, 2, 3, 2, 7), 5),
]


def _block_counts(wiring):
    """Synapses per block of block_masks (ncps id order)."""
    matrices = {"internal": wiring.adjacency_matrix, "sensory": wiring.sensory_adjacency_matrix}
    masks = block_masks(wiring, wiring.input_dim)
    return {b: int(np.count_nonzero(matrices[m][mask])) for b, (m, mask) in masks.items()}


def _as_matrix_ncp(w):
    """MatrixNCP refuses any synapse outside sensory -> inter -> command -> motor."""
    return MatrixNCP(
        w.inter_neurons, w.command_neurons, w.motor_neurons,
        w.adjacency_matrix, w.sensory_adjacency_matrix,
    )  # fmt: skip


@pytest.mark.parametrize(("args", "inputs"), NCPS)
def test_random_wiring_has_the_ncps_synapse_count_in_every_block(args, inputs):
    ncp = NCP(*args).build(inputs)
    rand = RandomNCP.like(ncp).build(inputs)
    assert _block_counts(rand) == _block_counts(ncp)
    assert rand.synapse_counts() == ncp.synapse_counts()
    assert rand.group_sizes == ncp.group_sizes
    _as_matrix_ncp(rand)  # nothing outside the NCP's allowed pairs
    # Placed anew: the synapses are not the NCP's (the counts alone are kept).
    assert not np.array_equal(
        np.abs(rand.sensory_adjacency_matrix), np.abs(ncp.sensory_adjacency_matrix)
    )
    assert set(np.unique(rand.sensory_adjacency_matrix)) == {-1, 0, 1}


def test_random_default_wiring_matches_the_ncp_exactly_and_leaves_no_neuron_cut_off():
    ncp = default_steering_wiring()
    rand = RandomNCP.like(ncp).build(32)
    assert rand.synapse_counts() == {
        "sensory_inter": 192, "inter_command": 48, "command_command": 6, "command_motor": 6,
        "total": 252,
    }  # fmt: skip
    a, s = np.abs(rand.state_adjacency), np.abs(rand.state_sensory_adjacency)
    g = rand.groups
    inter, command = list(g["inter"]), list(g["command"])
    assert s[:, inter].sum(0).min() > 0 and a[inter].sum(1).min() > 0  # every inter: in, out
    assert a[:, command].sum(0).min() > 0 and a[command].sum(1).min() > 0  # every command


def test_random_wiring_is_seeded_and_round_trips():
    a = RandomNCP(12, 6, 1, 6, 4, 6, 6, seed=3).build(32)
    assert a == RandomNCP(12, 6, 1, 6, 4, 6, 6, seed=3).build(32)
    b = RandomNCP(12, 6, 1, 6, 4, 6, 6, seed=4).build(32)
    assert not np.array_equal(a.sensory_adjacency_matrix, b.sensory_adjacency_matrix)
    for w in (a, FullNCP(12, 6, 1, seed=3).build(32)):
        back = wiring_from_dict(json.loads(json.dumps(w.to_dict())))
        assert type(back) is type(w) and back == w
    tampered = a.to_dict()
    tampered["sensory_adjacency_matrix"][0] = [0] * 19
    with pytest.raises(ValueError, match="differs from the one"):
        wiring_from_dict(tampered)


def test_full_wiring_connects_every_allowed_pair_and_nothing_else():
    ncp = default_steering_wiring()
    full = FullNCP.like(ncp).build(32)
    assert full.synapse_counts() == {
        "sensory_inter": 32 * 12, "inter_command": 12 * 6, "command_command": 6 * 6,
        "command_motor": 6, "total": 498,
    }  # fmt: skip
    for matrix, mask in block_masks(full, 32).values():
        m = full.sensory_adjacency_matrix if matrix == "sensory" else full.adjacency_matrix
        assert np.all(m[mask] != 0)
    _as_matrix_ncp(full)
    assert full.config() == {"inter_neurons": 12, "command_neurons": 6, "motor_neurons": 1,
                             "seed": 20190120}  # fmt: skip
    signs = full.adjacency_matrix[full.adjacency_matrix != 0]
    assert 0.3 < (signs > 0).mean() < 0.7  # polarities drawn +-1, as the NCP draws them

"""driving.model.wiring: exact ncps 1.0.1 adjacency, idempotent build, one neuron order."""

import ast
import hashlib
import json
from pathlib import Path

import ncps.wirings as nw
import numpy as np
import pytest

from driving.model.wiring import (
    DEFAULT_STEERING_NCP,
    NCP,
    AutoNCP,
    MatrixNCP,
    WiringError,
    default_steering_wiring,
    wiring_from_dict,
)

CONFIGS = [
    ("AutoNCP", (19, 1), {}),
    ("AutoNCP", (19, 1), {"seed": 0}),
    ("AutoNCP", (32, 8), {}),
    ("AutoNCP", (16, 3), {"sparsity_level": 0.3, "seed": 5}),
    ("AutoNCP", (40, 4), {"sparsity_level": 0.8, "seed": 123}),
    ("NCP", (12, 6, 1, 6, 4, 6, 6), {"seed": 20190120}),
    ("NCP", (12, 6, 1, 6, 4, 4, 6), {}),
    ("NCP", (5, 4, 2, 3, 2, 0, 2), {"seed": 7}),
    ("NCP", (20, 10, 3, 5, 4, 8, 3), {"seed": 99}),
]


def _pair(kind, args, kwargs, inputs):
    ours = (AutoNCP if kind == "AutoNCP" else NCP)(*args, **kwargs).build(inputs)
    ref = (nw.AutoNCP if kind == "AutoNCP" else nw.NCP)(*args, **kwargs)
    ref.build(inputs)
    return ours, ref


@pytest.mark.parametrize("inputs", [32, 7])
@pytest.mark.parametrize(("kind", "args", "kwargs"), CONFIGS)
def test_matrices_equal_ncps_exactly(kind, args, kwargs, inputs):
    ours, ref = _pair(kind, args, kwargs, inputs)
    np.testing.assert_array_equal(ours.adjacency_matrix, ref.adjacency_matrix)
    np.testing.assert_array_equal(ours.sensory_adjacency_matrix, ref.sensory_adjacency_matrix)
    assert ours.units == ref.units and ours.output_dim == ref.output_dim
    assert ours.synapse_count == int(np.abs(ref.adjacency_matrix).sum())


def test_golden_counts_and_hash():
    auto = AutoNCP(19, 1).build(32)
    assert auto.total_synapse_count == 206
    assert auto.synapse_counts() == {
        "sensory_inter": 160,
        "inter_command": 33,
        "command_command": 6,
        "command_motor": 7,
        "total": 206,
    }
    digest = hashlib.sha256(auto.adjacency_matrix.astype(np.int32).tobytes()).hexdigest()
    assert digest == "b530dfd69f99f4c399db1f00e5172956328ce557cc06d5fec3b3fdacdd96a9f8"
    paper = NCP(12, 6, 1, 6, 4, 6, 6, seed=20190120).build(32)
    assert paper.total_synapse_count == 252
    assert default_steering_wiring() == paper
    assert paper.layer_sizes == (12, 6, 1)


def test_build_is_idempotent_and_refuses_another_width():
    w = AutoNCP(19, 1)
    w.build(32)
    first = (w.adjacency_matrix, w.sensory_adjacency_matrix, w.total_synapse_count)
    w.build(32)
    assert w.total_synapse_count == first[2] == 206
    np.testing.assert_array_equal(w.adjacency_matrix, first[0])
    np.testing.assert_array_equal(w.sensory_adjacency_matrix, first[1])
    with pytest.raises(WiringError, match="input_dim=32"):
        w.build(16)
    # ncps, by contrast, adds synapses on a second build (the bug we avoid).
    ref = nw.AutoNCP(19, 1)
    ref.build(32)
    ref.build(32)
    assert int(np.abs(ref.sensory_adjacency_matrix).sum()) > 160


def test_unbuilt_wiring_says_so():
    with pytest.raises(WiringError, match="build"):
        _ = NCP(**DEFAULT_STEERING_NCP).adjacency_matrix


def test_state_order_groups_names_and_ncps_ids():
    w = AutoNCP(19, 1).build(32)
    assert w.groups == {"inter": range(0, 11), "command": range(11, 18), "motor": range(18, 19)}
    assert w.neuron_names[:2] == ["inter_0", "inter_1"]
    assert w.neuron_names[11] == "command_0" and w.neuron_names[-1] == "motor_0"
    assert list(w.ncps_ids[:11]) == list(range(8, 19))
    assert list(w.ncps_ids[11:18]) == list(range(1, 8)) and w.ncps_ids[18] == 0
    assert w.neuron_group(5) == "inter" and w.neuron_group(18) == "motor"
    ids = w.ncps_ids
    a, s = w.state_adjacency, w.state_sensory_adjacency
    for i in range(w.units):
        for j in range(w.units):
            assert a[i, j] == w.adjacency_matrix[ids[i], ids[j]]
    np.testing.assert_array_equal(s, w.sensory_adjacency_matrix[:, ids])
    # In state order, synapses flow forward: sensory -> inter -> command -> motor.
    assert np.abs(s[:, 11:]).sum() == 0
    assert np.abs(a[:11, :11]).sum() == 0 and np.abs(a[:11, 18:]).sum() == 0
    assert np.abs(a[18:, :]).sum() == 0


@pytest.mark.parametrize("wiring", [AutoNCP(19, 1, seed=3), NCP(**DEFAULT_STEERING_NCP)])
def test_to_dict_from_dict_round_trip(wiring):
    unbuilt = wiring_from_dict(json.loads(json.dumps(wiring.to_dict())))
    assert not unbuilt.is_built and unbuilt.config() == wiring.config()
    wiring.build(32)
    data = json.loads(json.dumps(wiring.to_dict()))
    again = type(wiring).from_dict(data)
    assert again == wiring and type(again) is type(wiring)
    data["adjacency_matrix"][0][0] = 1 - data["adjacency_matrix"][0][0]
    with pytest.raises(WiringError, match="differs"):
        wiring_from_dict(data)
    with pytest.raises(WiringError, match="unknown wiring kind"):
        wiring_from_dict({"kind": "Random"})


def test_bad_arguments_name_the_value():
    with pytest.raises(WiringError, match="motor_fanin=7"):
        NCP(12, 6, 1, 6, 4, 6, 7)
    with pytest.raises(WiringError, match="sensory_fanout=13"):
        NCP(12, 6, 1, 13, 4, 6, 6)
    with pytest.raises(WiringError, match="sparsity_level"):
        AutoNCP(19, 1, sparsity_level=0.05)
    with pytest.raises(WiringError, match="output_size"):
        AutoNCP(5, 3)
    with pytest.raises(WiringError, match="input_dim"):
        NCP(**DEFAULT_STEERING_NCP).build(0)


def test_wiring_module_is_numpy_only():
    path = Path(__file__).resolve().parents[3] / "driving" / "model" / "wiring.py"
    tree = ast.parse(path.read_text())
    roots = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert roots <= {"numpy", "typing", "__future__", "liquid_drive"}, roots


def test_matrix_ncp_keeps_given_synapses_and_round_trips():
    drawn = NCP(**DEFAULT_STEERING_NCP).build(32)
    given = MatrixNCP(12, 6, 1, drawn.adjacency_matrix, drawn.sensory_adjacency_matrix)
    assert given.is_built and given.input_dim == 32 and given.layer_sizes == (12, 6, 1)
    np.testing.assert_array_equal(given.state_adjacency, drawn.state_adjacency)
    assert given.synapse_counts() == drawn.synapse_counts()
    assert given.build(32) is given
    with pytest.raises(WiringError, match="input_dim=32"):
        given.build(16)
    again = wiring_from_dict(json.loads(json.dumps(given.to_dict())))
    assert type(again) is MatrixNCP and again == given and again != drawn


def test_matrix_ncp_refuses_what_is_not_an_ncp():
    drawn = AutoNCP(19, 1).build(8)
    adj, sens = drawn.adjacency_matrix, drawn.sensory_adjacency_matrix
    with pytest.raises(WiringError, match="matrices must be"):
        MatrixNCP(11, 7, 1, adj[:-1], sens)
    backwards = adj.copy()
    backwards[0, 18] = 1  # motor (id 0) -> inter (id 18)
    with pytest.raises(WiringError, match="internal synapse"):
        MatrixNCP(11, 7, 1, backwards, sens)
    skipping = sens.copy()
    skipping[0, 0] = -1  # sensory -> motor
    with pytest.raises(WiringError, match="sensory synapse"):
        MatrixNCP(11, 7, 1, adj, skipping)
    with pytest.raises(WiringError, match="polarities"):
        MatrixNCP(11, 7, 1, adj * 2, sens)

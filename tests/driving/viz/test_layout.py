import numpy as np
import pytest

from driving.viz.layout import HIDDEN, NeuronLayout, VisualizeError, wiring_positions
from driving.viz.wiring import save_wiring
from tests.driving.viz.samples import sample_layout


def test_layout_groups_and_validation():
    layout = sample_layout()
    groups = layout.group_indices()
    assert list(groups) == ["inter", "command", "motor"]
    assert [list(v) for v in groups.values()] == [[0, 1, 2], [3, 4], [5]]
    assert NeuronLayout.hidden(3).groups == (HIDDEN,) * 3
    with pytest.raises(VisualizeError, match="unknown neuron groups"):
        NeuronLayout(("a",), ("sensor",))
    with pytest.raises(VisualizeError, match=r"adjacency must be \(1, 1\)"):
        NeuronLayout(("a",), ("inter",), np.zeros((2, 2)))


def test_wiring_layers_run_left_to_right_in_group_order():
    layout = sample_layout()
    pos = wiring_positions(layout)
    x = {g: {pos[("neuron", i)][0] for i in idx} for g, idx in layout.group_indices().items()}
    assert x == {"inter": {1.0}, "command": {2.0}, "motor": {3.0}}
    assert {pos[("sensory", i)][0] for i in range(4)} == {0.0}
    with pytest.raises(VisualizeError, match="no wiring"):
        wiring_positions(NeuronLayout.hidden(3))


def test_layout_from_the_ncp_wiring_groups_neurons_as_the_wiring_does(tmp_path):
    from driving.model.wiring import NCP, default_steering_wiring

    wiring = default_steering_wiring()
    layout = NeuronLayout.from_wiring(wiring)
    assert layout.names == tuple(wiring.neuron_names)
    groups = layout.group_indices()
    assert {g: list(v) for g, v in groups.items()} == {g: list(r) for g, r in wiring.groups.items()}
    assert np.array_equal(layout.adjacency, wiring.state_adjacency)
    assert np.array_equal(layout.sensory_adjacency, wiring.state_sensory_adjacency)
    # Every synapse the diagram draws runs between the layers the wiring says it does.
    src, dst = np.nonzero(layout.adjacency)
    pairs = {(layout.groups[s], layout.groups[d]) for s, d in zip(src, dst, strict=True)}
    assert pairs <= {("inter", "command"), ("command", "command"), ("command", "motor")}
    small = NCP(
        4,
        3,
        2,
        sensory_fanout=2,
        inter_fanout=2,
        recurrent_command_synapses=2,
        motor_fanin=2,
        seed=1,
    ).build(5)
    png, _ = save_wiring(NeuronLayout.from_wiring(small), tmp_path)
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("core", ["cfc-ncp-random", "cfc-ncp-full"])
def test_the_wiring_controls_are_drawn_synapse_for_synapse(tmp_path, core):
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from driving.model.policy import PolicyConfig, SteeringPolicy
    from driving.viz.layout import layout_from_policy
    from driving.viz.wiring import draw_wiring

    policy = SteeringPolicy(PolicyConfig(core=core))
    wiring, layout = policy.wiring, layout_from_policy(policy)
    fig, ax = plt.subplots()
    draw_wiring(ax, layout)
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    within = wiring.synapse_counts()["command_command"]  # drawn as arcs
    assert len(lines.get_segments()) == wiring.total_synapse_count - within
    assert len(ax.patches) == within
    plt.close(fig)
    png, _ = save_wiring(layout, tmp_path, title=core)
    assert png.stat().st_size > 1000

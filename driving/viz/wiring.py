"""The layered wiring diagram (sensory -> inter -> command -> motor), as the NCP paper drew it.

Excitatory and inhibitory synapses in two colours, recurrent synapses within a layer as arcs;
nodes placed by :func:`driving.viz.layout.wiring_positions`. Saved as PNG and as an SVG with
stable ids (the same layout gives the same bytes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from driving.viz.layout import (
    ACTIVITY_CMAP,
    COMMAND,
    EXCITATORY_COLOUR,
    HIDDEN,
    INHIBITORY_COLOUR,
    INTER,
    MOTOR,
    SENSORY,
    NeuronLayout,
    wiring_positions,
)
from driving.viz.panels import new_figure


def draw_wiring(
    ax: Axes,
    layout: NeuronLayout,
    activity: np.ndarray | None = None,
    labels: bool = True,
    node_size: float = 120.0,
) -> dict[tuple[str, int], np.ndarray]:
    """The layered wiring diagram: sensory -> inter -> command -> motor.

    Excitatory synapses are drawn in :data:`EXCITATORY_COLOUR`, inhibitory ones in
    :data:`INHIBITORY_COLOUR`; recurrent synapses within a layer as arcs.

    Args:
        ax: Axis to draw into.
        layout: Neuron layout with its adjacency.
        activity: Optional (N,) activity in [-1, 1] colouring the neurons; None: by group.
        labels: Write each neuron's name next to it.
        node_size: Marker area of a neuron in points^2 (sensory inputs get a third).

    Returns:
        The node positions (data coordinates), as :func:`wiring_positions`.
    """
    pos = wiring_positions(layout)
    adj = layout.adjacency
    assert adj is not None
    segs, cols = [], []
    sens = layout.sensory_adjacency
    if sens is not None:
        for s, d in zip(*np.nonzero(sens), strict=True):
            segs.append([pos[(SENSORY, int(s))], pos[("neuron", int(d))]])
            cols.append(EXCITATORY_COLOUR if sens[s, d] > 0 else INHIBITORY_COLOUR)
    arcs = []
    for s, d in zip(*np.nonzero(adj), strict=True):
        a, b = pos[("neuron", int(s))], pos[("neuron", int(d))]
        colour = EXCITATORY_COLOUR if adj[s, d] > 0 else INHIBITORY_COLOUR
        if layout.groups[s] == layout.groups[d]:
            arcs.append((a, b, colour, s == d))
        else:
            segs.append([a, b])
            cols.append(colour)
    ax.add_collection(LineCollection(segs, colors=cols, linewidths=0.7, alpha=0.45, zorder=1))
    for a, b, colour, self_loop in arcs:
        if self_loop:
            ax.add_patch(
                FancyArrowPatch(
                    a + np.array([0.0, 0.02]),
                    a - np.array([0.0, 0.02]),
                    connectionstyle="arc3,rad=-2.5",
                    color=colour,
                    lw=0.9,
                    arrowstyle="-|>",
                    mutation_scale=7,
                    zorder=1,
                )
            )
        else:
            ax.add_patch(
                FancyArrowPatch(
                    a,
                    b,
                    connectionstyle="arc3,rad=0.5",
                    color=colour,
                    lw=0.9,
                    alpha=0.8,
                    arrowstyle="-|>",
                    mutation_scale=7,
                    shrinkA=4,
                    shrinkB=4,
                    zorder=1,
                )
            )
    if sens is not None:
        xy = np.array([pos[(SENSORY, i)] for i in range(sens.shape[0])])
        ax.scatter(xy[:, 0], xy[:, 1], s=node_size / 3, c="0.6", edgecolors="0.3", zorder=2)
    xy = np.array([pos[("neuron", i)] for i in range(layout.size)])
    if activity is None:
        group_colour = {INTER: "#9ecae1", COMMAND: "#fdae6b", MOTOR: "#a1d99b", HIDDEN: "0.7"}
        face: Any = [group_colour[g] for g in layout.groups]
        ax.scatter(xy[:, 0], xy[:, 1], s=node_size, c=face, edgecolors="0.2", zorder=3)
    else:
        ax.scatter(
            xy[:, 0],
            xy[:, 1],
            s=node_size,
            c=np.asarray(activity),
            cmap=ACTIVITY_CMAP,
            vmin=-1,
            vmax=1,
            edgecolors="0.2",
            zorder=3,
        )
    if labels:
        for i, name in enumerate(layout.names):
            ax.annotate(
                name,
                xy[i],
                xytext=(7, 0),
                textcoords="offset points",
                ha="left",
                va="center",
                fontsize=6,
                color="0.2",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.3},
                zorder=4,
            )
    x_layers = sorted({float(p[0]) for p in pos.values()})
    titles = [SENSORY] * (sens is not None) + list(layout.group_indices())
    for x, title in zip(x_layers, titles, strict=True):
        ax.text(x, -0.07, title, ha="center", va="top", fontsize=8)
    ax.legend(
        handles=[
            Line2D([], [], color=EXCITATORY_COLOUR, lw=2, label="excitatory"),
            Line2D([], [], color=INHIBITORY_COLOUR, lw=2, label="inhibitory"),
        ],
        loc="upper right",
        fontsize=7,
        frameon=False,
    )
    ax.set_xlim(min(x_layers) - 0.08, max(x_layers) + 0.25)
    ax.set_ylim(-0.16, 1.03)
    ax.set_axis_off()
    return pos


def wiring_figure(layout: NeuronLayout, title: str = "") -> Figure:
    """The wiring diagram alone, with a legend of the synapse polarities."""
    fig = new_figure(900, 620)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.86))
    draw_wiring(ax, layout, node_size=160.0)
    n_int = int(np.abs(layout.adjacency).sum()) if layout.adjacency is not None else 0
    n_sens = (
        int(np.abs(layout.sensory_adjacency).sum()) if layout.sensory_adjacency is not None else 0
    )
    fig.suptitle(
        (title + "\n" if title else "")
        + f"{layout.size} neurons, {n_int} internal + {n_sens} sensory synapses",
        fontsize=10,
    )
    return fig


def save_wiring(layout: NeuronLayout, out_dir: Path, title: str = "") -> list[Path]:
    """Writes ``wiring.png`` and ``wiring.svg`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fig = wiring_figure(layout, title)
    paths = [out_dir / "wiring.png", out_dir / "wiring.svg"]
    fig.savefig(paths[0], dpi=100)
    with matplotlib.rc_context({"svg.hashsalt": "liquid-drive"}):  # stable ids: same bytes
        fig.savefig(paths[1], metadata={"Date": None})
    return paths

"""Figures and video that show what the liquid network does while it drives.

What is drawn follows the NCP paper (Lechner et al. 2020, Figs. 3-6 and Extended Data):
neuron traces grouped inter / command / motor, the wiring diagram with excitatory and
inhibitory synapses, predicted vs expert command, the route seen from above, VisualBackProp
saliency on the camera image, and a PCA of the neuron activity.

Everything here is fed plain numpy arrays (:class:`NeuronLayout`, :class:`RolloutTrack`), so
the panels work for every model type: cores with named neurons (the NCP wirings) get grouped
traces and the wiring panel; cores without (lstm, gru) show their hidden units and no wiring;
a stateless cnn shows neither.

Rendering uses matplotlib's Agg canvas directly (no pyplot, no global backend). A video frame
is fast to make: :class:`FrameRenderer` draws every static part once into a background image
and then, per frame, only pastes the camera image and draws the time marker, the car and the
node colours with OpenCV. Videos are H.264 MP4 through PyAV (:class:`VideoWriter`), or GIF.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import matplotlib
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch
from PIL import Image
from tqdm import tqdm

from driving.data import episodes as E
from driving.model.checkpoint import load_policy
from liquid_drive.errors import LiquidDriveError
from perception.saliency import (
    METHODS,
    SaliencyMethod,
    overlay,
    saliency_maps,
    visual_backprop,
    visual_backprop_with_output,
)

logger = logging.getLogger(__name__)

SENSORY = "sensory"
INTER = "inter"
COMMAND = "command"
MOTOR = "motor"
HIDDEN = "hidden"
"""Group of the state units of cores without named neurons (lstm, gru)."""
GROUP_ORDER = (INTER, COMMAND, MOTOR, HIDDEN)
"""Order in which neuron groups are drawn (the order the network computes them)."""

EXCITATORY_COLOUR = "#1b9e77"
"""Colour of excitatory (+1) synapses."""
INHIBITORY_COLOUR = "#7b3294"
"""Colour of inhibitory (-1) synapses."""
ACTIVITY_CMAP = "coolwarm"
"""Diverging colour map of neuron activity (blue negative, red positive)."""
PRED_COLOUR = "#d62728"
EXPERT_COLOUR = "#333333"
INTERVENTION_COLOUR = "#e6550d"
MAX_TRACE_LINES = 16
"""Groups with more units than this are drawn as a heat map instead of one line per unit."""


class VisualizeError(LiquidDriveError, ValueError):
    """Inputs to a figure or video are inconsistent (the message names the bad value)."""


# ------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class NeuronLayout:
    """Names, groups and synapses of a recurrent core's state units, in state order."""

    names: tuple[str, ...]
    """One name per state index."""
    groups: tuple[str, ...]
    """Group of each state index: ``inter``, ``command``, ``motor`` or ``hidden``."""
    adjacency: np.ndarray | None = None
    """Signed synapses (N, N), ``[src, dst]`` in state order, +1 / -1 / 0; None: no wiring."""
    sensory_adjacency: np.ndarray | None = None
    """Signed sensory synapses (S, N), ``[input, dst]``; None when there is no wiring."""

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(self.groups) != n:
            raise VisualizeError(f"{n} neuron names but {len(self.groups)} groups")
        bad = sorted(set(self.groups) - set(GROUP_ORDER))
        if bad:
            raise VisualizeError(f"unknown neuron groups {bad}; known: {GROUP_ORDER}")
        if self.adjacency is not None and self.adjacency.shape != (n, n):
            raise VisualizeError(f"adjacency must be ({n}, {n}), got {self.adjacency.shape}")
        if self.sensory_adjacency is not None and (
            self.sensory_adjacency.ndim != 2 or self.sensory_adjacency.shape[1] != n
        ):
            raise VisualizeError(
                f"sensory_adjacency must be (S, {n}), got {self.sensory_adjacency.shape}"
            )

    @property
    def size(self) -> int:
        """Number of state units N."""
        return len(self.names)

    @property
    def has_wiring(self) -> bool:
        """True when synapses are known (an NCP or other named wiring)."""
        return self.adjacency is not None

    def group_indices(self) -> dict[str, np.ndarray]:
        """State indices of each non-empty group, in :data:`GROUP_ORDER`."""
        g = np.asarray(self.groups)
        return {name: np.flatnonzero(g == name) for name in GROUP_ORDER if (g == name).any()}

    @classmethod
    def hidden(cls, units: int) -> NeuronLayout:
        """Layout of a core without named neurons: ``h0 .. h{N-1}``, group ``hidden``."""
        return cls(tuple(f"h{i}" for i in range(units)), (HIDDEN,) * units)

    @classmethod
    def from_wiring(cls, wiring: Any) -> NeuronLayout:
        """Layout of a built ``driving.model.wiring.NCP`` (state order, state-order synapses)."""
        names = tuple(wiring.neuron_names)
        groups = tuple(wiring.neuron_group(i) for i in range(len(names)))
        return cls(
            names,
            groups,
            np.asarray(wiring.state_adjacency, dtype=np.int32),
            np.asarray(wiring.state_sensory_adjacency, dtype=np.int32),
        )


@dataclass
class RolloutTrack:
    """The per-step signals of one rollout (T steps), as plain arrays."""

    t_s: np.ndarray
    """Simulation time of each step, s, (T,)."""
    curvature_pred: np.ndarray
    """Command the policy output, 1/m, (T,)."""
    curvature_expert: np.ndarray
    """The expert's command on the same observation, 1/m, (T,); NaN where unknown."""
    x_m: np.ndarray
    """Vehicle x in the world frame, m, (T,)."""
    y_m: np.ndarray
    """Vehicle y in the world frame, m, (T,)."""
    yaw_rad: np.ndarray
    """Vehicle yaw, rad, counter-clockwise positive, (T,)."""
    intervention: np.ndarray
    """True on steps where a lane departure was counted and the car was reset, (T,)."""
    states: np.ndarray | None = None
    """Neuron states (T, N) in state order; None for a stateless model."""
    sensory: np.ndarray | None = None
    """Sensory features fed to the core (T, S), if computed; colours the wiring's inputs."""
    title: str = ""
    """Shown on top of the summary figure."""

    def __post_init__(self) -> None:
        self.t_s = np.asarray(self.t_s, dtype=np.float64)
        if self.t_s.ndim != 1 or len(self.t_s) < 1:
            raise VisualizeError(f"t_s must be (T,) with T >= 1, got shape {self.t_s.shape}")
        n = len(self.t_s)
        for name in ("curvature_pred", "curvature_expert", "x_m", "y_m", "yaw_rad"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (n,):
                raise VisualizeError(f"{name} must have shape ({n},), got {arr.shape}")
            setattr(self, name, arr)
        self.intervention = np.asarray(self.intervention).astype(bool)
        if self.intervention.shape != (n,):
            raise VisualizeError(f"intervention must be ({n},), got {self.intervention.shape}")
        for name in ("states", "sensory"):
            arr = getattr(self, name)
            if arr is None:
                continue
            arr = np.asarray(arr, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] != n:
                raise VisualizeError(f"{name} must be ({n}, units), got {arr.shape}")
            setattr(self, name, arr)

    def __len__(self) -> int:
        return len(self.t_s)

    @property
    def time_s(self) -> np.ndarray:
        """Time since the first step, s."""
        return self.t_s - self.t_s[0]


# --------------------------------------------------------------------------- helpers
def _figure(width_px: int, height_px: int, dpi: int = 100, layout: str | None = None) -> Figure:
    fig = Figure(
        figsize=(width_px / dpi, height_px / dpi), dpi=dpi, facecolor="white", layout=layout
    )
    FigureCanvasAgg(fig)
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """Renders a figure with Agg and returns it as uint8 RGB (H, W, 3)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _lut(cmap_name: str) -> np.ndarray:
    """A colour map as a (256, 3) uint8 RGB lookup table."""
    return (colormaps[cmap_name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def normalise_activity(values: np.ndarray) -> np.ndarray:
    """Scales each column by its largest magnitude over time to [-1, 1] (zeros stay zero)."""
    peak = np.abs(values).max(axis=0, keepdims=True)
    return np.divide(values, peak, out=np.zeros_like(values, dtype=np.float64), where=peak > 0)


def pca(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of neuron activity (T, N), as in the NCP paper.

    Returns:
        The fraction of variance explained by each component (K,), K = min(T, N), and the
        scores of every step on each component (T, K).
    """
    x = np.asarray(states, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise VisualizeError(f"PCA needs states (T >= 2, N >= 1), got shape {x.shape}")
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    var = s**2
    total = var.sum()
    ratio = var / total if total > 0 else np.zeros_like(var)
    return ratio, u * s


def _intervention_times(track: RolloutTrack) -> np.ndarray:
    return track.time_s[track.intervention]


def _group_label(name: str, count: int) -> str:
    return f"{name}\n({count})"


# ----------------------------------------------------------------------- the panels
def draw_traces(axes: Sequence[Axes], track: RolloutTrack, layout: NeuronLayout) -> None:
    """Neuron traces, one axis per group (inter, command, motor, or hidden).

    Groups of up to :data:`MAX_TRACE_LINES` units get one line per neuron; larger ones a heat
    map (units x time), each unit scaled by its peak magnitude.
    """
    if track.states is None:
        raise VisualizeError("draw_traces needs neuron states; this model has none")
    if track.states.shape[1] != layout.size:
        raise VisualizeError(
            f"rollout has {track.states.shape[1]} state columns, the layout {layout.size} neurons"
        )
    groups = layout.group_indices()
    if len(axes) != len(groups):
        raise VisualizeError(f"need {len(groups)} axes (one per group), got {len(axes)}")
    t = track.time_s
    for ax, (name, idx) in zip(axes, groups.items(), strict=True):
        values = track.states[:, idx]
        if len(idx) > MAX_TRACE_LINES:
            span = (t[0], t[-1] if len(t) > 1 else t[0] + 1.0)
            ax.imshow(
                normalise_activity(values).T,
                aspect="auto",
                cmap=ACTIVITY_CMAP,
                vmin=-1,
                vmax=1,
                extent=(span[0], span[1], len(idx) - 0.5, -0.5),
                interpolation="nearest",
            )
            ax.set_yticks([])
        else:
            colours = _lut("tab20")[np.arange(len(idx)) * 256 // 20 % 256] / 255.0
            for k in range(len(idx)):
                ax.plot(t, values[:, k], lw=0.9, color=colours[k])
            ax.margins(x=0)
        ax.set_ylabel(_group_label(name, len(idx)), fontsize=8)
        ax.tick_params(labelsize=7)
        for ti in _intervention_times(track):
            ax.axvline(ti, color=INTERVENTION_COLOUR, lw=0.8, alpha=0.7)
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel("time (s)", fontsize=8)


def draw_command(ax: Axes, track: RolloutTrack, legend: bool = True) -> None:
    """Predicted vs expert curvature over time, interventions as vertical lines."""
    t = track.time_s
    if np.isfinite(track.curvature_expert).any():
        ax.plot(t, track.curvature_expert, color=EXPERT_COLOUR, lw=1.0, label="expert")
    ax.plot(t, track.curvature_pred, color=PRED_COLOUR, lw=1.0, label="policy")
    for k, ti in enumerate(_intervention_times(track)):
        ax.axvline(
            ti, color=INTERVENTION_COLOUR, lw=1.0, ls="--", label="intervention" if k == 0 else None
        )
    ax.axhline(0.0, color="0.8", lw=0.6, zorder=0)
    ax.margins(x=0)
    ax.set_ylabel("curvature (1/m)", fontsize=8)
    ax.tick_params(labelsize=7)
    if legend:
        ax.legend(
            fontsize=7,
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            ncol=3,
            frameon=False,
            borderaxespad=0.1,
            handlelength=1.5,
        )


def draw_route(
    ax: Axes, track: RolloutTrack, colour_by: np.ndarray | None = None
) -> LineCollection | None:
    """The route driven, seen from above (x east, y north, equal scale), interventions as x.

    Args:
        ax: Axis to draw into.
        track: The rollout.
        colour_by: Optional (T,) values colouring the path (diverging, symmetric about 0).

    Returns:
        The coloured path (for a colour bar) when ``colour_by`` is given, else None.
    """
    lc = None
    if colour_by is None:
        ax.plot(track.x_m, track.y_m, color="0.55", lw=2.5, solid_capstyle="round")
    else:
        pts = np.stack([track.x_m, track.y_m], axis=1)
        segs = np.stack([pts[:-1], pts[1:]], axis=1)
        lim = float(np.abs(colour_by).max()) or 1.0
        lc = LineCollection(segs, cmap=ACTIVITY_CMAP, linewidths=3.0)
        lc.set_array(colour_by[:-1])
        lc.set_clim(-lim, lim)
        ax.add_collection(lc)
        ax.autoscale()
    ax.plot(track.x_m[0], track.y_m[0], "o", color="black", ms=4)
    hits = track.intervention
    if hits.any():
        ax.plot(track.x_m[hits], track.y_m[hits], "x", color=INTERVENTION_COLOUR, ms=7, mew=2)
    ax.set_aspect("equal", adjustable="datalim")
    ax.tick_params(labelsize=7)
    ax.set_xlabel("x (m)", fontsize=8)
    ax.set_ylabel("y (m)", fontsize=8)
    return lc


def wiring_positions(layout: NeuronLayout) -> dict[tuple[str, int], np.ndarray]:
    """Node positions of the layered wiring diagram.

    A multipartite layout, like ``networkx.multipartite_layout`` but with every layer spread
    over the full height (networkx scales a layer's extent by its size, which piles the small
    command layer into a clump): layer ``k`` sits at x = k, its nodes evenly spaced in
    y from 1 (index 0, top) down to 0. Keys are ``("sensory", input_index)`` and
    ``("neuron", state_index)``; layers run sensory, inter, command, motor (or hidden).
    """
    if layout.adjacency is None:
        raise VisualizeError("this core has no wiring to draw")
    columns: list[list[tuple[str, int]]] = []
    if layout.sensory_adjacency is not None:
        columns.append([(SENSORY, i) for i in range(layout.sensory_adjacency.shape[0])])
    for idx in layout.group_indices().values():
        columns.append([("neuron", int(i)) for i in idx])
    most = max(len(nodes) for nodes in columns)
    pos = {}
    for x, nodes in enumerate(columns):
        half = 0.5 * (len(nodes) / most) ** 0.25  # smaller layers a little more compact
        ys = [0.5] if len(nodes) == 1 else np.linspace(0.5 + half, 0.5 - half, len(nodes))
        for node, y in zip(nodes, ys, strict=True):
            pos[node] = np.array([float(x), float(y)])
    return pos


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
    fig = _figure(900, 620)
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


def summary_figure(track: RolloutTrack, layout: NeuronLayout | None) -> Figure:
    """The whole rollout on one page.

    Rows: predicted vs expert command with interventions; the neuron traces by group; then
    the route, the route coloured by PC1 of the neuron activity, and the variance explained
    by each principal component (bar) with its cumulative sum (line), as in the NCP paper.
    """
    has_states = track.states is not None and layout is not None
    groups = layout.group_indices() if has_states and layout is not None else {}
    n_trace = len(groups)
    trace_heights = [
        0.6 if name == MOTOR else 2.0 if len(idx) > MAX_TRACE_LINES else 1.0
        for name, idx in groups.items()
    ]
    heights = [1.3, *trace_heights, 2.4]
    fig = _figure(1200, round(220 + 150 * sum(trace_heights) + 330), layout="constrained")
    gs = fig.add_gridspec(len(heights), 3, height_ratios=heights)
    ax_cmd = fig.add_subplot(gs[0, :])
    draw_command(ax_cmd, track)
    ax_cmd.set_title("predicted vs expert command", fontsize=9, loc="left")
    if has_states and layout is not None:
        trace_axes = [fig.add_subplot(gs[1 + k, :], sharex=ax_cmd) for k in range(n_trace)]
        draw_traces(trace_axes, track, layout)
        trace_axes[0].set_title("neuron states", fontsize=9, loc="left")
    bottom = len(heights) - 1
    ax_map = fig.add_subplot(gs[bottom, 0])
    draw_route(ax_map, track)
    ax_map.set_title("route (x = intervention)", fontsize=9, loc="left")
    if has_states and track.states is not None and len(track) >= 2:
        ratio, scores = pca(track.states)
        ax_pc = fig.add_subplot(gs[bottom, 1])
        lc = draw_route(ax_pc, track, colour_by=scores[:, 0])
        cbar = fig.colorbar(lc, ax=ax_pc, shrink=0.8)
        cbar.set_label("PC1 score", fontsize=8)
        cbar.ax.tick_params(labelsize=7)
        ax_pc.set_title("route coloured by PC1 score", fontsize=9, loc="left")
        ax_var = fig.add_subplot(gs[bottom, 2])
        k = np.arange(1, min(len(ratio), 10) + 1)
        ax_var.bar(k, 100 * ratio[: len(k)], color="#6baed6")
        ax_var.plot(k, 100 * np.cumsum(ratio)[: len(k)], "o-", color="black", ms=3, lw=1)
        ax_var.set_ylim(0, 105)
        ax_var.set_xticks(k)
        ax_var.set_xlabel("principal component", fontsize=8)
        ax_var.set_ylabel("variance explained (%)", fontsize=8)
        ax_var.tick_params(labelsize=7)
        ax_var.set_title(
            f"PCA of neuron activity: PC1 {100 * ratio[0]:.0f} %", fontsize=9, loc="left"
        )
    if track.title:
        fig.suptitle(track.title, fontsize=10)
    return fig


# -------------------------------------------------------------------------- the video
class VideoWriter:
    """Writes RGB frames to an H.264 MP4 (yuv420p, plays in browsers) or a GIF, via PyAV.

    Use as a context manager; every frame must have the size given here. GIF frames get their
    own adaptive 256-colour palette.
    """

    def __init__(
        self, path: Path, width_px: int, height_px: int, fps: float, crf: int = 23
    ) -> None:
        """Opens ``path``; the container follows its suffix (``.mp4`` or ``.gif``).

        Args:
            path: Output file, ``.mp4`` or ``.gif``.
            width_px: Frame width, pixels (even for MP4).
            height_px: Frame height, pixels (even for MP4).
            fps: Frames per second, > 0.
            crf: x264 constant rate factor (0 lossless .. 51 worst), MP4 only.
        """
        self.path = Path(path)
        self.kind = self.path.suffix.lower()
        if self.kind not in (".mp4", ".gif"):
            raise VisualizeError(f"video path must end in .mp4 or .gif, got {self.path}")
        if width_px <= 0 or height_px <= 0:
            raise VisualizeError(f"frame size must be positive, got {width_px}x{height_px}")
        if self.kind == ".mp4" and (width_px % 2 or height_px % 2):
            raise VisualizeError(f"H.264 needs an even frame size, got {width_px}x{height_px}")
        if not fps > 0:
            raise VisualizeError(f"fps must be positive, got {fps}")
        self.size = (height_px, width_px)
        self.frames = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        rate = Fraction(fps).limit_denominator(1000)
        if self.kind == ".mp4":
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(int(crf)), "preset": "veryfast"}
        else:
            self._stream = self._container.add_stream("gif", rate=rate)
            self._stream.pix_fmt = "pal8"
        self._stream.width = width_px
        self._stream.height = height_px

    def write(self, frame: np.ndarray) -> None:
        """Appends one uint8 RGB frame (H, W, 3)."""
        if frame.dtype != np.uint8 or frame.shape != (*self.size, 3):
            raise VisualizeError(
                f"frame must be uint8 {(*self.size, 3)}, got {frame.dtype} {frame.shape}"
            )
        if self.kind == ".mp4":
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        else:
            img = Image.fromarray(frame).quantize(256, method=Image.Quantize.FASTOCTREE)
            palette = np.zeros((256, 4), np.uint8)
            rgb = np.asarray(img.getpalette()[: 3 * 256], np.uint8).reshape(-1, 3)
            palette[: len(rgb), :3] = rgb
            palette[:, 3] = 255
            vf = av.VideoFrame.from_ndarray((np.asarray(img), palette), format="pal8")
        vf.pts = self.frames
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flushes the encoder and closes the file."""
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Rect:
    """A pixel rectangle in an image: rows y0..y1, columns x0..x1."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    @property
    def h(self) -> int:
        return self.y1 - self.y0


def _axes_rect(ax: Axes, height_px: int) -> _Rect:
    bb = ax.get_window_extent()
    return _Rect(round(bb.x0), round(height_px - bb.y1), round(bb.x1), round(height_px - bb.y0))


def _to_pixels(ax: Axes, xy: np.ndarray, height_px: int) -> np.ndarray:
    """Data coordinates (K, 2) -> image pixel coordinates (K, 2) as float (x, row)."""
    disp = ax.transData.transform(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
    return np.stack([disp[:, 0], height_px - disp[:, 1]], axis=1)


class FrameRenderer:
    """Composes video frames: static panels drawn once, moving parts drawn per frame.

    Panels: camera image with the saliency overlay; predicted vs expert command; the route
    from above with the car; neuron traces by group; the wiring diagram with neurons coloured
    by their current activity. Panels a model lacks (states, wiring) are left out and the
    others take the room.
    """

    def __init__(
        self,
        track: RolloutTrack,
        layout: NeuronLayout | None,
        camera_hw: tuple[int, int],
        width_px: int = 1280,
        height_px: int = 720,
        saliency_name: str = "VisualBackProp",
    ) -> None:
        """Draws the static background.

        Args:
            track: The rollout's signals.
            layout: Neuron layout (None or states None: no trace or wiring panels).
            camera_hw: (height, width) of the camera frames, pixels.
            width_px: Frame width, pixels.
            height_px: Frame height, pixels.
            saliency_name: Name of the saliency method for the camera panel's title; empty
                when the image has no saliency overlay.
        """
        if width_px < 320 or height_px < 240:
            raise VisualizeError(f"frame must be at least 320x240, got {width_px}x{height_px}")
        self.track = track
        self.layout = layout
        self.size = (height_px, width_px)
        has_states = track.states is not None and layout is not None
        has_wiring = has_states and layout is not None and layout.has_wiring
        fig = _figure(width_px, height_px)
        h = float(height_px)
        # Left column: camera, command, route. Right column: traces and wiring.
        left_w = 0.40 if has_states else 0.5
        cam_h_px = min(0.45 * h, (left_w * width_px - 30) * camera_hw[0] / camera_hw[1])
        cam_top = 1.0 - 28 / h
        cam_b = cam_top - cam_h_px / h
        self.ax_cam = fig.add_axes((0.01, cam_b, left_w - 0.02, cam_h_px / h))
        self.ax_cam.set_axis_off()
        cam_title = f"camera + {saliency_name} saliency" if saliency_name else "camera"
        self.ax_cam.set_title(cam_title, fontsize=9, loc="left")
        if has_states:
            cmd_h = 0.8 * (cam_b - 0.06) * 0.42
            self.ax_cmd = fig.add_axes((0.075, cam_b - 0.06 - cmd_h, left_w - 0.09, cmd_h))
            map_top = cam_b - 0.06 - cmd_h - 0.09
            self.ax_map = fig.add_axes((0.075, 0.07, left_w - 0.09, map_top - 0.07))
        else:
            self.ax_cmd = fig.add_axes((0.075, 0.1, left_w - 0.09, cam_b - 0.2))
            self.ax_map = fig.add_axes((left_w + 0.06, 0.08, 0.98 - left_w - 0.06, 0.86))
        draw_command(self.ax_cmd, track)
        self.ax_cmd.set_title("curvature command", fontsize=9, loc="left")
        self.ax_cmd.set_xlabel("time (s)", fontsize=8)
        draw_route(self.ax_map, track)
        self.ax_map.set_title("route from above", fontsize=9, loc="left")
        self.trace_axes: list[Axes] = []
        self.ax_wiring: Axes | None = None
        if has_states and layout is not None:
            groups = layout.group_indices()
            x0 = left_w + 0.075
            trace_top, trace_bottom = 0.95, (0.50 if has_wiring else 0.07)
            weights = np.array([0.55 if g == MOTOR else 1.0 for g in groups])
            gap = 0.012
            usable = trace_top - trace_bottom - gap * (len(groups) - 1)
            top = trace_top
            for wgt in weights:
                hh = usable * wgt / weights.sum()
                self.trace_axes.append(fig.add_axes((x0, top - hh, 0.985 - x0, hh)))
                top -= hh + gap
            for ax in self.trace_axes[1:]:
                ax.sharex(self.trace_axes[0])
            draw_traces(self.trace_axes, track, layout)
            self.trace_axes[0].set_title("neuron states", fontsize=9, loc="left")
            if has_wiring:
                self.ax_wiring = fig.add_axes((left_w + 0.01, 0.01, 0.98 - left_w, 0.37))
                draw_wiring(self.ax_wiring, layout, labels=True, node_size=0.0)
                self.ax_wiring.set_title(
                    "wiring, neurons coloured by activity", fontsize=9, loc="left"
                )
        self.background = figure_to_array(fig)
        # Pixel geometry of the moving parts.
        self.cam_rect = _axes_rect(self.ax_cam, height_px)
        self._time_axes = [self.ax_cmd, *self.trace_axes]
        self._time_rects = [_axes_rect(ax, height_px) for ax in self._time_axes]
        t = track.time_s
        self._marker_x = [
            _to_pixels(ax, np.stack([t, np.zeros_like(t)], 1), height_px)[:, 0]
            for ax in self._time_axes
        ]
        self._map_rect = _axes_rect(self.ax_map, height_px)
        self._car_px = _to_pixels(self.ax_map, np.stack([track.x_m, track.y_m], 1), height_px)
        self._lut = _lut(ACTIVITY_CMAP)
        self._nodes: np.ndarray | None = None
        self._sensory_nodes: np.ndarray | None = None
        if self.ax_wiring is not None and layout is not None:
            pos = wiring_positions(layout)
            self._nodes = _to_pixels(
                self.ax_wiring,
                np.array([pos[("neuron", i)] for i in range(layout.size)]),
                height_px,
            )
            if layout.sensory_adjacency is not None:
                s = layout.sensory_adjacency.shape[0]
                self._sensory_nodes = _to_pixels(
                    self.ax_wiring, np.array([pos[(SENSORY, i)] for i in range(s)]), height_px
                )
            self._activity = normalise_activity(track.states) if track.states is not None else None
            self._sensory_activity = (
                normalise_activity(track.sensory) if track.sensory is not None else None
            )
        fig.clear()

    def _colour(self, value: float) -> tuple[int, int, int]:
        k = int(np.clip((value + 1.0) * 127.5, 0, 255))
        r, g, b = self._lut[k]
        return int(r), int(g), int(b)

    def render(self, step: int, camera: np.ndarray) -> np.ndarray:
        """One video frame for step ``step``.

        Args:
            step: Index into the rollout, 0..T-1.
            camera: uint8 (h, w, 3) RGB, the camera image (with any saliency overlay).

        Returns:
            uint8 (H, W, 3) RGB frame.
        """
        if not 0 <= step < len(self.track):
            raise VisualizeError(f"step {step} outside 0..{len(self.track) - 1}")
        frame = self.background.copy()
        r = self.cam_rect
        frame[r.y0 : r.y1, r.x0 : r.x1] = cv2.resize(
            camera, (r.w, r.h), interpolation=cv2.INTER_LINEAR
        )
        t = self.track.time_s[step]
        label = f"t = {t:5.1f} s"
        for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # outlined text
            cv2.putText(
                frame,
                label,
                (r.x0 + 6, r.y0 + 18),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                colour,
                thickness,
                cv2.LINE_AA,
            )
        # Fade the future on every time axis and draw the time marker.
        for rect, xs in zip(self._time_rects, self._marker_x, strict=True):
            x = int(np.clip(xs[step], rect.x0, rect.x1 - 1) + 0.5)
            region = frame[rect.y0 : rect.y1, x + 1 : rect.x1]
            region[:] = (region.astype(np.uint16) * 2 + 255) // 3  # 2/3 image, 1/3 white
            cv2.line(frame, (x, rect.y0), (x, rect.y1 - 1), (0, 0, 0), 1, cv2.LINE_AA)
        self._draw_car(frame, step)
        if self._nodes is not None:
            self._draw_nodes(frame, step)
        return frame

    def _draw_car(self, frame: np.ndarray, step: int) -> None:
        x, y = self._car_px[step]
        yaw = float(self.track.yaw_rad[step])
        # Image rows grow downwards, so the heading's y component flips sign.
        fwd = np.array([np.cos(yaw), -np.sin(yaw)])
        left = np.array([-fwd[1], fwd[0]])
        tip = np.array([x, y]) + 11 * fwd
        back = np.array([x, y]) - 6 * fwd
        pts = np.array([tip, back + 6 * left, back - 6 * left])
        cv2.fillPoly(frame, [np.round(pts * 16).astype(np.int32)], (214, 39, 40), cv2.LINE_AA, 4)
        cv2.polylines(
            frame, [np.round(pts * 16).astype(np.int32)], True, (0, 0, 0), 1, cv2.LINE_AA, 4
        )

    def _draw_nodes(self, frame: np.ndarray, step: int) -> None:
        assert self._nodes is not None
        if self._sensory_nodes is not None:
            for k, (x, y) in enumerate(self._sensory_nodes):
                colour = (
                    self._colour(self._sensory_activity[step, k])
                    if self._sensory_activity is not None
                    else (160, 160, 160)
                )
                cv2.circle(frame, (round(x), round(y)), 3, colour, -1, cv2.LINE_AA)
        if self._activity is None:
            return
        for k, (x, y) in enumerate(self._nodes):
            c = (round(x), round(y))
            cv2.circle(frame, c, 7, self._colour(self._activity[step, k]), -1, cv2.LINE_AA)
            cv2.circle(frame, c, 7, (50, 50, 50), 1, cv2.LINE_AA)


def render_video(
    path: Path,
    renderer: FrameRenderer,
    cameras: Iterator[np.ndarray],
    fps: float,
    every: int = 1,
    scale: float = 1.0,
) -> int:
    """Renders every ``every``-th step of the rollout into a video; returns the frame count.

    Args:
        path: ``.mp4`` (H.264) or ``.gif``.
        renderer: The frame renderer of the rollout.
        cameras: One camera image (with overlay) per step, in order, uint8 (h, w, 3).
        fps: Frames per second of the written video.
        every: Keep one step in ``every`` (for a lighter GIF).
        scale: Resize factor of the written frames (the size is rounded to even pixels).
    """
    if every < 1:
        raise VisualizeError(f"every must be >= 1, got {every}")
    if not 0 < scale <= 1:
        raise VisualizeError(f"scale must be in (0, 1], got {scale}")
    h, w = renderer.size
    out_w, out_h = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
    n = 0
    with VideoWriter(path, out_w, out_h, fps) as writer:
        for step, camera in enumerate(tqdm(cameras, total=len(renderer.track), desc=path.name)):
            if step % every:
                continue
            frame = renderer.render(step, camera)
            if (out_h, out_w) != frame.shape[:2]:
                frame = cv2.resize(frame, (out_w, out_h), interpolation=cv2.INTER_AREA)
            writer.write(frame)
            n += 1
    return n


# ------------------------------------------------------------------------ rollouts on disk
def resolve_episode(path: Path, episode: int | None = None) -> Path:
    """The episode folder meant by ``path``: an episode folder, or a dataset/rollout folder.

    Args:
        path: ``<root>/episodes/episode_N``, or ``<root>`` (a dataset or an evaluation's
            rollout folder holding ``meta/info.json``).
        episode: Episode id to take from ``<root>``; None: the first one. Must be None when
            ``path`` is already an episode folder.

    Raises:
        VisualizeError: If nothing there is an episode (the message says what was found).
    """
    path = Path(path)
    if E.EPISODE_NAME_RE.match(path.name) and path.is_dir():
        if episode is not None and int(E.EPISODE_NAME_RE.match(path.name).group(1)) != episode:
            raise VisualizeError(f"{path} is an episode folder itself; drop --episode {episode}")
        return path
    try:
        found = E.list_episodes(path)
    except E.EpisodeFormatError as e:
        raise VisualizeError(f"--rollout {path}: {e}") from e
    if not found:
        raise VisualizeError(f"--rollout {path}: the dataset has no finished episode")
    if episode is None:
        return found[0]
    chosen = E.episode_dir(path, episode)
    if chosen not in found:
        ids = [p.name for p in found[:5]]
        raise VisualizeError(f"--rollout {path}: no episode {episode} (first ones: {ids})")
    return chosen


def neuron_columns(columns: dict[str, np.ndarray]) -> list[str]:
    """Names of the neuron-state columns of a rollout, in state order (``neuron_000`` ...)."""
    names = sorted(c for c in columns if c.startswith(E.NEURON_PREFIX))
    expected = [E.neuron_column(i) for i in range(len(names))]
    if names != expected:
        raise VisualizeError(f"neuron columns are not numbered 0..{len(names) - 1}: {names[:5]}")
    return names


def track_from_episode(episode: Any) -> RolloutTrack:
    """The per-step signals of a ``driving.data.episodes.Episode`` (a rollout or a recording).

    A rollout has ``curvature_pred`` and neuron columns; for a recorded demonstration (no
    prediction) the executed ``curvature_applied`` is drawn as the driver's command and there
    are no states.
    """
    cols = episode.columns
    pred = cols.get(E.CURVATURE_PRED)
    if pred is None:
        logger.info(
            "%s has no %s column: drawing %s", episode.path, E.CURVATURE_PRED, E.CURVATURE_APPLIED
        )
        pred = cols[E.CURVATURE_APPLIED]
    names = neuron_columns(cols)
    states = np.stack([cols[n] for n in names], axis=1) if names else None
    return RolloutTrack(
        t_s=cols[E.T_S],
        curvature_pred=pred,
        curvature_expert=cols[E.CURVATURE_EXPERT],
        x_m=cols[E.X_M],
        y_m=cols[E.Y_M],
        yaw_rad=cols[E.YAW_RAD],
        intervention=cols[E.INTERVENTION],
        states=states,
        title=(
            f"{episode.path.name}: town {episode.town}, weather {episode.weather}, "
            f"{len(episode)} steps, {int(cols[E.INTERVENTION].sum())} interventions"
        ),
    )


# --------------------------------------------------------------- policies: layout, saliency
def layout_from_policy(policy: Any) -> NeuronLayout | None:
    """The neuron layout of a ``SteeringPolicy``; None for a stateless core (cnn).

    Wired cores (cfc-ncp, ltc-ncp) get their wiring's groups and synapses; the others their
    hidden units (``h0`` ..., group ``hidden``) and no wiring.
    """
    if int(policy.state_size) == 0:
        return None
    if policy.wiring is not None:
        layout = NeuronLayout.from_wiring(policy.wiring)
        if layout.names != tuple(policy.neuron_names):
            raise VisualizeError(
                f"policy neuron names {policy.neuron_names[:3]}... differ from its wiring's"
            )
        return layout
    return NeuronLayout(tuple(policy.neuron_names), tuple(policy.neuron_groups))


@dataclass
class SaliencyReplay:
    """What replaying a policy over a rollout's frames gives, one row per step."""

    views: np.ndarray
    """The network's input view with the saliency overlay, uint8 (T, h, w, 3)."""
    features: np.ndarray
    """Sensory features from the conv head, (T, F)."""
    curvature: np.ndarray
    """The policy's command on these frames, open loop, 1/m, (T,)."""
    states: np.ndarray | None
    """Neuron states (T, N) of the open-loop replay; None for a stateless core."""


def _elapsed_s(t_s: np.ndarray, first_step_dt_s: float) -> np.ndarray:
    dt = np.diff(t_s, prepend=t_s[0] - first_step_dt_s)
    if len(t_s) > 1 and np.any(dt[1:] <= 0):
        raise VisualizeError(f"t_s must increase; it does not at step {int(np.argmin(dt[1:])) + 1}")
    return dt


def replay_with_saliency(
    policy: Any,
    frames: Iterator[np.ndarray] | Sequence[np.ndarray],
    t_s: np.ndarray,
    method: str = "visualbackprop",
    states: np.ndarray | None = None,
    batch: int = 64,
    ig_steps: int = 32,
) -> SaliencyReplay:
    """Runs a policy over a rollout's frames: saliency, sensory features, command, states.

    The recurrent state is carried over the whole sequence from zero (as in the closed loop).
    The captum methods explain the command at step ``i`` given the state before it: the
    rollout's recorded state ``states[i - 1]`` when given, else the replayed one.

    Args:
        policy: A ``driving.model.policy.SteeringPolicy`` (in eval mode).
        frames: The camera frames, uint8 (H, W, 3) RGB each, T of them.
        t_s: Simulation time of each frame, s, (T,).
        method: ``visualbackprop``, ``gradcam`` or ``integrated_gradients``.
        states: The rollout's neuron states (T, N), used as the captum methods' context.
        batch: Frames per forward pass.
        ig_steps: Integration steps of ``integrated_gradients``.

    Returns:
        A :class:`SaliencyReplay`.
    """
    if method not in METHODS:
        raise VisualizeError(f"unknown saliency method {method!r}; choose one of {METHODS}")
    t_s = np.asarray(t_s, dtype=np.float64)
    dt = _elapsed_s(t_s, float(policy.config.first_step_dt_s))
    n_state = int(policy.state_size)
    device = policy.device
    views, feats, curvature, replayed = [], [], [], []
    h = None
    it = iter(frames)
    for start in range(0, len(t_s), batch):
        chunk = [next(it) for _ in range(min(batch, len(t_s) - start))]
        raw = torch.from_numpy(np.stack(chunk)).to(device)  # (B, H, W, 3) uint8
        dt_b = torch.as_tensor(dt[start : start + len(chunk)], dtype=torch.float32, device=device)
        with torch.no_grad():
            x01 = policy.preprocess.prepare(raw)  # (B, 3, h, w) in [0, 1]
            x = policy.preprocess.normalize(x01)
            masks, f = visual_backprop_with_output(policy.head, x)  # (B, h, w), (B, F)
            # The core over the chunk, carrying the state: (1, B, F) -> (1, B, M), (1, B, N).
            elapsed = (dt_b / policy.config.time_scale_s)[None]  # (1, B)
            y, st = policy.core(f[None], elapsed, h)
            command = policy.readout(y[0]).squeeze(-1) / policy.config.label_scale  # (B,)
            h_prev = h
            h = st[:, -1] if n_state else None  # (1, N)
        if method != "visualbackprop":
            h_before = None
            if n_state and states is not None:
                prev = np.concatenate([np.zeros((1, n_state)), states[:-1]])
                h_before = torch.as_tensor(
                    prev[start : start + len(chunk)], dtype=torch.float32, device=device
                )
            elif n_state:
                first = torch.zeros(1, n_state, device=device) if h_prev is None else h_prev
                h_before = torch.cat([first, st[0, :-1]])  # (B, N): the state before each step
            masks = saliency_maps(
                method,  # type: ignore[arg-type]
                x.detach(),
                conv_stack=policy.head,
                forward_fn=_command_given_state(policy, elapsed[0], h_before),
                ig_steps=ig_steps,
            )
        view = (x01.permute(0, 2, 3, 1) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
        m = masks.detach().cpu().numpy()
        views.extend(overlay(v, mk) for v, mk in zip(view, m, strict=True))
        feats.append(f.cpu().numpy())
        curvature.append(command.detach().cpu().numpy())
        if n_state:
            replayed.append(st[0].detach().cpu().numpy())
    return SaliencyReplay(
        views=np.stack(views),
        features=np.concatenate(feats).astype(np.float64),
        curvature=np.concatenate(curvature).astype(np.float64),
        states=np.concatenate(replayed).astype(np.float64) if replayed else None,
    )


def _command_given_state(policy: Any, elapsed: Any, h_before: Any) -> Any:
    """``f(images) -> command (B,)`` with the recurrent state fixed, for the captum methods.

    captum evaluates several inputs per frame (integrated gradients stacks its steps along the
    batch), so the per-frame context is repeated to the batch it is called with.
    """

    def fn(x: Any) -> Any:
        k = x.shape[0] // elapsed.shape[0]
        h = None if h_before is None else h_before.repeat(k, 1)
        y, _ = policy.core.step(policy.head(x), elapsed.repeat(k), h)
        return policy.readout(y).squeeze(-1) / policy.config.label_scale

    return fn


# ------------------------------------------------------------------------- the whole job
@dataclass
class VisualizeConfig:
    """What ``tools/visualize.py`` draws from a rollout and a checkpoint."""

    rollout: Path
    """An episode folder (``.../episodes/episode_N``) or a rollout/dataset folder."""
    checkpoint: Path | None = None
    """Checkpoint folder (or training run) of the policy that drove; None: no saliency or
    wiring, the camera frames and any recorded neuron states only."""
    out: Path = Path("outputs/visualize")
    """Output folder for rollout.mp4, rollout.gif, frame.png, summary.png, wiring.png/.svg."""
    episode: int | None = None
    """Episode id when ``rollout`` is a folder of episodes; None: its first episode."""
    saliency: SaliencyMethod = "visualbackprop"
    """Saliency method: ``visualbackprop`` (NCP paper), ``gradcam`` or ``integrated_gradients``
    (captum; about 0.2 s and 2 s per frame on CPU)."""
    video: bool = True
    """Write the H.264 MP4 video."""
    gif: bool = False
    """Also write a GIF (every ``gif_every``-th step, scaled by ``gif_scale``)."""
    gif_every: int = 2
    """Keep one step in this many for the GIF."""
    gif_scale: float = 0.5
    """Size of the GIF frames relative to the video frames, in (0, 1]."""
    width_px: int = 1280
    """Video frame width, pixels (even)."""
    height_px: int = 720
    """Video frame height, pixels (even)."""
    fps: float | None = None
    """Video frames per second; None: real time (the rollout's control rate)."""
    max_steps: int | None = None
    """Draw only the first this many steps; None: all."""
    crf: int = 23
    """x264 quality (0 lossless .. 51 worst; 23 is x264's default)."""
    device: str = "cpu"
    """Torch device for the policy replay and saliency."""

    def __post_init__(self) -> None:
        if self.saliency not in METHODS:
            raise VisualizeError(f"--saliency must be one of {METHODS}, got {self.saliency!r}")
        if self.width_px % 2 or self.height_px % 2 or self.width_px < 320 or self.height_px < 240:
            size = f"{self.width_px}x{self.height_px}"
            raise VisualizeError(f"video size must be even and at least 320x240, got {size}")
        if self.gif_every < 1 or not 0 < self.gif_scale <= 1:
            raise VisualizeError(
                f"need gif_every >= 1 and 0 < gif_scale <= 1, got {self.gif_every}, "
                f"{self.gif_scale}"
            )
        if self.fps is not None and not self.fps > 0:
            raise VisualizeError(f"--fps must be positive, got {self.fps}")
        if self.max_steps is not None and self.max_steps < 1:
            raise VisualizeError(f"--max-steps must be >= 1, got {self.max_steps}")
        if not 0 <= self.crf <= 51:
            raise VisualizeError(f"--crf must be in 0..51, got {self.crf}")


_METHOD_TITLES = {
    "visualbackprop": "VisualBackProp",
    "gradcam": "Grad-CAM",
    "integrated_gradients": "integrated-gradients",
}


def _take(track: RolloutTrack, n: int) -> RolloutTrack:
    if n >= len(track):
        return track
    cut = {
        k: (None if getattr(track, k) is None else getattr(track, k)[:n])
        for k in (
            "t_s",
            "curvature_pred",
            "curvature_expert",
            "x_m",
            "y_m",
            "yaw_rad",
            "intervention",
            "states",
            "sensory",
        )
    }
    return RolloutTrack(**cut, title=f"{track.title} (first {n} steps)")


def visualize(cfg: VisualizeConfig) -> dict[str, Any]:
    """Writes the video, the summary and the wiring figures of one rollout.

    Returns:
        What was written and how long each part took: ``{"episode", "steps", "files":
        {name: path}, "seconds": {part: s}}``.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    path = resolve_episode(cfg.rollout, cfg.episode)
    episode = E.read_episode(path)
    track = track_from_episode(episode)
    if cfg.max_steps is not None:
        track = _take(track, cfg.max_steps)
    n = len(track)
    policy, layout = None, None
    if cfg.checkpoint is not None:
        policy = load_policy(cfg.checkpoint, device=cfg.device)
        layout = layout_from_policy(policy)
    elif track.states is not None:
        layout = NeuronLayout.hidden(track.states.shape[1])
    if layout is not None and track.states is not None and track.states.shape[1] != layout.size:
        raise VisualizeError(
            f"{path}: {track.states.shape[1]} neuron columns but the checkpoint's core has "
            f"{layout.size} neurons: was this rollout driven by another model?"
        )
    timings["load"] = time.perf_counter() - t0
    frames = (episode.frame(i) for i in range(n))
    t0 = time.perf_counter()
    if policy is not None:
        replay = replay_with_saliency(policy, frames, track.t_s, cfg.saliency, states=track.states)
        views = replay.views
        track.sensory = replay.features
        if track.states is None and replay.states is not None:
            logger.info("%s has no neuron columns: drawing the open-loop replay's", path)
            track.states = replay.states
        if E.CURVATURE_PRED not in episode.columns:
            track.curvature_pred = replay.curvature
            track.title += " - policy replayed open loop"
    else:
        views = np.stack(list(frames))
    timings["saliency"] = time.perf_counter() - t0
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    t0 = time.perf_counter()
    summary_figure(track, layout).savefig(out / "summary.png", dpi=100)
    files["summary"] = out / "summary.png"
    if layout is not None and layout.has_wiring:
        title = f"{policy.config.core} wiring (seed {policy.config.wiring_seed})" if policy else ""
        files["wiring_png"], files["wiring_svg"] = save_wiring(layout, out, title)
    timings["figures"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    name = _METHOD_TITLES[cfg.saliency] if policy is not None else ""
    renderer = FrameRenderer(
        track, layout, views.shape[1:3], cfg.width_px, cfg.height_px, saliency_name=name
    )
    still = renderer.render(n // 2, views[n // 2])
    cv2.imwrite(str(out / "frame.png"), still[..., ::-1])
    files["frame"] = out / "frame.png"
    dt = np.diff(track.t_s)
    fps = cfg.fps or (float(1.0 / np.median(dt)) if len(dt) else 20.0)
    if cfg.video:
        render_video(out / "rollout.mp4", renderer, iter(views), fps)
        files["video"] = out / "rollout.mp4"
    timings["video"] = time.perf_counter() - t0
    if cfg.gif:
        t0 = time.perf_counter()
        gif = out / "rollout.gif"
        render_video(gif, renderer, iter(views), fps / cfg.gif_every, cfg.gif_every, cfg.gif_scale)
        files["gif"] = gif
        timings["gif"] = time.perf_counter() - t0
    logger.info("wrote %s", ", ".join(str(p) for p in files.values()))
    return {
        "episode": str(path),
        "steps": n,
        "files": {k: str(v) for k, v in files.items()},
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }


# ------------------------------------------------------------------------ training (TensorBoard)
def training_figures(policy: Any, window: dict[str, Any], saliency_frames: int = 4) -> dict:
    """Images of one validation window for TensorBoard: neuron traces and saliency.

    Args:
        policy: A ``driving.model.policy.SteeringPolicy`` (its train/eval mode is restored after).
        window: One item of ``driving.data.windows.WindowDataset`` (``frames`` uint8 (T, H, W, 3),
            ``dt_s`` (T,), ``label`` (T,)), or a batch of them (the first window is used).
        saliency_frames: How many frames, evenly spaced over the window, get a saliency map.

    Returns:
        ``{"neuron_traces": uint8 (H, W, 3), "saliency": uint8 (H, W, 3)}``: the command vs the
        label over the window above the neuron traces by group, and a column of the network's
        input view of the chosen frames with their VisualBackProp overlay.
    """
    frames, dt_s, label = window["frames"], window["dt_s"], window["label"]
    if frames.ndim == 5:  # a batch: take the first window
        frames, dt_s, label = frames[0], dt_s[0], label[0]
    if frames.ndim != 4 or frames.dtype != torch.uint8:
        raise VisualizeError(
            f"window['frames'] must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}"
        )
    was_training = policy.training
    policy.eval()
    try:
        with torch.no_grad():
            device = policy.device
            curvature, states = policy(frames[None].to(device), dt_s[None].to(device))
            idx = np.linspace(0, len(frames) - 1, min(saliency_frames, len(frames))).round()
            picked = frames[torch.as_tensor(idx.astype(np.int64))].to(device)
            x01 = policy.preprocess.prepare(picked)
            masks = visual_backprop(policy.head, policy.preprocess.normalize(x01))
    finally:
        policy.train(was_training)
    t = np.cumsum(dt_s.double().cpu().numpy())
    zeros = np.zeros(len(t))
    n_state = states.shape[-1]
    track = RolloutTrack(
        t_s=t,
        curvature_pred=curvature[0].double().cpu().numpy(),
        curvature_expert=label.double().cpu().numpy(),
        x_m=zeros,
        y_m=zeros,
        yaw_rad=zeros,
        intervention=zeros.astype(bool),
        states=states[0].double().cpu().numpy() if n_state else None,
    )
    layout = layout_from_policy(policy)
    groups = layout.group_indices() if layout is not None else {}
    height = 170 + 130 * len(groups)
    fig = _figure(900, height)
    fig.subplots_adjust(left=0.12, right=0.98, top=1 - 30 / height, bottom=45 / height)
    axes = fig.subplots(1 + len(groups), 1, sharex=True, squeeze=False)[:, 0]
    draw_command(axes[0], track)
    axes[0].set_xlabel("")
    if layout is not None:
        draw_traces(list(axes[1:]), track, layout)
    axes[-1].set_xlabel("time in the window (s)", fontsize=8)
    traces = figure_to_array(fig)
    view = (x01.permute(0, 2, 3, 1) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
    tiles = [overlay(v, m) for v, m in zip(view, masks.cpu().numpy(), strict=True)]
    gap = np.full((2, view.shape[2], 3), 255, np.uint8)
    column = np.concatenate([x for tile in tiles for x in (tile, gap)][:-1])
    column = cv2.resize(column, (2 * column.shape[1], 2 * column.shape[0]), cv2.INTER_NEAREST)
    return {"neuron_traces": traces, "saliency": column}


def log_training_figures(writer: Any, policy: Any, window: dict[str, Any], step: int) -> None:
    """Logs :func:`training_figures` as TensorBoard images ``figures/<name>``.

    Args:
        writer: A ``torch.utils.tensorboard.SummaryWriter``.
        policy: The policy being trained.
        window: A fixed validation window (one ``WindowDataset`` item, or a batch).
        step: The global training step.
    """
    for tag, image in training_figures(policy, window).items():
        writer.add_image(f"figures/{tag}", image, step, dataformats="HWC")

"""The matplotlib panels: neuron traces, command, route, and the one-page summary figure.

Every panel draws a :class:`~driving.viz.track.RolloutTrack` (and a
:class:`~driving.viz.layout.NeuronLayout` where neurons are shown) into a given axis, so the
summary figure, the video background (``driving.viz.renderer``) and the TensorBoard figures
(``driving.viz.tensorboard``) share them. Rendering uses matplotlib's Agg canvas directly (no
pyplot, no global backend).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from driving.viz.commands import draw_command_zones
from driving.viz.layout import (
    ACTIVITY_CMAP,
    EXPERT_COLOUR,
    INTERVENTION_COLOUR,
    MAX_TRACE_LINES,
    MOTOR,
    PRED_COLOUR,
    NeuronLayout,
    VisualizeError,
)
from driving.viz.track import RolloutTrack


def new_figure(width_px: int, height_px: int, dpi: int = 100, layout: str | None = None) -> Figure:
    """An Agg-backed figure of ``width_px`` x ``height_px`` pixels (no pyplot, no global state)."""
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


def lut(cmap_name: str) -> np.ndarray:
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
            colours = lut("tab20")[np.arange(len(idx)) * 256 // 20 % 256] / 255.0
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
    fig = new_figure(1200, round(220 + 150 * sum(trace_heights) + 330), layout="constrained")
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
    draw_command_zones(ax_map, track.x_m, track.y_m, track.command)
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

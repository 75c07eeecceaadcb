"""The evaluation's plots and ``report.md``: per-suite bar charts and bird's-eye trajectories.

Drawn from a ``metrics.json`` document (:mod:`driving.evaluate.report`) and, for the
trajectories, :class:`~driving.evaluate.report.TrajectoryTrace` objects; matplotlib's object
API, no pyplot and no global backend switch.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from driving.evaluate.report import EXPERT, ReportError, TrajectoryTrace, render_markdown

log = logging.getLogger(__name__)


def plot_filename(kind: str, *parts: str) -> str:
    """A safe PNG file name such as ``bars_train-towns.png``."""
    slug = "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", p).strip("-") for p in (kind, *parts))
    return f"{slug}.png"


def plot_suite_bars(doc: dict[str, Any], suite: str, path: str | Path) -> Path:
    """Bar chart of one suite: interventions per km, lateral RMS and steering rate per model.

    The bars are grouped by condition (noise level, control rate), or by town for a suite
    with one condition. Bars are per-episode means with the sample standard deviation as
    error bars.
    """
    from matplotlib.figure import Figure

    models = [m["name"] for m in doc["models"]]
    ours = [r for r in doc["summary"] if r["suite"] == suite]
    if not ours:
        raise ReportError(f"no results for suite {suite!r}")
    n_conditions = len({r["key"] for r in ours if r["group"] == "condition"})
    group = "condition" if n_conditions > 1 else "town"
    rows = [r for r in ours if r["group"] == group]
    conditions = list(dict.fromkeys(r["key"] for r in rows))
    index = {(r["model"], r["key"]): r for r in rows}
    panels = (
        ("interventions_per_km", "interventions per km"),
        ("lateral_error_rms_m", "lateral error RMS (m)"),
        ("steering_rate_rms", "steering rate RMS (1/(m·s))"),
    )
    fig = Figure(figsize=(max(6.0, 2.0 + 0.8 * len(conditions) * max(len(models), 2)), 3.4 * 3))
    axes = fig.subplots(len(panels), 1, sharex=True)
    width = 0.8 / len(models)
    x = np.arange(len(conditions))
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for j, m in enumerate(models):
            means, errs = [], []
            for c in conditions:
                st = index[(m, c)]["stats"][metric] if (m, c) in index else None
                means.append(np.nan if st is None or st["mean"] is None else st["mean"])
                errs.append(0.0 if st is None or st["std"] is None else st["std"])
            color = "0.55" if m == EXPERT else None
            ax.bar(
                x + (j - (len(models) - 1) / 2) * width,
                means,
                width,
                yerr=errs,
                capsize=3,
                label=m,
                color=color,
            )
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[-1].set_xticks(x, conditions)
    axes[0].legend(fontsize="small", ncols=min(len(models), 4))
    axes[0].set_title(f"suite {suite}, by {group}: mean ± std across episodes")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return Path(path)


def plot_trajectories(
    traces: Sequence[TrajectoryTrace], path: str | Path, *, title: str, max_panels: int = 12
) -> Path:
    """Bird's-eye trajectories, one panel per episode, every model overlaid, departures marked.

    Args:
        traces: Trajectories of several models on the same episodes (matched by spec).
        path: PNG to write.
        title: Figure title.
        max_panels: At most this many episodes are drawn (the first ones).
    """
    from matplotlib.figure import Figure

    if not traces:
        raise ReportError("no trajectories to plot")
    episodes = list(dict.fromkeys(t.spec for t in traces))[:max_panels]
    models = list(dict.fromkeys(t.model for t in traces))
    cols = min(len(episodes), 3)
    rows = math.ceil(len(episodes) / cols)
    fig = Figure(figsize=(4.2 * cols, 4.0 * rows + 0.6))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).reshape(-1)
    palette = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown"]
    colors = {}
    for m in models:
        colors[m] = "0.5" if m == EXPERT else palette[len(colors) % len(palette)]
    for k, (ax, spec) in enumerate(zip(axes[: len(episodes)], episodes, strict=True)):
        for t in (t for t in traces if t.spec == spec):
            expert = t.model == EXPERT
            ax.plot(
                t.x_m,
                t.y_m,
                color=colors[t.model],
                lw=2.5 if expert else 1.2,
                ls="--" if expert else "-",
                label=t.model,
                zorder=1 if expert else 2,
            )
            if len(t.departures_xy_m):
                ax.scatter(
                    t.departures_xy_m[:, 0],
                    t.departures_xy_m[:, 1],
                    marker="X",
                    s=55,
                    color=colors[t.model],
                    edgecolors="k",
                    linewidths=0.6,
                    zorder=3,
                    label=f"{t.model} departure",
                )
            ax.plot(t.x_m[:1], t.y_m[:1], "o", color="k", ms=4, zorder=3)
        ax.set_title(
            f"{spec.town} / {spec.weather} / route {spec.route}\n{spec.condition}", fontsize="small"
        )
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize="x-small", loc="best")
    for ax in axes[len(episodes) :]:
        ax.set_visible(False)
    fig.suptitle(f"{title} (start: black dot; departures: X in the model's colour)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return Path(path)


def write_report(
    doc: dict[str, Any],
    out_dir: str | Path,
    traces: Sequence[TrajectoryTrace] = (),
) -> Path:
    """Writes ``report.md`` and its plots (a bar chart per suite, trajectories per condition).

    Args:
        doc: A ``metrics.json`` document.
        out_dir: Output folder (created if needed).
        traces: Optional trajectories for the bird's-eye plots.

    Returns:
        The path of ``report.md``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suites = list(dict.fromkeys(r["suite"] for r in doc["summary"]))
    plots: dict[str, list[str]] = {s: [] for s in suites}
    for s in suites:
        name = plot_filename("bars", s)
        plot_suite_bars(doc, s, out_dir / name)
        plots[s].append(name)
        conditions = list(dict.fromkeys(t.spec.condition for t in traces if t.spec.suite == s))
        for c in conditions:
            chosen = [t for t in traces if t.spec.suite == s and t.spec.condition == c]
            name = plot_filename("trajectories", s, c)
            plot_trajectories(chosen, out_dir / name, title=f"{s} / {c}")
            plots[s].append(name)
    path = out_dir / "report.md"
    path.write_text(render_markdown(doc, plots))
    log.info("wrote %s and %d plots", path, sum(len(p) for p in plots.values()))
    return path

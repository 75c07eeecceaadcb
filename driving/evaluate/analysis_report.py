"""Figures and the markdown section of the NCP paper's analyses (``analyses.json``).

:func:`write_outputs` writes ``analyses.json``, the PNG figures and ``analyses.md``;
:func:`include_in_report` puts the same section into an evaluation's ``report.md`` between
two marker comments (replacing an earlier one), with the figure links relative to it.
Matplotlib's object API, no pyplot and no global backend switch (as ``report.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from driving.data.atomic import write_json_atomic

ANALYSES_FILE = "analyses.json"
SECTION_FILE = "analyses.md"
BEGIN = "<!-- ncp-analyses: begin -->"
END = "<!-- ncp-analyses: end -->"
FIGURES = {
    "noise_curve": "noise_curve.png",
    "ssim": "ssim.png",
    "lipschitz": "lipschitz.png",
    "pca": "pca.png",
}
"""Figure name -> file name in the output folder."""
_PAPER_ROW = {"cfc-ncp": "NCP", "ltc-ncp": "NCP", "cnn": "CNN", "lstm": "LSTM"}
"""Our cores the NCP paper's PCA rows correspond to (roughly: same role, other cells)."""


def _figure(width: float, height: float = 3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def plot_noise_curve(curves: dict[str, Any], path: Path) -> Path:
    """Interventions per km against noise variance, a line per model with its interval."""
    fig, ax = _figure(6.4)
    for family, c in curves.items():
        var, mean = np.asarray(c["variance"]), np.asarray(c["mean"])
        (line,) = ax.plot(var, mean, "o-", label=f"{family} ({c['interval']})")
        ax.fill_between(var, c["low"], c["high"], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("image-noise variance on [0, 1] images")
    ax.set_ylabel("interventions per km")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title("closed loop under image noise (NCP paper Fig. 4a)")
    return _save(fig, path)


def plot_ssim(models: list[dict[str, Any]], path: Path) -> Path:
    """Mean SSIM of clean vs noisy VisualBackProp maps, bars per noise level and model."""
    levels = list(models[0]["ssim"]["by_variance"])
    fig, ax = _figure(max(5.0, 1.5 + 0.5 * len(levels) * len(models)))
    width = 0.8 / len(models)
    x = np.arange(len(levels))
    for j, m in enumerate(models):
        st = [m["ssim"]["by_variance"][v] for v in levels]
        ax.bar(x + (j - (len(models) - 1) / 2) * width, [s["mean"] for s in st], width,
               yerr=[s["std"] for s in st], capsize=2, label=m["name"])  # fmt: skip
    ax.set_xticks(x, [f"variance {v}" for v in levels])
    ax.set_ylabel("SSIM (clean vs noisy map)")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"attention stability, {models[0]['ssim']['frames']} frames; whiskers: std")
    return _save(fig, path)


def plot_lipschitz(models: list[dict[str, Any]], path: Path) -> Path:
    """Each neuron's maximum local Lipschitz constant, a box and dots per model."""
    fig, ax = _figure(max(5.5, 1.5 + 1.0 * len(models)))
    values = [m["lipschitz"]["per_neuron"] for m in models]
    ax.boxplot(values, showfliers=False)
    for i, v in enumerate(values, start=1):
        jitter = np.linspace(-0.15, 0.15, len(v)) if len(v) > 1 else [0.0]
        ax.plot(i + np.asarray(jitter), v, "k.", markersize=3)
    ax.set_xticks(range(1, len(models) + 1), [m["name"] for m in models])
    ax.set_ylabel("max |x(t+1) - x(t)| per neuron")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("smoothness (NCP paper Fig. 4c)\nlower is smoother; dots: neurons")
    return _save(fig, path)


def plot_pca(models: list[dict[str, Any]], paper: dict[str, float], path: Path) -> Path:
    """Variance share of the first principal component per model, the paper's for reference."""
    fig, ax = _figure(max(5.5, 1.5 + 1.0 * len(models)))
    x = np.arange(len(models))
    ax.bar(x, [100 * m["pca"]["pc1_share"] for m in models], 0.6)
    for i, m in enumerate(models):
        row = _PAPER_ROW.get(m["core"])
        if row is not None and row in paper:
            ax.plot([i - 0.35, i + 0.35], [100 * paper[row]] * 2, "k--", linewidth=1)
            ax.annotate(f"paper {row}", (i - 0.33, 100 * paper[row] + 1.5), fontsize="x-small")
    ax.set_xticks(x, [m["name"] for m in models])
    ax.set_ylabel("variance explained by PC1 (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("PCA of neuron activity (NCP paper Fig. 5j)\ndashed: the paper's value")
    return _save(fig, path)


def render_section(doc: dict[str, Any], figures: dict[str, str]) -> str:
    """The markdown section: a table per model, then the figures (paths as given)."""
    levels = [f"{v:g}" for v in doc["variances"]]
    lines = [
        "## The NCP paper's analyses",
        "",
        f"Rollouts: {doc['suite']} / {doc['condition']} of `{doc['rollouts']}`; SSIM noise seed "
        f"{doc['noise_seed']}. Definitions: `driving/evaluate/analyses.py`.",
        "",
        "| model | activity | steps | PC1 share | L_max median | L_max max | "
        + " | ".join(f"SSIM var {v}" for v in levels)
        + " |",
        "|---" * (5 + len(levels)) + "|---|",
    ]
    for m in doc["models"]:
        ssim = [m["ssim"]["by_variance"][v] for v in levels]
        lines.append(
            f"| {m['name']} | {'replayed' if 'replayed' in m['activity'] else 'recorded'} | "
            f"{m['steps']} | {100 * m['pca']['pc1_share']:.1f} % | "
            f"{m['lipschitz']['median']:.3f} | {m['lipschitz']['max']:.3f} | "
            + " | ".join(f"{s['mean']:.3f} ± {s['std']:.3f}" for s in ssim)
            + " |"
        )
    paper = ", ".join(f"{k} {100 * v:.0f} %" for k, v in doc["paper_pc1_share"].items())
    lines += ["", f"The paper's PC1 shares: {paper}.", ""]
    if not doc["noise_curve"]:
        lines += ["No noise curve: no `noise-variance` rows in the metrics given.", ""]
    lines += [f"![{name}]({path})" for name, path in figures.items()]
    return "\n".join(lines) + "\n"


def include_in_report(analyses: Path, report: Path) -> Path:
    """Puts the section of ``analyses`` (an ``analyses.json``) into ``report``, once."""
    doc = json.loads(Path(analyses).read_text())
    base = Path(analyses).parent
    rel = {k: os.path.relpath(base / f, Path(report).parent) for k, f in doc["figures"].items()}
    section = f"{BEGIN}\n{render_section(doc, rel)}{END}\n"
    text = Path(report).read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    Path(report).write_text(text)
    return Path(report)


def write_outputs(doc: dict[str, Any], out: Path, report: Path | None = None) -> dict[str, Path]:
    """Writes the figures, ``analyses.json`` and ``analyses.md`` into ``out``.

    Args:
        doc: The analyses document (``driving.evaluate.analyze``); gains ``figures``.
        out: Output folder (created).
        report: An evaluation's ``report.md`` to put the section into, if it exists.

    Returns:
        Name -> path of everything written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    if doc["noise_curve"]:
        files["noise_curve"] = plot_noise_curve(doc["noise_curve"], out / FIGURES["noise_curve"])
    files["ssim"] = plot_ssim(doc["models"], out / FIGURES["ssim"])
    files["lipschitz"] = plot_lipschitz(doc["models"], out / FIGURES["lipschitz"])
    files["pca"] = plot_pca(doc["models"], doc["paper_pc1_share"], out / FIGURES["pca"])
    doc["figures"] = {k: p.name for k, p in files.items()}
    files["json"] = write_json_atomic(out / ANALYSES_FILE, doc)
    files["markdown"] = out / SECTION_FILE
    files["markdown"].write_text(render_section(doc, doc["figures"]))
    if report is not None and Path(report).is_file():
        files["report"] = include_in_report(files["json"], Path(report))
    return files

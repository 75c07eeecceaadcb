"""Inspecting a dataset: validate it, summarise it, draw it, optionally salvage it first.

:func:`inspect_dataset` runs the same validation as training
(:func:`driving.data.validate.validate_dataset`, collecting every bad episode), counts
episodes, simulated hours and km per town and weather, outcomes, the noise share and label
statistics, and writes ``label_histogram.png``, ``contact_sheet.png`` and ``summary.json``
(default folder ``<dataset>/meta/inspect``). matplotlib is imported only to draw.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
import tyro

from driving.data import format as F
from driving.data.atomic import atomic_path, write_bytes_atomic, write_json_atomic
from driving.data.reader import Episode
from driving.data.salvage import salvage_dataset
from driving.data.validate import validate_dataset
from sim.spec import COMMAND_NAMES

logger = logging.getLogger(__name__)

SHEET_COLUMNS = 6
"""Tiles per row of the contact sheet."""


@dataclass(frozen=True)
class InspectConfig:
    """What to inspect and where the report goes."""

    data: Annotated[Path, tyro.conf.Positional]
    """The dataset folder (holds ``meta/info.json``)."""
    salvage: bool = False
    """First finalise interrupted ``episode_N.partial`` folders from their complete rows
    (folders a live recorder is still writing are refused and left alone)."""
    out_dir: Path | None = None
    """Where the figures and ``summary.json`` go (default ``<data>/meta/inspect``)."""
    check_frames: bool = True
    """Decode every frame; otherwise check each frame's JPEG structure and checksum only."""
    label_bins: int = 41
    """Histogram bins of the label."""
    sheet_frames: int = 36
    """Frames on the contact sheet."""


def _duration_s(t: np.ndarray) -> float:
    """Simulated time covered by steps at times ``t`` (last minus first plus one interval)."""
    return float(t[-1] - t[0] + (t[1] - t[0] if len(t) > 1 else 0.0))


def summarize(episodes: list[Episode], label_bins: int = 41) -> dict[str, Any]:
    """Counts, hours and km per town and weather, outcomes and label statistics.

    Args:
        episodes: The episodes to count.
        label_bins: Number of histogram bins of the label (``curvature_expert``).
    """
    per: dict[str, dict[str, dict[str, float]]] = {"town": {}, "weather": {}}
    outcomes: Counter[str] = Counter()
    hours = km = 0.0
    steps = noise = policy = 0
    labels, applied = [], []
    commands: Counter[str] = Counter()
    for e in episodes:
        h = _duration_s(e.columns[F.T_S]) / 3600.0
        d = float(e.meta.get("distance_m", e.columns[F.PROGRESS_M][-1])) / 1000.0
        for key, name in (("town", e.town), ("weather", e.weather)):
            row = per[key].setdefault(name, {"episodes": 0, "hours": 0.0, "km": 0.0})
            row["episodes"] += 1
            row["hours"] += h
            row["km"] += d
        outcomes[str(e.meta.get("outcome", "?"))] += 1
        hours, km, steps = hours + h, km + d, steps + len(e)
        noise += int(e.columns[F.NOISE_ACTIVE].sum())
        if F.POLICY_DROVE in e.columns:  # recorded with --driver; without it the expert drove
            policy += int(e.columns[F.POLICY_DROVE].sum())
        labels.append(e.columns[F.CURVATURE_EXPERT])
        applied.append(e.columns[F.CURVATURE_APPLIED])
        values, counts = np.unique(e.columns[F.COMMAND], return_counts=True)
        commands.update(
            {COMMAND_NAMES[int(v)]: int(c) for v, c in zip(values, counts, strict=True)}
        )
    y = np.concatenate(labels) if labels else np.zeros(0)
    summary: dict[str, Any] = {
        "episodes": len(episodes),
        "steps": steps,
        "hours": hours,
        "km": km,
        "by_town": per["town"],
        "by_weather": per["weather"],
        "outcomes": dict(outcomes),
        "steps_by_command": {name: commands[name] for name in COMMAND_NAMES},
        "noise_share": noise / steps if steps else 0.0,
        "driver_share": {
            "policy": policy / steps if steps else 0.0,
            "expert": 1.0 - policy / steps if steps else 0.0,
        },
    }
    if y.size:
        lim = float(np.abs(y).max()) or 1e-3
        counts, edges = np.histogram(y, bins=label_bins, range=(-lim, lim))
        summary["label"] = {
            "column": F.CURVATURE_EXPERT,
            "unit": "1/m",
            "mean": float(y.mean()),
            "std": float(y.std()),
            "min": float(y.min()),
            "max": float(y.max()),
            "abs_p50": float(np.percentile(np.abs(y), 50)),
            "abs_p95": float(np.percentile(np.abs(y), 95)),
            "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
            "applied_minus_label_rms": float(np.sqrt(np.mean((np.concatenate(applied) - y) ** 2))),
        }
    return summary


def contact_sheet(episodes: list[Episode], max_frames: int = 36) -> np.ndarray:
    """Frames spread over the episodes and their length, tiled: uint8 (H', W', 3) RGB.

    Each tile is captioned with the episode id, town and weather.
    """
    picks: list[tuple[Episode, int]] = []
    if episodes:
        per_episode = max(1, max_frames // len(episodes))
        chosen = episodes[:: max(1, len(episodes) // max_frames)] if per_episode == 1 else episodes
        for e in chosen:
            inner = np.linspace(0, len(e) - 1, per_episode + 2)[1:-1]  # skip the very ends
            for i in inner.round().astype(int):
                picks.append((e, int(i)))
        picks = picks[:max_frames]
    h, w = episodes[0].image_shape[:2] if episodes else (78, 200)
    rows = max(1, -(-len(picks) // SHEET_COLUMNS))
    sheet = np.full((rows * (h + 14), SHEET_COLUMNS * w, 3), 255, np.uint8)
    for k, (e, i) in enumerate(picks):
        r, c = divmod(k, SHEET_COLUMNS)
        y0, x0 = r * (h + 14), c * w
        sheet[y0 + 14 : y0 + 14 + h, x0 : x0 + w] = e.frame(i)
        caption = f"{e.index}:{i} {e.town}/{e.weather}"
        cv2.putText(sheet, caption, (x0 + 2, y0 + 11), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1)
    return sheet


def plot_labels(episodes: list[Episode], summary: dict[str, Any], path: Path) -> None:
    """Draws the label and applied-curvature histograms to the PNG ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    if "label" in summary:
        edges = np.asarray(summary["label"]["histogram"]["edges"])
        y = np.concatenate([e.columns[F.CURVATURE_EXPERT] for e in episodes])
        a = np.concatenate([e.columns[F.CURVATURE_APPLIED] for e in episodes])
        ax.hist(a, bins=edges, alpha=0.5, label="applied (with noise)", color="tab:orange")
        ax.hist(y, bins=edges, alpha=0.7, label="curvature_expert (label)", color="tab:blue")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("curvature (1/m), + = left")
    ax.set_ylabel("steps")
    ax.set_title(f"{summary['episodes']} episodes, {summary['steps']} steps", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a short text table (one screen)."""
    lines = [
        f"dataset {summary['dataset']}: {summary['episodes']} episodes, {summary['steps']} steps, "
        f"{summary['hours']:.2f} h, {summary['km']:.1f} km; noise active "
        f"{100 * summary['noise_share']:.0f}% of steps",
        f"  partial (unfinished) episodes: {summary['partial_episodes']}; "
        f"bad episodes: {len(summary['bad_episodes'])}",
    ]
    share = summary.get("driver_share", {}).get("policy", 0.0)
    if share > 0:
        lines.append(
            f"  the policy drove {100 * share:.0f}% of steps (DAgger), the expert the rest"
        )
    for key in ("by_town", "by_weather"):
        lines.append(f"  {key[3:]:<14} {'episodes':>8} {'hours':>7} {'km':>7}")
        for name, row in sorted(summary[key].items()):
            lines.append(
                f"  {name:<14} {row['episodes']:>8} {row['hours']:>7.2f} {row['km']:>7.1f}"
            )
    lines.append(
        "  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["outcomes"].items()))
    )
    lines.append(
        "  steps by route command: "
        + ", ".join(f"{k} {v}" for k, v in summary.get("steps_by_command", {}).items())
    )
    if "label" in summary:
        lab = summary["label"]
        lines.append(
            f"  label curvature_expert (1/m): mean {lab['mean']:+.4f} std {lab['std']:.4f} "
            f"|y| p50 {lab['abs_p50']:.4f} p95 {lab['abs_p95']:.4f} "
            f"range [{lab['min']:+.4f}, {lab['max']:+.4f}]"
        )
    for bad in summary["bad_episodes"]:
        lines.append(f"  BAD {bad['error']}")
    for message in summary.get("salvage_refused", []):
        lines.append(f"  NOT SALVAGED {message}")
    for name, path in summary.get("figures", {}).items():
        lines.append(f"  {name}: {path}")
    return "\n".join(lines)


def inspect_dataset(cfg: InspectConfig) -> dict[str, Any]:
    """Validates and summarises a dataset, writing figures and ``summary.json``.

    Returns:
        The summary (also written as ``summary.json``); ``bad_episodes`` lists each bad
        entry or episode with its error.

    Raises:
        driving.data.errors.NotADatasetError: If ``cfg.data`` is not a dataset.
        driving.data.errors.EpisodeFormatError: If ``meta/info.json`` is bad.
    """
    data = Path(cfg.data)
    F.read_info(data)  # not a dataset: an error before anything is salvaged or written
    salvaged, refused = [], []
    if cfg.salvage:
        report = salvage_dataset(data)
        salvaged = [str(p) for p in report.salvaged]
        refused = report.live + report.failed
        for message in refused:
            logger.warning("not salvaged: %s", message)
    check = validate_dataset(
        data, frames="decode" if cfg.check_frames else "structure", keep_going=True
    )
    info, good = check.info, check.episodes
    summary = {
        "dataset": str(data),
        "format": info.format,
        "format_version": info.format_version,
        "sim": info.sim,
        "camera": info.camera,
        "control_rate_hz": info.control_rate_hz,
        "partial_episodes": len(check.partial),
        "bad_episodes": [{"episode": str(p), "error": str(e)} for p, e in check.problems],
        "salvaged": salvaged,
        "salvage_refused": refused,
        **summarize(good, cfg.label_bins),
    }
    out = Path(cfg.out_dir) if cfg.out_dir is not None else data / "meta" / "inspect"
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "label_histogram": out / "label_histogram.png",
        "contact_sheet": out / "contact_sheet.png",
    }
    plot_labels(good, summary, figures["label_histogram"])
    sheet = contact_sheet(good, cfg.sheet_frames)
    write_bytes_atomic(
        figures["contact_sheet"], cv2.imencode(".png", sheet[..., ::-1])[1].tobytes()
    )
    summary["figures"] = {k: str(v) for k, v in figures.items()}
    write_json_atomic(out / "summary.json", summary)
    return summary

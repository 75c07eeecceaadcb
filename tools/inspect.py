"""Validate and summarise an episode dataset; optionally salvage interrupted episodes.

Usage::

    python tools/inspect.py /tmp/data30
    python tools/inspect.py /tmp/data30 --salvage --out-dir /tmp/data30_report

It reads every finished episode (decoding every frame unless ``--no-check-frames``), prints
counts, simulated hours and km per town and weather, outcomes, the noise share and label
statistics, writes ``label_histogram.png`` and ``contact_sheet.png`` (default folder
``<dataset>/meta/inspect``) and ``summary.json`` there. Bad episodes are listed with the
reason, naming the file; the exit status is 1 if any was found. ``--salvage`` first finalises
``episode_N.partial`` folders from their complete rows.

Note on the name: running any ``python tools/<tool>.py`` puts ``tools/`` first on
``sys.path``, where this file would shadow the standard library's ``inspect``. The block below
hands such imports over to the real module, so only cheap standard-library modules are imported
at the top of this file and everything else inside functions.
"""

from __future__ import annotations

import sys

if __name__ == "inspect":  # imported as the standard library's inspect: hand over to it
    import importlib.machinery
    import importlib.util
    import os

    _here = os.path.dirname(os.path.abspath(__file__))
    _path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    _spec = importlib.machinery.PathFinder.find_spec("inspect", _path)
    _real = importlib.util.module_from_spec(_spec)
    sys.modules["inspect"] = _real  # the importer picks the module up from sys.modules
    _spec.loader.exec_module(_real)

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

logger = logging.getLogger("tools.inspect")

SHEET_COLUMNS = 6
"""Tiles per row of the contact sheet."""


def _duration_s(t: Any) -> float:
    """Simulated time covered by steps at times ``t`` (last minus first plus one interval)."""
    return float(t[-1] - t[0] + (t[1] - t[0] if len(t) > 1 else 0.0))


def summarize(episodes: list[Any], label_bins: int = 41) -> dict[str, Any]:
    """Counts, hours and km per town and weather, outcomes and label statistics.

    Args:
        episodes: ``driving.data.episodes.Episode`` objects.
        label_bins: Number of histogram bins of the label (``curvature_expert``).
    """
    import numpy as np

    from driving.data import episodes as ep

    per: dict[str, dict[str, dict[str, float]]] = {"town": {}, "weather": {}}
    outcomes: Counter[str] = Counter()
    hours = km = 0.0
    steps = noise = 0
    labels, applied = [], []
    for e in episodes:
        h = _duration_s(e.columns[ep.T_S]) / 3600.0
        d = float(e.meta.get("distance_m", e.columns[ep.PROGRESS_M][-1])) / 1000.0
        for key, name in (("town", e.town), ("weather", e.weather)):
            row = per[key].setdefault(name, {"episodes": 0, "hours": 0.0, "km": 0.0})
            row["episodes"] += 1
            row["hours"] += h
            row["km"] += d
        outcomes[str(e.meta.get("outcome", "?"))] += 1
        hours, km, steps = hours + h, km + d, steps + len(e)
        noise += int(e.columns[ep.NOISE_ACTIVE].sum())
        labels.append(e.columns[ep.CURVATURE_EXPERT])
        applied.append(e.columns[ep.CURVATURE_APPLIED])
    y = np.concatenate(labels) if labels else np.zeros(0)
    summary: dict[str, Any] = {
        "episodes": len(episodes),
        "steps": steps,
        "hours": hours,
        "km": km,
        "by_town": per["town"],
        "by_weather": per["weather"],
        "outcomes": dict(outcomes),
        "noise_share": noise / steps if steps else 0.0,
    }
    if y.size:
        lim = float(np.abs(y).max()) or 1e-3
        counts, edges = np.histogram(y, bins=label_bins, range=(-lim, lim))
        summary["label"] = {
            "column": ep.CURVATURE_EXPERT,
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


def contact_sheet(episodes: list[Any], max_frames: int = 36) -> Any:
    """Frames spread over the episodes and their length, tiled: uint8 (H', W', 3) RGB.

    Each tile is captioned with the episode id, town and weather.
    """
    import cv2
    import numpy as np

    picks: list[tuple[Any, int]] = []
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


def _plot_labels(episodes: list[Any], summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from driving.data import episodes as ep

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    if "label" in summary:
        edges = np.asarray(summary["label"]["histogram"]["edges"])
        y = np.concatenate([e.columns[ep.CURVATURE_EXPERT] for e in episodes])
        a = np.concatenate([e.columns[ep.CURVATURE_APPLIED] for e in episodes])
        ax.hist(a, bins=edges, alpha=0.5, label="applied (with noise)", color="tab:orange")
        ax.hist(y, bins=edges, alpha=0.7, label="curvature_expert (label)", color="tab:blue")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("curvature (1/m), + = left")
    ax.set_ylabel("steps")
    ax.set_title(f"{summary['episodes']} episodes, {summary['steps']} steps", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
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
    for key in ("by_town", "by_weather"):
        lines.append(f"  {key[3:]:<14} {'episodes':>8} {'hours':>7} {'km':>7}")
        for name, row in sorted(summary[key].items()):
            lines.append(
                f"  {name:<14} {row['episodes']:>8} {row['hours']:>7.2f} {row['km']:>7.1f}"
            )
    lines.append(
        "  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["outcomes"].items()))
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
    for name, path in summary.get("figures", {}).items():
        lines.append(f"  {name}: {path}")
    return "\n".join(lines)


def inspect_dataset(
    data: Path,
    /,
    salvage: bool = False,
    out_dir: Path | None = None,
    check_frames: bool = True,
    label_bins: int = 41,
    sheet_frames: int = 36,
) -> dict[str, Any]:
    """Validates and summarises a dataset, writing figures and ``summary.json``.

    Args:
        data: The dataset folder (holds ``meta/info.json``).
        salvage: First finalise ``episode_N.partial`` folders from their complete rows.
        out_dir: Where the figures and ``summary.json`` go (default ``<data>/meta/inspect``).
        check_frames: Decode every frame (otherwise only the first and last of each episode).
        label_bins: Histogram bins of the label.
        sheet_frames: Frames on the contact sheet.

    Returns:
        The summary (also written as ``summary.json``).

    Raises:
        driving.data.episodes.NotADatasetError: If ``data`` is not a dataset.
    """
    import cv2

    from driving.data import episodes as ep

    info = ep.read_info(data)
    salvaged = []
    if salvage:
        for path in ep.list_partial_episodes(data):
            try:
                done = ep.salvage_episode(path)
            except ep.EpisodeFormatError as e:
                logger.warning("cannot salvage: %s", e)
                continue
            if done is not None:
                salvaged.append(str(done))
    good, bad = [], []
    for path in ep.list_episodes(data):
        try:
            good.append(ep.read_episode(path, info, check_frames=check_frames))
        except ep.EpisodeFormatError as e:
            bad.append({"episode": str(path), "error": str(e)})
    summary = {
        "dataset": str(data),
        "format": info.format,
        "format_version": info.format_version,
        "sim": info.sim,
        "camera": info.camera,
        "control_rate_hz": info.control_rate_hz,
        "partial_episodes": len(ep.list_partial_episodes(data)),
        "bad_episodes": bad,
        "salvaged": salvaged,
        **summarize(good, label_bins),
    }
    out = Path(out_dir) if out_dir is not None else Path(data) / "meta" / "inspect"
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "label_histogram": out / "label_histogram.png",
        "contact_sheet": out / "contact_sheet.png",
    }
    _plot_labels(good, summary, figures["label_histogram"])
    sheet = contact_sheet(good, sheet_frames)
    cv2.imwrite(str(figures["contact_sheet"]), sheet[..., ::-1])
    summary["figures"] = {k: str(v) for k, v in figures.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> int:
    """Command line entry point; returns the exit status."""
    import tyro

    from driving.data.episodes import EpisodeFormatError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        summary = tyro.cli(inspect_dataset)
    except EpisodeFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 1 if summary["bad_episodes"] else 0


if __name__ == "__main__":
    sys.exit(main())

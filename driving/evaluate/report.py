"""Evaluation results: aggregation across seeds, ``metrics.json`` and the markdown report.

Everything here works from plain data (:class:`EpisodeResult` and the ``metrics.json``
document), so a report can be rebuilt from a ``metrics.json`` alone; the plots
(:mod:`driving.evaluate.report_plots`, which writes ``report.md`` with them) additionally take
:class:`TrajectoryTrace` objects (x, y and departures per step) for the bird's-eye views.

``metrics.json`` schema (``format`` ``"liquid-drive-eval"``, ``version`` 1)::

    {
      "format": "liquid-drive-eval", "version": 1,
      "created_utc": "2026-01-01T12:00:00Z",
      "sim": "builtin",                      # simulator backend
      "mode": "intervention",                # or "termination"
      "suite": "all",                        # the suite asked for
      "route_set": "test",                   # or "dev" (development route seeds); absent in
                                             # files written before it existed: test
      "models": [                            # the expert reference row first
        {"name": "expert", "checkpoint": null},
        {"name": "cfc-ncp", "checkpoint": "/abs/path/to/checkpoint",
         "runtime": "torch" | "torch-bf16" | "onnx" | "onnx-int8",  # + "export", for onnx
      ],
      "episodes": [                          # one per (model, episode spec)
        {"model": "cfc-ncp",
         "spec": {"suite", "condition", "town", "weather", "route", "seed", "route_length_m",
                  "control_rate_hz", "frame_time_jitter", "image_noise_std",
                  "target_speed_mps" (only when the suite sets the cruise speed)},
         "metrics": {<every driving.evaluate.metrics.EpisodeMetrics field>},
         "junctions": {"route_junctions", "not_reached", "passed": [{"index", "command",
                       "first_step", "last_step", "failure"}]},   # only on a route with
                       # junctions (driving.evaluate.junction_metrics)
         "rollout": "rollouts/cfc-ncp/train-towns/episodes/episode_000000" or null}
      ],
      "summary": [                           # aggregates across the episodes (seeds, routes)
        {"model", "suite",
         "group": "suite" | "condition" | "town" | "weather",
         "key": null for group "suite", else the condition / town / weather name,
         "n_episodes", "distance_km", "interventions",    # totals
         "interventions_per_km",             # pooled: total interventions / total km
         "km_per_intervention",              # pooled: total km / total interventions, or null
         "stats": {<metric>: {"mean", "std", "min", "max", "n"}},   # across episodes
         "junctions": {"n", "succeeded", "success_rate", "not_reached", "route_junctions",
                       "failures": {<reason>: count},
                       "by_command": {"left" | "right" | "straight": {"n", "succeeded",
                                      "success_rate"}}}}   # pooled; only when the group's
                                                           # episodes have junctions
      ]
    }

``std`` is the sample standard deviation across episodes (null for fewer than two); metrics
that are null for an episode (for example ``km_per_intervention`` without interventions) are
left out of their statistics, and ``n`` says how many episodes entered.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from driving.evaluate.junction_metrics import JunctionMetrics, pool_junctions
from driving.evaluate.junction_report import junction_table
from driving.evaluate.metrics import METRIC_NAMES, EpisodeMetrics
from driving.evaluate.suites import ROUTE_SETS, EpisodeSpec
from liquid_drive.errors import LiquidDriveError

log = logging.getLogger(__name__)

FORMAT = "liquid-drive-eval"
VERSION = 1
EXPERT = "expert"
"""Model name of the reference row (the privileged expert driving)."""
GROUPS: tuple[str, ...] = ("suite", "condition", "town", "weather")
"""Summary groupings, from the coarsest."""
TEST_ROUTES = ROUTE_SETS[0]
"""``route_set`` of the reported route seeds (also what a ``metrics.json`` without one holds)."""


class ReportError(LiquidDriveError, ValueError):
    """A ``metrics.json`` that is not ours or is malformed, or inconsistent results."""


@dataclass(frozen=True)
class EpisodeResult:
    """The outcome of one model driving one episode spec."""

    model: str
    """Model name (``"expert"`` for the reference row)."""
    spec: EpisodeSpec
    """What was driven."""
    metrics: EpisodeMetrics
    """The episode's metrics."""
    rollout: str | None = None
    """Rollout folder relative to the output folder, or None when not written."""
    junctions: JunctionMetrics | None = None
    """The route's junctions and their outcomes; None on a route without junctions."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, as stored under ``episodes`` in ``metrics.json``.

        ``junctions`` only when there are some, so lane-keeping results keep their form.
        """
        d = {"model": self.model, "spec": self.spec.to_dict(), "metrics": self.metrics.to_dict()}
        if self.junctions is not None:
            d["junctions"] = self.junctions.to_dict()
        return {**d, "rollout": self.rollout}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpisodeResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            model=d["model"],
            spec=EpisodeSpec(**d["spec"]),
            metrics=EpisodeMetrics.from_dict(d["metrics"]),
            rollout=d.get("rollout"),
            junctions=JunctionMetrics.from_dict(d["junctions"]) if d.get("junctions") else None,
        )


@dataclass(frozen=True)
class TrajectoryTrace:
    """A bird's-eye trajectory for plots: world positions and where departures happened."""

    model: str
    """Model name."""
    spec: EpisodeSpec
    """The episode driven."""
    x_m: np.ndarray
    """(N,) world x along the path, m (may be thinned)."""
    y_m: np.ndarray
    """(N,) world y along the path, m."""
    departures_xy_m: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    """(K, 2) world positions of the lane departures (interventions, or the terminating step)."""


# ---------------------------------------------------------------------------------------------
# Aggregation


def metric_stats(values: Iterable[float | int | bool | None]) -> dict[str, float | int | None]:
    """Mean, sample std, min and max of the non-null values, with their count ``n``."""
    arr = np.array([float(v) for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else None,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "n": int(arr.size),
    }


def aggregate(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Totals, pooled rates and per-metric statistics of a group of episodes.

    Args:
        results: The episodes of one group (one model; one suite, condition, town or weather).

    Returns:
        ``n_episodes``, ``distance_km``, ``interventions``, pooled ``interventions_per_km`` and
        ``km_per_intervention`` (null when undefined), ``stats`` per metric and, when the
        episodes have junctions, ``junctions`` (:func:`~driving.evaluate.junction_metrics.
        pool_junctions`).
    """
    if not results:
        raise ReportError("cannot aggregate an empty group of episodes")
    km = float(sum(r.metrics.distance_km for r in results))
    n_int = int(sum(r.metrics.interventions for r in results))
    junctions = pool_junctions(r.junctions for r in results)
    return {
        "n_episodes": len(results),
        "distance_km": km,
        "interventions": n_int,
        "interventions_per_km": n_int / km if km > 0 else None,
        "km_per_intervention": km / n_int if n_int > 0 else None,
        "stats": {
            name: metric_stats(getattr(r.metrics, name) for r in results) for name in METRIC_NAMES
        },
        **({"junctions": junctions} if junctions is not None else {}),
    }


def _group_key(spec: EpisodeSpec, group: str) -> str | None:
    return None if group == "suite" else getattr(spec, group)


def summarize(results: Sequence[EpisodeResult]) -> list[dict[str, Any]]:
    """Summary rows per model and suite, and per condition, town and weather within a suite.

    Rows keep the order in which models, suites and keys first appear in ``results``.
    """
    groups: dict[tuple[str, str, str, str | None], list[EpisodeResult]] = {}
    for group in GROUPS:
        for r in results:
            key = (r.model, r.spec.suite, group, _group_key(r.spec, group))
            groups.setdefault(key, []).append(r)
    order = {g: i for i, g in enumerate(GROUPS)}
    models = list(dict.fromkeys(r.model for r in results))
    suites = list(dict.fromkeys(r.spec.suite for r in results))
    rows = [
        {"model": m, "suite": s, "group": g, "key": k, **aggregate(rs)}
        for (m, s, g, k), rs in groups.items()
    ]
    rows.sort(
        key=lambda row: (
            models.index(row["model"]),
            suites.index(row["suite"]),
            order[row["group"]],
        )
    )
    return rows


# ---------------------------------------------------------------------------------------------
# metrics.json


def build_document(
    results: Sequence[EpisodeResult],
    *,
    models: Sequence[dict[str, Any]],
    sim: str,
    mode: str,
    suite: str,
    route_set: str = TEST_ROUTES,
) -> dict[str, Any]:
    """The ``metrics.json`` document (schema in the module docstring)."""
    names = [m["name"] for m in models]
    unknown = sorted({r.model for r in results} - set(names))
    if unknown:
        raise ReportError(f"results name models {unknown} that are not in {names}")
    return {
        "format": FORMAT,
        "version": VERSION,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sim": sim,
        "mode": mode,
        "suite": suite,
        "route_set": route_set,
        "models": [dict(m) for m in models],
        "episodes": [r.to_dict() for r in results],
        "summary": summarize(results),
    }


def write_metrics(doc: dict[str, Any], path: str | Path) -> Path:
    """Writes ``metrics.json`` (atomically: a temporary file renamed into place)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def load_metrics(path: str | Path) -> dict[str, Any]:
    """Reads and checks a ``metrics.json``.

    Raises:
        ReportError: If the file is missing, not JSON, or not a ``liquid-drive-eval`` version 1.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise ReportError(f"{path}: no such metrics file") from e
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ReportError(f"{path}: not a {FORMAT} metrics file")
    if doc.get("version") != VERSION:
        raise ReportError(f"{path}: metrics version {doc.get('version')!r}, expected {VERSION}")
    for key in ("models", "episodes", "summary"):
        if not isinstance(doc.get(key), list):
            raise ReportError(f"{path}: missing list {key!r}")
    return doc


def route_set_of(doc: dict[str, Any]) -> str:
    """The route set of a ``metrics.json`` document (``"test"`` when it names none)."""
    return str(doc.get("route_set", TEST_ROUTES))


def results_from_document(doc: dict[str, Any]) -> list[EpisodeResult]:
    """The episode results stored in a ``metrics.json`` document."""
    return [EpisodeResult.from_dict(e) for e in doc["episodes"]]


# ---------------------------------------------------------------------------------------------
# Markdown


def _fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _pm(stats: dict[str, Any], digits: int = 2) -> str:
    if stats["mean"] is None:
        return "–"
    if stats["std"] is None:
        return _fmt(stats["mean"], digits)
    return f"{_fmt(stats['mean'], digits)} ± {_fmt(stats['std'], digits)}"


def _km_per_int(row: dict[str, Any]) -> str:
    if row["km_per_intervention"] is None:
        return f"none in {row['distance_km']:.2f} km"
    return _fmt(row["km_per_intervention"], 2)


MAIN_COLUMNS = (
    "| model | condition | episodes | km | interv. | interv./km | km / interv. | route compl. "
    "| lat. err. mean (m) | lat. err. RMS (m) | lat. err. max (m) | heading err. (deg) "
    "| steering rate RMS (1/(m·s)) |"
)


def _main_row(row: dict[str, Any], condition: str) -> str:
    st = row["stats"]
    cells = [
        f"**{row['model']}**" if row["model"] == EXPERT else row["model"],
        condition,
        str(row["n_episodes"]),
        _fmt(row["distance_km"], 2),
        str(row["interventions"]),
        _fmt(row["interventions_per_km"], 2),
        _km_per_int(row),
        _pm(st["route_completion"], 2),
        _pm(st["lateral_error_mean_m"], 3),
        _pm(st["lateral_error_rms_m"], 3),
        _pm(st["lateral_error_max_m"], 2),
        _pm(st["heading_error_mean_deg"], 2),
        _pm(st["steering_rate_rms"], 4),
    ]
    return "| " + " | ".join(cells) + " |"


def render_markdown(doc: dict[str, Any], plots: dict[str, list[str]] | None = None) -> str:
    """The markdown report: overview, per-suite comparison tables, breakdowns and plots.

    Args:
        doc: A ``metrics.json`` document.
        plots: Per suite, the PNG file names (relative to the report) to show under it.

    Returns:
        The report text.
    """
    plots = plots or {}
    rows = doc["summary"]
    models = [m["name"] for m in doc["models"]]
    suites = list(dict.fromkeys(r["suite"] for r in rows))
    dev = route_set_of(doc) != TEST_ROUTES
    warn = "**Development routes: for choosing a recipe, not the test set; never report them.**"
    lines = [
        "# Closed-loop evaluation" + (" (dev routes)" if dev else ""),
        "",
        *([warn, ""] if dev else []),
        f"Simulator `{doc['sim']}`, {doc['mode']} mode, suite `{doc['suite']}`, "
        f"created {doc['created_utc']}. Error bars and ± are the sample standard deviation "
        "across episodes (routes and seeds); rates per km are pooled over the episodes. The "
        "expert is the privileged reference driver.",
        "",
        "Models:",
        "",
    ]
    for m in doc["models"]:
        lines.append(
            f"- `{m['name']}`: "
            + (f"`{m['checkpoint']}`" if m["checkpoint"] else "privileged expert (reference)")
            + (f", runtime `{m['runtime']}`" if m.get("runtime") else "")
        )
    lines += ["", "## Overview: interventions per km", ""]
    lines.append("| model | " + " | ".join(suites) + " |")
    lines.append("|---" * (len(suites) + 1) + "|")
    index = {(r["model"], r["suite"], r["group"], r["key"]): r for r in rows}
    for m in models:
        cells = [
            _fmt(index[(m, s, "suite", None)]["interventions_per_km"], 2)
            if (m, s, "suite", None) in index
            else "–"
            for s in suites
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")

    for s in suites:
        title = f"## Suite `{s}`" + (" (dev routes)" if dev else "")
        lines += ["", title, "", MAIN_COLUMNS, "|---" * 13 + "|"]
        conditions = list(
            dict.fromkeys(r["key"] for r in rows if r["suite"] == s and r["group"] == "condition")
        )
        for m in models:
            if (m, s, "suite", None) not in index:
                continue
            if len(conditions) > 1:
                for c in conditions:
                    if (m, s, "condition", c) in index:
                        lines.append(_main_row(index[(m, s, "condition", c)], c))
            else:
                lines.append(_main_row(index[(m, s, "suite", None)], conditions[0]))
        for group in ("town", "weather"):
            keys = list(
                dict.fromkeys(r["key"] for r in rows if r["suite"] == s and r["group"] == group)
            )
            if len(keys) < 2:
                continue
            lines += ["", f"Interventions per km (lateral RMS in m) by {group}:", ""]
            lines.append("| model | " + " | ".join(keys) + " |")
            lines.append("|---" * (len(keys) + 1) + "|")
            for m in models:
                cells = []
                for k in keys:
                    r = index.get((m, s, group, k))
                    cells.append(
                        "–"
                        if r is None
                        else f"{_fmt(r['interventions_per_km'], 2)} "
                        f"({_fmt(r['stats']['lateral_error_rms_m']['mean'], 3)})"
                    )
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines += junction_table(rows, s, models)
        for png in plots.get(s, []):
            lines += ["", f"![{png}]({png})"]
    rollouts = [e for e in doc["episodes"] if e.get("rollout")]
    if rollouts:
        lines += [
            "",
            "## Rollouts",
            "",
            "Episode format with `curvature_pred` and the neuron states per step; draw one "
            "with `python tools/visualize.py --rollout <folder> --checkpoint <checkpoint>`.",
            "",
            "| model | suite | condition | town | weather | route | interv. | folder |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in rollouts:
            sp = e["spec"]
            lines.append(
                f"| {e['model']} | {sp['suite']} | {sp['condition']} | {sp['town']} | "
                f"{sp['weather']} | {sp['route']} | {e['metrics']['interventions']} | "
                f"`{e['rollout']}` |"
            )
    return "\n".join(lines) + "\n"

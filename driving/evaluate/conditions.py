"""Per-condition results over training seeds, for the suites that vary one condition.

The results table of :mod:`driving.evaluate.compare` pools a suite's conditions into one cell;
for a suite such as ``rate`` (10, 20, 30 Hz and jittered frames), ``noise``, ``camera`` or
``speed`` the question is how each condition moves the driving, so this module gives, per
family, suite and condition, the same three metrics over seeds as the main table:

- ``interventions_per_km``: each seed's pooled rate over the condition's episodes,
- ``lateral_error_rms_m`` and ``steering_rate_rms``: each seed's mean across them

(each seed's value is :func:`driving.evaluate.evidence.episodes`'s, the bootstrap's own), each
with the mean over seeds and, when a :class:`~driving.evaluate.evidence.StatsConfig` is
given, the bootstrap interval of :func:`driving.evaluate.evidence.cell` (seeds resampled, then
each seed's episodes). Only suites whose episodes carry at least two conditions appear, and
only runs that kept their episodes (every ``metrics.json`` of ``tools/evaluate.py`` does).

``results.json`` gains ``"conditions": {suite: {"conditions": [...], "models": {family:
{condition: {metric: {"mean", "values", "n"[, "iqm", "ci", "ci_method"]}}}}}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from driving.evaluate import evidence
from driving.evaluate.evidence import StatsConfig

METRICS: tuple[str, ...] = ("interventions_per_km", "lateral_error_rms_m", "steering_rate_rms")
"""What the tables compare, the main one and each condition's (the first is pooled per seed,
the others are episode means)."""

PerSeed = Mapping[str, Sequence[Sequence[dict[str, Any]]]]
"""Family -> one list of episode records (``spec``, ``metrics``) per seed, for one suite."""


def _condition(record: dict[str, Any]) -> str:
    return str(record["spec"].get("condition", ""))


def _cell(seeds: Sequence[Sequence[dict[str, Any]]], stats: StatsConfig | None) -> dict[str, Any]:
    """One condition's metrics over seeds (each seed's value as the bootstrap computes it)."""
    cell: dict[str, Any] = {}
    for metric in METRICS:
        present = [s for s in seeds if any(r["metrics"].get(metric) is not None for r in s)]
        if not present:
            continue
        if stats is None:
            values = [evidence.episodes(s, metric).value() for s in present]
            cell[metric] = {"mean": float(np.mean(values)), "values": values, "n": len(values)}
        else:
            boot = evidence.cell(present, metric, stats)
            cell[metric] = {k: boot[k] for k in ("mean", "values", "n", "iqm", "ci")}
            cell[metric]["ci_method"] = boot["method"]
    return cell


def suite_conditions(per_seed: PerSeed, stats: StatsConfig | None = None) -> dict[str, Any] | None:
    """Per family and condition of one suite, the metrics over seeds; None below 2 conditions.

    Args:
        per_seed: Family -> each seed's episode records of the suite.
        stats: Bootstrap settings; None gives the mean and per-seed values only.
    """
    conditions = list(
        dict.fromkeys(_condition(r) for seeds in per_seed.values() for s in seeds for r in s)
    )
    if len(conditions) < 2:
        return None
    models: dict[str, dict[str, Any]] = {}
    for family, seeds in per_seed.items():
        cells: dict[str, Any] = {}
        for condition in conditions:
            chosen = [[r for r in s if _condition(r) == condition] for s in seeds]
            chosen = [s for s in chosen if s]
            if not chosen:
                continue
            cells[condition] = _cell(chosen, stats)
        models[family] = cells
    return {"conditions": conditions, "models": models}


def _fmt(stats: dict[str, Any] | None, digits: int, interval: bool = False) -> str:
    if stats is None:
        return "–"
    text = f"{stats['mean']:.{digits}f}"
    if interval and "ci" in stats:
        text += f" [{stats['ci'][0]:.{digits}f}, {stats['ci'][1]:.{digits}f}]"
    return text


def render_conditions(tables: Mapping[str, dict[str, Any]], route_set_label: str = "") -> list[str]:
    """Markdown lines: one table per suite, a row per family, a column per condition.

    Each cell: **interventions per km** / lateral error RMS in m [interval] / steering-rate
    RMS in 1/(m s), the means over seeds.
    """
    lines: list[str] = []
    for suite, table in tables.items():
        conditions = table["conditions"]
        lines += [
            "",
            f"Per condition, {suite}{route_set_label}: **interventions per km** / lateral error "
            "RMS in m [95 % interval] / steering-rate RMS in 1/(m·s), means over seeds:",
            "",
            "| model | " + " | ".join(conditions) + " |",
            "|---|" + "---|" * len(conditions),
        ]
        for family, cells in table["models"].items():
            row = []
            for condition in conditions:
                cell = cells.get(condition)
                if cell is None:
                    row.append("–")
                    continue
                ipk = _fmt(cell.get("interventions_per_km"), 2)
                lat = _fmt(cell.get("lateral_error_rms_m"), 3, interval=True)
                rate = _fmt(cell.get("steering_rate_rms"), 3)
                row.append(f"**{ipk}** / {lat} / {rate}")
            lines.append(f"| {family} | " + " | ".join(row) + " |")
    return lines

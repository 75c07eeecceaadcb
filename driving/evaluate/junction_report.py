"""Junction success in the markdown tables of ``report.md`` and ``results.md``.

Works on the pooled ``junctions`` entries of ``metrics.json`` summary rows
(:func:`driving.evaluate.junction_metrics.pool_junctions`); suites whose episodes have no
junctions get no table, so the lane-keeping reports do not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from driving.evaluate.junction_metrics import FAILURES, TURN_COMMANDS

COLUMNS = ("all", *TURN_COMMANDS)
"""The success columns: every junction, then per command."""


def success_cell(entry: dict[str, Any] | None) -> str:
    """``"92 % (11/12)"``: success rate with succeeded / passed; ``"–"`` for none passed."""
    if entry is None or not entry["n"]:
        return "–"
    return f"{100 * entry['success_rate']:.0f} % ({entry['succeeded']}/{entry['n']})"


def row_cells(pooled: dict[str, Any]) -> list[str]:
    """Cells of one pooled entry: all, per command, not reached, failures by reason."""
    why = ", ".join(f"{k} {pooled['failures'][k]}" for k in FAILURES if pooled["failures"][k])
    return [
        success_cell(pooled),
        *(success_cell(pooled["by_command"].get(c)) for c in TURN_COMMANDS),
        str(pooled["not_reached"]),
        why or "–",
    ]


def junction_table(rows: Sequence[dict[str, Any]], suite: str, models: Sequence[str]) -> list[str]:
    """The lines of a suite's junction table (empty when its episodes have no junctions).

    One row per model and condition (the suite row when it has one condition), then per
    model and town.

    Args:
        rows: The ``summary`` rows of ``metrics.json``.
        suite: The suite.
        models: Model names in report order.
    """
    ours = [r for r in rows if r["suite"] == suite and "junctions" in r]
    if not ours:
        return []
    conditions = [r for r in ours if r["group"] == "condition"]
    first = conditions if len({r["key"] for r in conditions}) > 1 else []
    if not first:
        first = [r for r in ours if r["group"] == "suite"]
    towns = [r for r in ours if r["group"] == "town"]
    lines = [
        "",
        "Junction success (succeeded / junctions passed; a junction succeeds with no "
        "intervention or collision from the command's onset to its exit, the car leaving it "
        "in its lane):",
        "",
        "| model | condition / town | " + " | ".join(COLUMNS) + " | not reached | failures |",
        "|---" * (len(COLUMNS) + 4) + "|",
    ]
    for part in (first, towns):
        for m in models:
            for r in (r for r in part if r["model"] == m):
                key = r["key"] if r["group"] != "suite" else "all"
                label = f"town {key}" if r["group"] == "town" else key
                cells = [m, label, *row_cells(r["junctions"])]
                lines.append("| " + " | ".join(cells) + " |")
    return lines


def seed_junctions(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """One model family's junction success on a suite, pooled over its seeds' summary rows.

    Args:
        rows: Each seed's ``metrics.json`` summary row of the suite (group ``suite``).

    Returns:
        None when no row has junctions; else per column of :data:`COLUMNS` (``all``, ``left``,
        ``right``, ``straight``) ``{"n", "succeeded", "success_rate"}`` summed over the
        seeds, ``not_reached`` summed, and ``seed_success_rates``: each seed's overall rate
        (seeds that passed no junction left out).
    """
    pooled = [r["junctions"] for r in rows if "junctions" in r]
    if not pooled:
        return None
    out: dict[str, Any] = {}
    for column in COLUMNS:
        entries = [p if column == "all" else p["by_command"].get(column) for p in pooled]
        n = sum(e["n"] for e in entries if e is not None)
        ok = sum(e["succeeded"] for e in entries if e is not None)
        out[column] = {"n": n, "succeeded": ok, "success_rate": ok / n if n else None}
    out["not_reached"] = sum(p["not_reached"] for p in pooled)
    out["seed_success_rates"] = [p["success_rate"] for p in pooled if p["n"]]
    return out


def seed_junction_table(
    table: Sequence[dict[str, Any]], suites: Sequence[str], headers: Sequence[str]
) -> list[str]:
    """The lines of ``results.md``'s junction table (empty when no suite has junctions).

    Args:
        table: The families of :func:`driving.evaluate.compare.seed_table` (a suite cell has
            ``junctions`` from :func:`seed_junctions` when its episodes had junctions).
        suites: The table's suites.
        headers: Their column headers (route set named off the test routes).
    """
    chosen = [
        (s, h)
        for s, h in zip(suites, headers, strict=True)
        if any("junctions" in e["suites"].get(s, {}) for e in table)
    ]
    if not chosen:
        return []
    lines = [
        "",
        "Junction success, pooled over seeds (succeeded / junctions passed), all and per command:",
        "",
        "| model | seeds | " + " | ".join(f"{h} {c}" for _, h in chosen for c in COLUMNS) + " |",
        "|---|---|" + "---|" * (len(chosen) * len(COLUMNS)),
    ]
    for entry in table:
        cells = []
        for suite, _ in chosen:
            j = entry["suites"].get(suite, {}).get("junctions")
            cells += [success_cell(None if j is None else j[c]) for c in COLUMNS]
        seeds = ", ".join(str(s) for s in entry["seeds"]) or "-"
        lines.append(f"| {entry['model']} | {seeds} | " + " | ".join(cells) + " |")
    return lines

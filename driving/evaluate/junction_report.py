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

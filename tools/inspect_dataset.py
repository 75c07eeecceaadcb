"""Validate and summarise an episode dataset; optionally salvage interrupted episodes.

Usage::

    python tools/inspect_dataset.py /tmp/data30
    python tools/inspect_dataset.py /tmp/data30 --salvage --out-dir /tmp/data30_report

Runs the validation that training runs (``driving.data.validate``; decoding every frame
unless ``--no-check-frames``), prints counts, simulated hours and km per town and weather,
outcomes, the noise share and label statistics, and writes ``label_histogram.png``,
``contact_sheet.png`` and ``summary.json`` (default folder ``<dataset>/meta/inspect``). Bad
episodes are listed with the reason, naming the file. ``--salvage`` first finalises
interrupted ``episode_N.partial`` folders from their complete rows; one that a live recorder
is still writing is refused and left alone.

Exit status: 0 when every episode is valid, 1 when some are bad, 2 for an error (not a
dataset, a bad ``meta/info.json``).
"""

from __future__ import annotations

import sys
from typing import Any

from driving.data.summary import InspectConfig, format_summary, inspect_dataset
from tools._cli import run

EXIT_BAD_EPISODES = 1
"""Exit status when the dataset holds bad episodes (each is listed)."""


def main(argv: list[str] | None = None) -> int:
    """Inspects the dataset named on the command line; returns the exit status."""
    summaries: list[dict[str, Any]] = []

    def inspect(cfg: InspectConfig) -> dict[str, Any]:
        summaries.append(inspect_dataset(cfg))
        return summaries[-1]

    status = run(InspectConfig, inspect, description=__doc__, show=format_summary, argv=argv)
    if status == 0 and summaries and summaries[0]["bad_episodes"]:
        return EXIT_BAD_EPISODES
    return status


if __name__ == "__main__":
    sys.exit(main())

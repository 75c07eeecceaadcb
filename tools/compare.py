r"""Combine several evaluations into one results table over training seeds.

Usage::

    python tools/compare.py checkpoints/results/*-s*/metrics.json --out checkpoints/results

Each ``metrics.json`` comes from ``tools/evaluate.py``; models named ``FAMILY-sSEED`` (the
checkpoint folder names, e.g. ``cfc-ncp-s1``) are grouped by family. Writes ``results.md``
(the table, mean over seeds with the min-max across them), ``results.json`` and ``seeds.png``
into ``--out`` and prints the table. See ``driving/evaluate/compare.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tyro

from driving.evaluate.compare import CompareConfig, CompareError, compare, render_table


def main(argv: list[str] | None = None) -> int:
    """Parses the command line into a ``CompareConfig``, compares; returns the exit status."""
    cfg = tyro.cli(
        CompareConfig,
        args=argv,
        description=__doc__,
        config=(tyro.conf.PositionalRequiredArgs,),
    )
    try:
        doc = compare(cfg)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(render_table(doc["models"], doc["suites"]), end="")
    print(f"wrote {cfg.out / 'results.md'}, results.json and seeds.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

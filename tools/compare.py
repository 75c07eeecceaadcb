r"""Combine several evaluations into one results table over training seeds.

Usage::

    python tools/compare.py checkpoints/results/*-s*/metrics.json --out checkpoints/results

Each ``metrics.json`` comes from ``tools/evaluate.py``; models named ``FAMILY-sSEED`` (the
checkpoint folder names, e.g. ``cfc-ncp-s1``) are grouped by family; a model evaluated one
suite per call merges its files (same checkpoint, no suite twice). Writes ``results.md``
(the table: mean over seeds [95 % bootstrap interval], parameter counts, generalisation gaps,
paired tests of cfc-ncp against each baseline with Holm; ``--readme README.md`` rewrites its
marked results block; ``--rename dpr-rv-a10=cfc-ncp`` shows a recipe's runs, named after
their run folders, as their model), ``results.json`` and ``seeds.png`` into ``--out`` and
prints the table. See ``driving/evaluate/compare.py``.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import tyro

from driving.evaluate.compare import CompareConfig, compare, render_table
from tools._cli import run


def _compare(cfg: CompareConfig) -> dict[str, Any]:
    doc = compare(cfg)
    print(f"wrote {cfg.out / 'results.md'}, results.json and seeds.png", file=sys.stderr)
    return doc


def main(argv: list[str] | None = None) -> int:
    """Parses the command line into a ``CompareConfig``, compares; returns the exit status."""
    return run(
        Annotated[CompareConfig, tyro.conf.PositionalRequiredArgs],  # metrics files first
        _compare,
        description=__doc__,
        show=lambda doc: render_table(doc["models"], doc["suites"], doc["route_set"]).rstrip("\n"),
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())

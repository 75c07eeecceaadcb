"""Acceptance check of a CARLA 0.9.16 server: run this first when you have one.

    python tools/carla_check.py --host 127.0.0.1 --port 2000

Checks the client/server versions, the synchronous loop, measures the steering response
(writes ``--calibration-out``, for the env option ``steering_calibration``), drives the
expert one route with commands in Town01 and Town02, and verifies cleanup. Prints a markdown
table to paste into an issue; exits 1 if a check failed.
"""

from __future__ import annotations

import sys

from sim.carla.check import CheckConfig, markdown_table, run_check
from tools._cli import run


def check(cfg: CheckConfig) -> bool:
    """Runs the checks, prints the table; True when all passed."""
    rows = run_check(cfg)
    print(markdown_table(rows))
    return all(r.passed for r in rows)


def main(argv: list[str] | None = None) -> int:
    """Entry point; the exit status is 1 when a check failed."""
    passed: list[bool] = []
    status = run(CheckConfig, lambda c: passed.append(check(c)), description=__doc__, argv=argv)
    return status if status or not passed else (0 if passed[0] else 1)


if __name__ == "__main__":
    sys.exit(main())

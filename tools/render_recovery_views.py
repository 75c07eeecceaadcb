r"""Renders a contact sheet of the builtin simulator's recovery views to a PNG.

Usage::

    python tools/render_recovery_views.py --out docs/images/recovery_views.png

Rows are moments of an expert drive; the first column is the car's camera, the others its
recovery views, each captioned with its pose offset and its label (the expert's curvature at
that pose, 1/m, + = left).
"""

from __future__ import annotations

import sys

from sim.builtin.recovery_sheet import RecoverySheetConfig, write_recovery_sheet
from tools._cli import run


def main(argv: list[str] | None = None) -> int:
    """Renders the sheet named on the command line; returns the exit status."""
    return run(
        RecoverySheetConfig,
        write_recovery_sheet,
        description=__doc__,
        show=lambda path: f"wrote {path}",
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())

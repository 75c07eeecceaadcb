r"""Renders a contact sheet of randomised training episodes of the builtin simulator.

Usage::

    python tools/render_randomized.py --out docs/images/randomized_episodes.png

Each cell is the forward camera of one domain-randomised episode (``--randomize`` in
``tools/record.py``) after the expert drove ``--drive-m`` metres, captioned with its training
preset and a few drawn factors (tightest bend, lane width, centre line, fog, exposure, camera
yaw).
"""

from __future__ import annotations

import sys

from sim.builtin.randomized_sheet import RandomizedSheetConfig, write_randomized_sheet
from tools._cli import run


def main(argv: list[str] | None = None) -> int:
    """Renders the sheet named on the command line; returns the exit status."""
    return run(
        RandomizedSheetConfig,
        write_randomized_sheet,
        description=__doc__,
        show=lambda path: f"wrote {path}",
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())

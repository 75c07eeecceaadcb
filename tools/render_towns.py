r"""Renders a contact sheet of every town x weather of the builtin simulator to a PNG.

Usage::

    python tools/render_towns.py --out docs/images/towns.png

Rows are towns (training towns first, then the unseen ones), columns are weathers (training
weathers first, then the unseen ones). Each cell is the forward camera after the expert has
driven ``--drive-m`` metres on road ``--seed`` of that town.
"""

from __future__ import annotations

import sys

from sim.builtin.contact_sheet import ContactSheetConfig, write_contact_sheet
from tools._cli import run


def main(argv: list[str] | None = None) -> int:
    """Renders the sheet named on the command line; returns the exit status."""
    return run(
        ContactSheetConfig,
        write_contact_sheet,
        description=__doc__,
        show=lambda path: f"wrote {path}",
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())

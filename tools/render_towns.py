r"""Renders a contact sheet of the builtin simulator's towns to a PNG.

Usage::

    python tools/render_towns.py --out docs/images/towns.png
    python tools/render_towns.py junctions --out docs/images/junction_towns.png

Without a subcommand: rows are the lane-keeping towns (training towns first, then the unseen
ones), columns are weathers (training weathers first, then the unseen ones). Each cell is the
forward camera after the expert has driven ``--drive-m`` metres on road ``--seed`` of that
town. ``junctions``: per junction town, the camera approaching and inside a left, a right and
a straight junction of route ``--seed``, plus a map of the route with its junctions.
"""

from __future__ import annotations

import sys

from sim.builtin.contact_sheet import ContactSheetConfig, write_contact_sheet
from sim.builtin.junction_sheet import JunctionSheetConfig, write_junction_sheet
from tools._cli import run


def main(argv: list[str] | None = None) -> int:
    """Renders the sheet named on the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["junctions"]:
        config, function, args = JunctionSheetConfig, write_junction_sheet, args[1:]
    else:
        config, function = ContactSheetConfig, write_contact_sheet
    return run(config, function, description=__doc__, show=lambda path: f"wrote {path}", argv=args)


if __name__ == "__main__":
    sys.exit(main())

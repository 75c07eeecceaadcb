r"""Train and evaluate a models x seeds (x recipes) grid, then print the compare table.

Usage::

    python tools/grid.py --data data/builtin-30min --out outputs/grid \
        --models cfc-ncp lstm --seeds 0-4 --suites all --workers 2
    python tools/grid.py --data data/builtin-30min --out outputs/grid-ray \
        --models cfc-ncp cfc-dense --seeds 0,2 --suites unseen-towns --ray local
    python tools/grid.py --data data/builtin-30min --out outputs/grid-recipes --models cfc-ncp \
        --seeds 0-2 --recipes base lr_low:lr=0.001 --suites all --route-set dev

Each cell (model, recipe, seed) is a training run in ``OUT/runs/<cell>/`` (tools/train.py's
layout) and one evaluation per suite in ``OUT/results/<suite>/<cell>/`` (tools/evaluate.py's);
``OUT/results/<suite>/results.md`` is the compare table over the cells (tools/compare.py's).
Rerunning the same command skips finished cells, resumes a killed training exactly and a
killed evaluation where it stopped; folders of other settings are refused. Cells run here,
in ``--workers K`` processes, or as Ray tasks (``--ray ADDRESS``, ``--ray local`` starts one;
``pip install -e ".[ray]"``). Every option is a field of ``driving.grid.config.GridConfig``.
"""

from __future__ import annotations

import sys

from driving.grid.config import GridConfig
from driving.grid.run import GridSummary, run_grid
from tools._cli import run


def main(argv: list[str] | None = None) -> int:
    """Parses the command line into a ``GridConfig`` and runs the grid; returns the status."""
    return run(GridConfig, run_grid, description=__doc__, show=GridSummary.format, argv=argv)


if __name__ == "__main__":
    sys.exit(main())

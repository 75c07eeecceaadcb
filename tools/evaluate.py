r"""Closed-loop evaluation of steering checkpoints on named suites, the expert as reference row.

Usage::

    python tools/evaluate.py --checkpoint checkpoints/cfc-ncp --suite all --out outputs/eval
    python tools/evaluate.py --checkpoint runs/cfc runs/lstm --suite unseen-towns \
        --routes 1 --route-km 0.3 --workers 2 --out outputs/eval-quick
    python tools/evaluate.py --checkpoint runs/cfc --suite carla-train --sim carla \
        --host localhost --port 2000 --out outputs/eval-carla
    python tools/evaluate.py --suite train-towns --out outputs/eval-expert   # expert only
    python tools/evaluate.py --checkpoint runs/cmd --suite junctions --out outputs/eval-junctions

Each checkpoint (and always the privileged expert, model name ``expert``) drives every
episode of the suite closed loop (``driving.evaluate.suites``). In intervention mode (the
default) a lane departure is counted and the car is put back on the lane centre, the route
continuing (the NCP / VISTA real-car protocol); in termination mode a departure ends the
episode. While a policy drives, the expert is queried on every step for the label
``curvature_expert``. Checkpoints (their training camera, and on the junction towns of the
``junctions`` suite their command input), options and the output folder are checked before
anything is written.

Output folder: ``metrics.json`` (schema: ``driving/evaluate/report.py``), ``report.md`` with the
comparison tables, PNG plots (a bar chart per suite; bird's-eye trajectories with the
departures marked), ``rollouts/<model>/<suite>/<condition>/`` in the episode format (with
``curvature_pred`` and every neuron's state per step, ``neuron_000`` ..., for policies), and
``run.json`` + ``episodes/`` (each finished episode, kept at once). Ctrl-C or SIGTERM lets the
episodes in flight finish and writes what finished; rerunning the same command resumes (drives
only the missing episodes); a folder of another evaluation is refused unless ``--overwrite``.

Episodes run in this process (``--workers 1``), in worker processes that end with this one
(``--workers K``) or on a Ray cluster (``--ray ADDRESS``, ``--ray local`` starts a local one;
needs ``pip install -e ".[ray]"``, and every node must have the project installed and see the
output folder). Every option is a field of ``driving.evaluate.evaluation.EvalConfig``.
"""

from __future__ import annotations

import sys

from driving.evaluate.evaluation import EvalConfig, EvalSummary, evaluate
from tools._cli import run


def main(argv: list[str] | None = None) -> int:
    """Parses the command line into an ``EvalConfig`` and evaluates; returns the exit status."""
    return run(EvalConfig, evaluate, description=__doc__, show=EvalSummary.format, argv=argv)


if __name__ == "__main__":
    sys.exit(main())

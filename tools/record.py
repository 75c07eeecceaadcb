"""Record expert demonstrations into an episode dataset (``driving/data/episodes.py`` format).

Usage::

    python tools/record.py --out /tmp/data30 --minutes 30 --workers 2
    python tools/record.py --out /tmp/data30 --episodes 4 --towns countryside --weathers fog
    python tools/record.py --out /tmp/carla --sim carla --host 127.0.0.1 --port 2000 --minutes 10

The privileged expert drives; by default steering noise is injected for a share of the time
(CIL practice): the car executes the noisy command, so the data shows recoveries, while the
label ``curvature_expert`` stays the expert's clean command (``curvature_applied`` holds what
the car did). Towns and weathers default to the simulator's training split; every episode
gets a fresh road (seed), target speed, start offset and heading offset.

Every option, the town and weather names and the environment options are checked before
anything is written. An existing dataset is appended to with new episode ids (refused, with a
clear message, if its format, simulator, camera or control rate differ). Each episode is
written step by step into ``episode_N.partial/`` and renamed when done; Ctrl-C or SIGTERM ends
the episodes in progress cleanly (outcome ``stopped``), a hard kill leaves them ``.partial``
(never read; see ``tools/inspect_dataset.py --salvage``). ``--workers K`` runs K processes,
each its own episodes; they end with this one. Every option is a field of
``driving.rollout.record.RecordConfig`` (see ``--help``).
"""

from __future__ import annotations

import sys

from driving.rollout.record import RecordConfig, RecordSummary, record
from tools._cli import run


def main(argv: list[str] | None = None) -> int:
    """Parses the command line into a ``RecordConfig`` and records; returns the exit status."""
    return run(RecordConfig, record, description=__doc__, show=RecordSummary.format, argv=argv)


if __name__ == "__main__":
    sys.exit(main())

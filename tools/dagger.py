"""DAgger: rounds of on-policy recording (the expert labels every frame) and retraining.

Usage::

    python tools/dagger.py --data data/d30 --start checkpoints/my-run --out checkpoints/dagger
    python tools/dagger.py --data data/d30 --start ck/run --out ck/dagger --train.steps 600

Round i lets the previous round's policy drive (round 1: ``--start``), the expert taking the
wheel with probability ``beta0 * beta_decay ** (i - 1)``; it appends ``--minutes`` of driving,
labelled by the expert, to ``--data`` (as ``tools/record.py --driver``), then trains a fresh
policy on the whole dataset into ``OUT/round_NN/`` with the ``--train.*`` settings (give the
ones the start policy was trained with). ``OUT/dagger.json`` records the progress: rerunning the
same command after a kill skips the finished rounds and resumes the unfinished one; more
``--rounds`` go on. Every option is a field of ``driving.train.dagger.DaggerConfig``.
"""

from __future__ import annotations

import sys

from driving.train.dagger import DaggerConfig, DaggerSummary, run_dagger
from tools._cli import run


def main(argv: list[str] | None = None) -> int:
    """Parses the command line into a ``DaggerConfig`` and runs the rounds; returns the status."""
    return run(DaggerConfig, run_dagger, description=__doc__, show=DaggerSummary.format, argv=argv)


if __name__ == "__main__":
    sys.exit(main())

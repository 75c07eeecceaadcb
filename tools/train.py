r"""Train a steering policy by imitation on recorded episodes.

Usage::

    python tools/train.py --data data/builtin-30min --out checkpoints/my-run --model cfc-ncp
    python tools/train.py --data data/a data/b --out checkpoints/lstm --model lstm --steps 2000
    python tools/train.py --data data/builtin-30min --out checkpoints/my-run --resume
    python tools/train.py --data data/junctions --out checkpoints/embed \
        --policy.command-input embed --command-balance

Writes ``OUT/last/`` (latest checkpoint + train_state.pt), ``OUT/best/`` (lowest validation
loss), ``OUT/metrics.jsonl`` and ``OUT/tb/`` (TensorBoard), and prints the best checkpoint's
folder. ``--resume`` continues a killed run exactly; it refuses data that changed since
(``--resume-allow-data-change`` to continue anyway). Every option is a field of
``driving.train.config.TrainConfig`` (see ``--help``). Bad data, settings or checkpoints
are one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import sys

from driving.train.trainer import TrainConfig, train
from tools._cli import run


def main(argv: list[str] | None = None) -> int:
    """Parses the command line into a ``TrainConfig`` and trains; returns the exit status."""
    return run(TrainConfig, train, description=__doc__, show=str, argv=argv)


if __name__ == "__main__":
    sys.exit(main())

r"""Train a steering policy by imitation on recorded episodes.

Usage::

    python tools/train.py --data data/builtin-30min --out checkpoints/my-run --model cfc-ncp
    python tools/train.py --data data/a data/b --out checkpoints/lstm --model lstm --steps 2000
    python tools/train.py --data data/builtin-30min --out checkpoints/my-run --resume

Writes ``OUT/last/`` (latest checkpoint + train_state.pt), ``OUT/best/`` (lowest validation
loss), ``OUT/metrics.jsonl`` and ``OUT/tb/`` (TensorBoard). Every option is a field of
``driving.train.trainer.TrainConfig`` (see ``--help``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tyro

from driving.train.trainer import TrainConfig, train


def main(argv: list[str] | None = None) -> Path:
    """Parses the command line into a ``TrainConfig`` and trains; returns the best checkpoint."""
    cfg = tyro.cli(TrainConfig, args=argv, description=__doc__)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    best = train(cfg)
    logging.getLogger("tools.train").info("best checkpoint: %s", best)
    return best


if __name__ == "__main__":
    main()

r"""Draw what the liquid network did on a rollout: video, summary, wiring.

Usage::

    python tools/visualize.py --rollout ROLLOUT --checkpoint CKPT --out DIR
    python tools/visualize.py --rollout outputs/eval/rollouts/MODEL/SUITE/CONDITION \
        --checkpoint runs/cfc-ncp --out outputs/vis --gif --saliency gradcam

``--rollout`` is an episode folder (``.../episodes/episode_000000``) or a folder of episodes
(its first episode, or ``--episode N``). Writes into ``--out``:

* ``rollout.mp4``: H.264 video; each frame shows the camera with a saliency overlay, the
  neuron traces by group with a moving time marker, the wiring with neurons coloured by their
  activity, predicted vs expert curvature and the route from above with the car;
* ``frame.png``: the video frame at the middle of the rollout;
* ``summary.png``: the whole rollout (command, interventions, neuron traces, PCA);
* ``wiring.png`` and ``wiring.svg``: the wiring diagram (wired cores only);
* ``rollout.gif`` with ``--gif``.

Saliency: ``--saliency visualbackprop`` (default, the NCP paper's method), ``gradcam`` or
``integrated_gradients`` (captum). Prints one JSON line: the files and the time each part took.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tyro

from driving.data.episodes import EpisodeFormatError
from driving.model.checkpoint import CheckpointError
from driving.viz.visualize import VisualizeConfig, VisualizeError, visualize


def main(argv: list[str] | None = None) -> dict:
    """Parses the command line, runs :func:`driving.viz.visualize.visualize`, prints its result."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = tyro.cli(VisualizeConfig, args=argv, description=__doc__)
    try:
        result = visualize(cfg)
    except (VisualizeError, CheckpointError, EpisodeFormatError) as e:
        raise SystemExit(f"error: {e}") from e
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

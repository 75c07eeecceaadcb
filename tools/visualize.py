r"""Draw what the liquid network did on a rollout: video, summary, wiring.

Usage::

    python tools/visualize.py --rollout ROLLOUT --checkpoint CKPT --out DIR
    python tools/visualize.py --rollout outputs/eval/rollouts/MODEL/SUITE/CONDITION \
        --checkpoint runs/cfc-ncp --out outputs/vis --gif --saliency gradcam

``--rollout`` is an episode folder (``.../episodes/episode_000000``) or a folder of episodes
(its first episode, or ``--episode N``). Writes into ``--out``:

* ``rollout.mp4``: H.264 video; each frame shows the camera with a saliency overlay, the
  neuron traces by group with a moving time marker, the wiring with neurons coloured by their
  activity, predicted vs expert curvature and the route from above with the car; on a route
  with junctions the active command (arrow and name) on the camera and the command zones
  coloured on the map;
* ``frame.png``: the video frame at the middle of the rollout;
* ``summary.png``: the whole rollout (command, interventions, neuron traces, PCA);
* ``wiring.png`` and ``wiring.svg``: the wiring diagram (wired cores only);
* ``rollout.gif`` with ``--gif``.

Saliency: ``--saliency visualbackprop`` (default, the NCP paper's method), ``gradcam`` or
``integrated_gradients`` (captum). Prints one JSON line: the files and the time each part took.
"""

from __future__ import annotations

import json
import sys

from driving.viz.visualize import VisualizeConfig, visualize
from tools._cli import run


def main(argv: list[str] | None = None) -> int:
    """Parses the command line into a ``VisualizeConfig``, draws; returns the exit status."""
    return run(VisualizeConfig, visualize, description=__doc__, show=json.dumps, argv=argv)


if __name__ == "__main__":
    sys.exit(main())

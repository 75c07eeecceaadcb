"""Draw what the liquid network did on a rollout: video, summary, wiring.

Usage::

    python tools/visualize.py --rollout outputs/eval/rollouts/cfc-ncp/train_towns/hills-noon \
        --checkpoint checkpoints/reference-builtin --out outputs/visualize

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

import tyro

from driving.visualize import VisualizeConfig, visualize


def main() -> None:
    """Parses the command line and runs :func:`driving.visualize.visualize`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = visualize(tyro.cli(VisualizeConfig))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

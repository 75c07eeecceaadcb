r"""Watch the shipped liquid network drive a road it has never seen, then look inside it.

Usage::

    python tools/demo.py                                   # -> outputs/demo/
    python tools/demo.py --town desert --weather fog --route-km 1.0 --out outputs/demo-fog

Drives the reference checkpoint (``checkpoints/cfc-ncp``: conv head + 19 NCP-wired CfC
neurons) closed loop through a short route in an unseen town, with the privileged expert
driving the same route as the reference, and writes into ``--out``:

* ``demo.md``: what was driven, the metrics table (interventions, lateral error, smoothness)
  and the pictures;
* ``video/rollout.mp4``: the drive with VisualBackProp saliency, all 19 neuron traces, the
  wiring coloured by activity, predicted vs expert curvature and the map;
* ``video/summary.png``, ``video/wiring.png``, the bird's-eye trajectory plot, ``metrics.json``
  and the rollout in the episode format.

It is the evaluation (``tools/evaluate.py``) and visualisation (``tools/visualize.py``) of one
episode, wired together (``driving.evaluate.demo``). Prints demo.md, then one JSON line with
its path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from driving.evaluate.demo import DemoConfig, run_demo
from tools._cli import run


def _show(path: Path) -> str:
    return path.read_text() + "\n" + json.dumps({"demo": str(path)})


def main(argv: list[str] | None = None) -> int:
    """Parses the command line into a ``DemoConfig`` and runs the demo; returns the exit status."""
    return run(DemoConfig, run_demo, description=__doc__, show=_show, argv=argv)


if __name__ == "__main__":
    sys.exit(main())

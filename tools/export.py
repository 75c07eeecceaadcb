r"""Export a checkpoint to a single-step ONNX graph that onnxruntime can drive.

Usage::

    python tools/export.py --checkpoint checkpoints/reference-builtin --out policy.onnx

Writes one ``.onnx`` file (weights inside): (raw uint8 image, neuron state, elapsed time dt_s)
-> (curvature in 1/m, new state), preprocessing included; see ``driving/model/export.py``. It then
drives ``--check-steps`` closed-loop steps on random frames with onnxruntime and with torch
and fails if the curvatures differ by more than ``--tolerance``. ``--dynamic-batch`` exports
for any batch size (default: batch 1). Prints one JSON line: the file, its size and the
measured differences. Drive with it in Python::

    from driving.model.export import OnnxPolicy
    driver = OnnxPolicy("policy.onnx")   # a Driver: reset(), act(obs, state)
"""

from __future__ import annotations

import json
import sys

from driving.model.export import ExportConfig, export
from tools._cli import run


def main(argv: list[str] | None = None) -> int:
    """Parses the command line into an ``ExportConfig``, exports; returns the exit status."""
    return run(ExportConfig, export, description=__doc__, show=json.dumps, argv=argv)


if __name__ == "__main__":
    sys.exit(main())

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
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tyro

from driving.model.export import ExportConfig, export


def main(argv: list[str] | None = None) -> int:
    """Parses the command line into an ``ExportConfig``, exports; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = tyro.cli(ExportConfig, args=argv, description=__doc__)
        result = export(cfg)
    except (ValueError, RuntimeError) as e:  # bad option, checkpoint, failed export or check
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

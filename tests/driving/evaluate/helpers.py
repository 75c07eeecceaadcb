"""Shared pieces of the evaluation tests: an untrained checkpoint and quick configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

QUICK = {"routes": 1, "route_km": 0.1, "rollouts": "none", "plots": False, "progress": False}
"""A short evaluation: one route per town (as few as every weather allows), 100 m."""


def untrained_cfc(folder: Path) -> Path:
    """Saves an untrained cfc-ncp checkpoint (weights from a fixed seed) into ``folder``."""
    import torch

    from driving.model.checkpoint import save_checkpoint
    from driving.model.policy import PolicyConfig, SteeringPolicy

    torch.manual_seed(0)
    return save_checkpoint(folder, SteeringPolicy(PolicyConfig(core="cfc-ncp")))


def set_camera(checkpoint: Path, camera: dict[str, Any] | None) -> None:
    """Rewrites the training camera a checkpoint's ``config.json`` records (None: none)."""
    path = checkpoint / "config.json"
    config = json.loads(path.read_text())
    if camera is None:
        config.pop("camera", None)
        config["format_version"] = 1  # what older checkpoints were
    else:
        config["camera"] = camera
    path.write_text(json.dumps(config))


def quick_config(out: Path, **overrides: Any):
    """An ``EvalConfig`` for a short evaluation into ``out``."""
    from driving.evaluate.evaluation import EvalConfig

    return EvalConfig(out=out, **{**QUICK, **overrides})

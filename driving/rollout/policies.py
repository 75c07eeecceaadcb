"""Learned policies as closed-loop drivers: loading, the camera check, neuron-state columns.

A checkpoint records the camera its training data were recorded with (``config.json`` key
``camera``, a ``sim.spec.CameraSpec``). A policy only drives an env whose camera
(``env.unwrapped.camera``, the contract's ``DrivingEnv.camera``) is that same camera:
:func:`check_camera` refuses any other. An older checkpoint that records no camera is checked
by image size alone against its preprocessing, with a warning.

Rollouts store every neuron's state per step in columns ``neuron_000`` ... (in the policy's
state order); :func:`neuron_step_columns` makes them for ``run_episode``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from driving.data.episodes import neuron_column
from driving.model.checkpoint import checkpoint_camera, load_policy, resolve_checkpoint
from driving.model.policy import SteeringPolicy
from liquid_drive.errors import LiquidDriveError
from sim.spec import CameraSpec

logger = logging.getLogger(__name__)


class CameraMismatchError(LiquidDriveError, ValueError):
    """The env's camera is not the one the checkpoint was trained with."""


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy loaded for driving, with the camera its checkpoint records."""

    checkpoint: Path
    """The resolved checkpoint folder."""
    policy: SteeringPolicy
    """The policy, in eval mode."""
    camera: CameraSpec | None
    """The training camera; None for an older checkpoint that records none."""


def load_driving_policy(checkpoint: Path | str) -> LoadedPolicy:
    """Loads a checkpoint's policy (eval mode) and the camera it records.

    Raises:
        driving.model.checkpoint.CheckpointError: If the checkpoint is missing, corrupt or
            its camera entry is malformed.
    """
    folder = resolve_checkpoint(checkpoint)
    return LoadedPolicy(folder, load_policy(folder).eval(), checkpoint_camera(folder))


def check_camera(loaded: LoadedPolicy, camera: CameraSpec, *, warn: bool = True) -> None:
    """Refuses an env camera that differs from the checkpoint's training camera.

    Args:
        loaded: The policy and its recorded camera.
        camera: The env's camera (``env.unwrapped.camera``).
        warn: Log a warning when the checkpoint records no camera (else a debug message).

    Raises:
        CameraMismatchError: Naming the checkpoint and both cameras.
    """
    if loaded.camera is not None:
        if loaded.camera != camera:
            raise CameraMismatchError(
                f"{loaded.checkpoint}: trained with the camera {loaded.camera.to_dict()}, but "
                f"the env's camera is {camera.to_dict()}; evaluate with the training camera"
            )
        return
    pre = loaded.policy.config.preprocess
    (logger.warning if warn else logger.debug)(
        "%s records no camera (an older checkpoint): only the image size is checked",
        loaded.checkpoint,
    )
    if (camera.height_px, camera.width_px) != (pre.input_height_px, pre.input_width_px):
        raise CameraMismatchError(
            f"{loaded.checkpoint}: its preprocessing takes {pre.input_height_px}x"
            f"{pre.input_width_px} px (HxW) frames, but the env's camera is {camera.to_dict()}"
        )


def neuron_step_columns(
    policy: SteeringPolicy,
) -> tuple[dict[str, str], Callable[[Any], dict[str, float]]]:
    """The neuron-state extra columns of a policy and the function filling them per step.

    Returns:
        ``({"neuron_000": unit, ...}, f(state) -> {"neuron_000": value, ...})``; the column
        index is the neuron's index in the policy's state order.
    """
    import torch

    n = int(policy.state_size)
    names = [neuron_column(i) for i in range(n)]

    def columns(state: Any) -> dict[str, float]:
        h = policy.neuron_states(state)
        values = h.detach().reshape(-1).cpu().numpy() if isinstance(h, torch.Tensor) else h
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape[0] != n:
            raise RuntimeError(f"policy state has {values.shape[0]} neurons, expected {n}")
        return dict(zip(names, values.tolist(), strict=True))

    return dict.fromkeys(names, "1"), columns

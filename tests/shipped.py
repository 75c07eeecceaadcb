"""Shared piece of the shipped-checkpoint tests: one closed-loop route of a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import sim
from driving.model.checkpoint import load_policy
from driving.rollout.episode import EpisodeLog, run_episode

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
"""The shipped checkpoints' folder."""


def drive_checkpoint(checkpoint: Path, seed: int, **env_kwargs: Any) -> EpisodeLog:
    """The checkpoint's policy drives road ``seed`` of a builtin env in intervention mode.

    Args:
        checkpoint: A checkpoint folder.
        seed: The road seed (``env.reset(seed=...)``).
        **env_kwargs: ``sim.make_env("builtin", ...)`` options (town, weather, route length ...).

    Returns:
        The episode's log, labelled by the expert.
    """
    policy = load_policy(checkpoint)
    env = sim.make_env("builtin", intervention_mode=True, **env_kwargs)
    try:
        with torch.inference_mode():
            return run_episode(env, policy, seed=seed, label_driver=sim.make_expert(env))
    finally:
        env.close()

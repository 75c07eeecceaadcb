"""Worlds only: the simulator contract, the builtin simulator, the CARLA backend and wrappers.

``sim`` imports neither ``driving`` nor ``perception`` and never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium

BUILTIN_ENV_ID = "LiquidDrive/Builtin-v0"
"""Gymnasium id of the builtin simulator (``gymnasium.make(BUILTIN_ENV_ID, town=...)``)."""

if BUILTIN_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=BUILTIN_ENV_ID, entry_point="sim.builtin.env:BuiltinDrivingEnv")

SIMULATORS: tuple[str, ...] = ("builtin", "carla")
"""Names accepted by :func:`make_env`."""


def make_env(sim: str = "builtin", **kwargs: Any) -> gymnasium.Env:
    """Creates a driving environment.

    Args:
        sim: ``"builtin"`` (the default CPU simulator) or ``"carla"`` (needs a CARLA server;
            ``sim.carla`` is imported only then).
        **kwargs: Fields of the backend's config (for builtin: ``BuiltinEnvConfig``, plus
            ``render_mode``).

    Returns:
        The environment (not wrapped).

    Raises:
        ValueError: For an unknown simulator name.
    """
    if sim == "builtin":
        from sim.builtin.env import BuiltinDrivingEnv

        return BuiltinDrivingEnv(**kwargs)
    if sim == "carla":
        carla_backend = importlib.import_module("sim.carla")
        return carla_backend.CarlaDrivingEnv(**kwargs)
    raise ValueError(f"unknown simulator {sim!r}; valid: {', '.join(SIMULATORS)}")


def make_expert(env: gymnasium.Env) -> Any:
    """The privileged expert ``Driver`` of any of our environments (wrapped or not)."""
    return env.unwrapped.make_expert()

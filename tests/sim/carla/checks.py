"""Assertions and drivers shared by the CARLA env tests."""

from __future__ import annotations

import numpy as np

from tests.sim.carla import standin


def assert_clean(server: standin.Server, original: standin.WorldSettings | None = None) -> None:
    """No actor alive, world and Traffic Manager asynchronous, no sensor destroyed listening."""
    assert server.live_actors() == []
    assert server.settings.synchronous_mode is False
    assert server.settings == (original or standin.WorldSettings())
    assert not any(server.tm_sync.values())
    assert server.violations == []


def run(env, steps: int, kappa: float = 0.0):
    """Steps a constant curvature until the episode ends; returns the last step's tuple."""
    out = None
    for _ in range(steps):
        out = env.step(np.array([kappa], np.float32))
        if out[2] or out[3]:
            break
    return out

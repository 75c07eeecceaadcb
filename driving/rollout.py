"""The driver protocol shared by the expert and every learned policy.

A ``Driver`` is anything with ``reset() -> state`` and ``act(obs, state) -> (action, state)``.
The recurrent state is passed explicitly, so a driver holds no hidden per-episode memory and
neuron traces are simply the returned states. The expert drivers in ``sim/`` satisfy the
protocol structurally (``sim`` never imports ``driving``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

Observation = dict[str, np.ndarray]
"""A simulator observation: ``image`` uint8 (H, W, 3), ``speed_mps`` (1,), ``t_s`` (1,)."""


@runtime_checkable
class Driver(Protocol):
    """Something that steers: the privileged expert or a learned policy."""

    def reset(self) -> Any:
        """Returns the initial state for a new episode (``None`` for stateless drivers)."""
        ...

    def act(self, obs: Observation, state: Any) -> tuple[np.ndarray, Any]:
        """Returns the action (curvature in 1/m, float32 (1,)) and the next state."""
        ...

"""Who is who in a core's state: neuron names, groups, synapses, and the wiring's geometry.

A :class:`NeuronLayout` is plain numpy: the panels draw any model from it. Cores with named
neurons (the NCP wirings) have groups inter / command / motor and signed synapses; cores
without (lstm, gru) have ``hidden`` units and no synapses; a stateless cnn has no layout.
The colours shared by every panel live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from liquid_drive.errors import LiquidDriveError

SENSORY = "sensory"
INTER = "inter"
COMMAND = "command"
MOTOR = "motor"
HIDDEN = "hidden"
"""Group of the state units of cores without named neurons (lstm, gru)."""
GROUP_ORDER = (INTER, COMMAND, MOTOR, HIDDEN)
"""Order in which neuron groups are drawn (the order the network computes them)."""

EXCITATORY_COLOUR = "#1b9e77"
"""Colour of excitatory (+1) synapses."""
INHIBITORY_COLOUR = "#7b3294"
"""Colour of inhibitory (-1) synapses."""
ACTIVITY_CMAP = "coolwarm"
"""Diverging colour map of neuron activity (blue negative, red positive)."""
PRED_COLOUR = "#d62728"
EXPERT_COLOUR = "#333333"
INTERVENTION_COLOUR = "#e6550d"
MAX_TRACE_LINES = 16
"""Groups with more units than this are drawn as a heat map instead of one line per unit."""


class VisualizeError(LiquidDriveError, ValueError):
    """Inputs to a figure or video are inconsistent (the message names the bad value)."""


@dataclass(frozen=True)
class NeuronLayout:
    """Names, groups and synapses of a recurrent core's state units, in state order."""

    names: tuple[str, ...]
    """One name per state index."""
    groups: tuple[str, ...]
    """Group of each state index: ``inter``, ``command``, ``motor`` or ``hidden``."""
    adjacency: np.ndarray | None = None
    """Signed synapses (N, N), ``[src, dst]`` in state order, +1 / -1 / 0; None: no wiring."""
    sensory_adjacency: np.ndarray | None = None
    """Signed sensory synapses (S, N), ``[input, dst]``; None when there is no wiring."""

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(self.groups) != n:
            raise VisualizeError(f"{n} neuron names but {len(self.groups)} groups")
        bad = sorted(set(self.groups) - set(GROUP_ORDER))
        if bad:
            raise VisualizeError(f"unknown neuron groups {bad}; known: {GROUP_ORDER}")
        if self.adjacency is not None and self.adjacency.shape != (n, n):
            raise VisualizeError(f"adjacency must be ({n}, {n}), got {self.adjacency.shape}")
        if self.sensory_adjacency is not None and (
            self.sensory_adjacency.ndim != 2 or self.sensory_adjacency.shape[1] != n
        ):
            raise VisualizeError(
                f"sensory_adjacency must be (S, {n}), got {self.sensory_adjacency.shape}"
            )

    @property
    def size(self) -> int:
        """Number of state units N."""
        return len(self.names)

    @property
    def has_wiring(self) -> bool:
        """True when synapses are known (an NCP or other named wiring)."""
        return self.adjacency is not None

    def group_indices(self) -> dict[str, np.ndarray]:
        """State indices of each non-empty group, in :data:`GROUP_ORDER`."""
        g = np.asarray(self.groups)
        return {name: np.flatnonzero(g == name) for name in GROUP_ORDER if (g == name).any()}

    @classmethod
    def hidden(cls, units: int) -> NeuronLayout:
        """Layout of a core without named neurons: ``h0 .. h{N-1}``, group ``hidden``."""
        return cls(tuple(f"h{i}" for i in range(units)), (HIDDEN,) * units)

    @classmethod
    def from_wiring(cls, wiring: Any) -> NeuronLayout:
        """Layout of a built ``driving.model.wiring.NCP`` (state order, state-order synapses)."""
        names = tuple(wiring.neuron_names)
        groups = tuple(wiring.neuron_group(i) for i in range(len(names)))
        return cls(
            names,
            groups,
            np.asarray(wiring.state_adjacency, dtype=np.int32),
            np.asarray(wiring.state_sensory_adjacency, dtype=np.int32),
        )


def layout_from_policy(policy: Any) -> NeuronLayout | None:
    """The neuron layout of a ``SteeringPolicy``; None for a stateless core (cnn).

    Wired cores (cfc-ncp, cfc-ncp-random, cfc-ncp-full, ltc-ncp) get their wiring's groups
    and synapses; the others their hidden units (``h0`` ..., group ``hidden``) and no wiring.
    """
    if int(policy.state_size) == 0:
        return None
    if policy.wiring is not None:
        layout = NeuronLayout.from_wiring(policy.wiring)
        if layout.names != tuple(policy.neuron_names):
            raise VisualizeError(
                f"policy neuron names {policy.neuron_names[:3]}... differ from its wiring's"
            )
        return layout
    return NeuronLayout(tuple(policy.neuron_names), tuple(policy.neuron_groups))


def wiring_positions(layout: NeuronLayout) -> dict[tuple[str, int], np.ndarray]:
    """Node positions of the layered wiring diagram.

    A multipartite layout, like ``networkx.multipartite_layout`` but with every layer spread
    over the full height (networkx scales a layer's extent by its size, which piles the small
    command layer into a clump): layer ``k`` sits at x = k, its nodes evenly spaced in
    y from 1 (index 0, top) down to 0. Keys are ``("sensory", input_index)`` and
    ``("neuron", state_index)``; layers run sensory, inter, command, motor (or hidden).
    """
    if layout.adjacency is None:
        raise VisualizeError("this core has no wiring to draw")
    columns: list[list[tuple[str, int]]] = []
    if layout.sensory_adjacency is not None:
        columns.append([(SENSORY, i) for i in range(layout.sensory_adjacency.shape[0])])
    for idx in layout.group_indices().values():
        columns.append([("neuron", int(i)) for i in idx])
    most = max(len(nodes) for nodes in columns)
    pos = {}
    for x, nodes in enumerate(columns):
        half = 0.5 * (len(nodes) / most) ** 0.25  # smaller layers a little more compact
        ys = [0.5] if len(nodes) == 1 else np.linspace(0.5 + half, 0.5 - half, len(nodes))
        for node, y in zip(nodes, ys, strict=True):
            pos[node] = np.array([float(x), float(y)])
    return pos

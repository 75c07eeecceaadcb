"""Control wirings for the NCP: the same neurons wired at random, or fully (numpy only).

They separate what the NCP's *wiring* contributes from what its neurons and layers do:

* :class:`RandomNCP` (``--model cfc-ncp-random``): the NCP's neuron groups and layers, and
  exactly as many synapses in each block as the NCP of the same arguments and seed draws,
  but each block's synapses placed uniformly at random among its allowed pairs.
* :class:`FullNCP` (``--model cfc-ncp-full``): the NCP's neuron groups and layers with every
  allowed synapse present (sensory -> inter, inter -> command, command -> command and
  command -> motor all fully connected).

Why the counts are matched **per block** rather than in total: a total count placed over all
allowed pairs would shift synapses between layers (the sensory block holds 384 of the 498
allowed pairs) and could leave the single motor neuron with fewer inputs, or none (its
block has only 6 allowed pairs, about 3 expected synapses), so the control would also change
the layer densities and the output's fan-in, not just which neuron talks to which. Matched per
block, the random wiring has the NCP's layer-to-layer densities and, on the CfC, the same
number of connected parameters; only the NCP's structure within each block (every sensory
input reaching ``sensory_fanout`` inter neurons, every inter neuron ``inter_fanout`` command
neurons, every neuron reached) is gone. The command -> command block is split further into
self-loops and the other pairs, because the wired CfC connects every neuron's own state
anyway: a self-loop synapse adds no parameter there, so matching the two counts separately
keeps the CfC's connected parameter count exactly equal to the NCP's.

Polarities are drawn as the NCP draws them: +1 or -1 with equal probability per synapse (they
matter only to the LTC; the CfC ignores them). Both wirings are seeded by the NCP's ``seed``
(the placement from a stream of its own, ``RandomState([seed, stream])``), so they rebuild
identically from their arguments and round-trip through ``to_dict`` / ``wiring_from_dict``
(both classes register themselves as wiring kinds on import).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from driving.model.wiring import NCP

__all__ = ["WIRING_VARIANTS", "FullNCP", "RandomNCP", "block_masks"]

RANDOM_STREAM = 1
"""Second seed word of the random placement (the NCP's own draws use ``seed`` alone)."""
FULL_STREAM = 2
"""Second seed word of the full wiring's polarities."""


def block_masks(wiring: NCP, input_dim: int) -> dict[str, tuple[str, np.ndarray]]:
    """Allowed synapse pairs of each block, in **ncps id** order.

    Args:
        wiring: Any NCP (only its group sizes are used).
        input_dim: Sensory inputs S.

    Returns:
        ``{block: (matrix, mask)}``: ``matrix`` is "sensory" (mask (S, N)) or "internal"
        (mask (N, N), ``[src, dst]``); blocks sensory_inter, inter_command,
        command_self (command self-loops), command_other (command -> another command),
        command_motor.
    """
    n, m, c = wiring.units, wiring.motor_neurons, wiring.command_neurons
    motor, command, inter = slice(0, m), slice(m, m + c), slice(m + c, n)

    def internal(src: slice, dst: slice) -> np.ndarray:
        mask = np.zeros((n, n), dtype=bool)
        mask[src, dst] = True
        return mask

    sensory = np.zeros((input_dim, n), dtype=bool)
    sensory[:, inter] = True
    self_loops = internal(command, command) & np.eye(n, dtype=bool)
    return {
        "sensory_inter": ("sensory", sensory),
        "inter_command": ("internal", internal(inter, command)),
        "command_self": ("internal", self_loops),
        "command_other": ("internal", internal(command, command) & ~self_loops),
        "command_motor": ("internal", internal(command, motor)),
    }


def _signs(rng: np.random.RandomState, k: int) -> np.ndarray:
    """``k`` polarities, +1 or -1 with equal probability (as the NCP draws them), int32 (k,)."""
    return rng.choice([-1, 1], size=k).astype(np.int32)


class RandomNCP(NCP):
    """The NCP's neurons and per-block synapse counts, the synapses placed at random.

    Takes the :class:`~driving.model.wiring.NCP` arguments: ``build`` first draws that NCP
    (same arguments, same seed), counts its synapses per block (:func:`block_masks`), then
    places that many synapses in each block uniformly at random without replacement, from
    ``RandomState([seed, RANDOM_STREAM])``. See the module docstring for why per block.
    """

    kind = "RandomNCP"

    @classmethod
    def like(cls, ncp: NCP) -> RandomNCP:
        """The random control of an (unbuilt or built) NCP: same arguments and seed."""
        return cls(**ncp.config())

    def _draw(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        internal, sensory = super()._draw(s)  # the NCP of these arguments, ncps id order
        ref = {"internal": internal, "sensory": sensory}
        rng = np.random.RandomState([self.seed, RANDOM_STREAM])
        out = {key: np.zeros_like(value) for key, value in ref.items()}
        for matrix, mask in block_masks(self, s).values():
            count = int(np.count_nonzero(ref[matrix][mask]))
            pairs = np.flatnonzero(mask)  # allowed pairs of the block, row-major
            chosen = np.sort(rng.choice(pairs, size=count, replace=False))
            out[matrix].flat[chosen] = _signs(rng, count)
        return out["internal"], out["sensory"]


class FullNCP(NCP):
    """The NCP's neuron groups and layers with every allowed synapse present.

    Sensory -> inter, inter -> command, command -> command (self-loops included: every
    command pair is allowed in an NCP) and command -> motor are fully connected; nothing
    else (no inter -> inter, no skip connections). Polarities from
    ``RandomState([seed, FULL_STREAM])``.

    Args:
        inter_neurons: Inter neurons I.
        command_neurons: Command neurons C.
        motor_neurons: Motor neurons M.
        seed: Seed of the polarities.
    """

    kind = "FullNCP"

    def __init__(
        self, inter_neurons: int, command_neurons: int, motor_neurons: int, seed: int = 22222
    ) -> None:
        super().__init__(
            inter_neurons=inter_neurons,
            command_neurons=command_neurons,
            motor_neurons=motor_neurons,
            sensory_fanout=inter_neurons,
            inter_fanout=command_neurons,
            recurrent_command_synapses=command_neurons * command_neurons,
            motor_fanin=command_neurons,
            seed=seed,
        )

    @classmethod
    def like(cls, ncp: NCP) -> FullNCP:
        """The fully connected control of an NCP: same neuron groups, polarity seed."""
        return cls(ncp.inter_neurons, ncp.command_neurons, ncp.motor_neurons, seed=ncp.seed)

    def config(self) -> dict[str, Any]:
        """Constructor arguments (layer sizes and seed)."""
        return {
            "inter_neurons": self.inter_neurons,
            "command_neurons": self.command_neurons,
            "motor_neurons": self.motor_neurons,
            "seed": self.seed,
        }

    def _draw(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.RandomState([self.seed, FULL_STREAM])
        n = self.units
        out = {"internal": np.zeros((n, n), np.int32), "sensory": np.zeros((s, n), np.int32)}
        for matrix, mask in block_masks(self, s).values():
            out[matrix][mask] = _signs(rng, int(mask.sum()))
        return out["internal"], out["sensory"]


WIRING_VARIANTS: dict[str, Callable[[NCP], NCP]] = {
    "cfc-ncp-random": RandomNCP.like,
    "cfc-ncp-full": FullNCP.like,
}
"""Policy core name -> the control wiring made from the configured NCP."""

"""Neural Circuit Policy (NCP) wirings: which neuron talks to which (numpy only).

An NCP (Lechner et al. 2020, "Neural circuit policies enabling auditable autonomy", Nature
Machine Intelligence 2, 642-652, Algorithms 2-6) is a four-layer sparse graph::

    sensory inputs (S) -> inter neurons (I) -> command neurons (C) -> motor neurons (M)
                                               command -> command (recurrent synapses)

Each synapse has a polarity: +1 excitatory, -1 inhibitory. This module reproduces the
generator of the reference package ``ncps`` 1.0.1 exactly (same arguments, same seed, same
``np.random.RandomState`` draws in the same order), so ``adjacency_matrix`` and
``sensory_adjacency_matrix`` equal ncps's for the same arguments. Unlike ncps, ``build`` is
idempotent: building twice never adds synapses. ``MatrixNCP`` is an NCP whose synapses are
given instead of drawn (what ``driving.model.ncps_interop`` reads from an ncps module).

Two neuron orders exist, and only one of them is ours:

* **ncps ids** (used only by ``adjacency_matrix`` / ``sensory_adjacency_matrix`` for parity):
  motor ``0..M-1``, command ``M..M+C-1``, inter ``M+C..N-1``.
* **state order** (used everywhere else in this project: recurrent states, checkpoints,
  neuron names, plots, ``state_adjacency`` / ``state_sensory_adjacency``): inter, then
  command, then motor -- the layer order in which the network computes, and the order of
  ncps's CfC hidden state ``hx``. ``ncps_ids[i]`` is the ncps id of state index ``i``; the
  motor neurons are the last ``M`` state indices.

For AutoNCP(19, 1): state 0..10 = inter = ncps ids 8..18, state 11..17 = command = ids 1..7,
state 18 = motor = id 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liquid_drive.errors import LiquidDriveError

__all__ = [
    "DEFAULT_STEERING_INPUTS",
    "DEFAULT_STEERING_NCP",
    "NCP",
    "AutoNCP",
    "MatrixNCP",
    "WiringError",
    "default_steering_wiring",
    "wiring_from_dict",
]

GROUPS = ("inter", "command", "motor")
"""Neuron groups in state order (the layers, computed in this order within a step)."""

DEFAULT_STEERING_NCP: dict[str, int] = {
    "inter_neurons": 12,
    "command_neurons": 6,
    "motor_neurons": 1,
    "sensory_fanout": 6,
    "inter_fanout": 4,
    "recurrent_command_synapses": 6,
    "motor_fanin": 6,
    "seed": 20190120,
}
"""The NCP paper's driving wiring (12/6/1 neurons, seed of the 2020 lab notebook).

With 32 sensory inputs the ncps generator gives 60 internal + 192 sensory = 252 synapses
(the paper reports 253 from the older TF1 generator; no ncps seed reaches 253).
"""

DEFAULT_STEERING_INPUTS = 32
"""Sensory inputs of the default steering core: the conv head's 8 maps x 4 features."""


class WiringError(LiquidDriveError, ValueError):
    """Invalid wiring arguments, or a wiring used in a way its construction forbids."""


_KINDS: dict[str, type[NCP]] = {}
"""Wiring classes by ``kind`` (every subclass of :class:`NCP` registers itself)."""


class NCP:
    """A Neural Circuit Policy wiring with ncps 1.0.1's arguments and generator.

    Nothing is drawn at construction; ``build(input_dim)`` draws every synapse from
    ``np.random.RandomState(seed)`` in ncps's order (sensory->inter, inter->command,
    command->command, command->motor). Building again with the same ``input_dim`` is a no-op;
    a different ``input_dim`` raises ``WiringError``.

    Args:
        inter_neurons: Number of inter neurons (layer 1, fed by the sensory inputs).
        command_neurons: Number of command neurons (layer 2).
        motor_neurons: Number of motor neurons (layer 3, the outputs).
        sensory_fanout: Inter neurons each sensory input projects to (<= inter_neurons).
        inter_fanout: Command neurons each inter neuron projects to (<= command_neurons).
        recurrent_command_synapses: Command->command synapses drawn with replacement (a
            repeated pair overwrites, so the distinct count can be lower; self-loops allowed).
        motor_fanin: Command neurons feeding each motor neuron (<= command_neurons).
        seed: Seed of the legacy ``np.random.RandomState`` (ncps's default 22222).
    """

    kind = "NCP"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _KINDS[cls.kind] = cls

    def __init__(
        self,
        inter_neurons: int,
        command_neurons: int,
        motor_neurons: int,
        sensory_fanout: int,
        inter_fanout: int,
        recurrent_command_synapses: int,
        motor_fanin: int,
        seed: int = 22222,
    ) -> None:
        counts = {
            "inter_neurons": inter_neurons,
            "command_neurons": command_neurons,
            "motor_neurons": motor_neurons,
            "sensory_fanout": sensory_fanout,
            "inter_fanout": inter_fanout,
            "recurrent_command_synapses": recurrent_command_synapses,
            "motor_fanin": motor_fanin,
        }
        for name, value in counts.items():
            minimum = 0 if name == "recurrent_command_synapses" else 1
            if not isinstance(value, (int, np.integer)) or value < minimum:
                raise WiringError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if motor_fanin > command_neurons:
            raise WiringError(
                f"motor_fanin={motor_fanin} exceeds command_neurons={command_neurons}"
            )
        if sensory_fanout > inter_neurons:
            raise WiringError(
                f"sensory_fanout={sensory_fanout} exceeds inter_neurons={inter_neurons}"
            )
        if inter_fanout > command_neurons:
            raise WiringError(
                f"inter_fanout={inter_fanout} exceeds command_neurons={command_neurons}"
            )
        self.inter_neurons = int(inter_neurons)
        self.command_neurons = int(command_neurons)
        self.motor_neurons = int(motor_neurons)
        self.sensory_fanout = int(sensory_fanout)
        self.inter_fanout = int(inter_fanout)
        self.recurrent_command_synapses = int(recurrent_command_synapses)
        self.motor_fanin = int(motor_fanin)
        self.seed = int(seed)
        self.input_dim: int | None = None
        self._adjacency: np.ndarray | None = None  # (N, N) int32, [src, dst], ncps ids
        self._sensory: np.ndarray | None = None  # (S, N) int32, [src, dst], ncps ids

    # ----------------------------------------------------------------- sizes and groups
    @property
    def units(self) -> int:
        """Total number of neurons N (the recurrent state size)."""
        return self.inter_neurons + self.command_neurons + self.motor_neurons

    @property
    def output_dim(self) -> int:
        """Number of outputs (the motor neurons)."""
        return self.motor_neurons

    @property
    def group_sizes(self) -> dict[str, int]:
        """Neurons per group, in state order: ``{"inter": I, "command": C, "motor": M}``."""
        return {
            "inter": self.inter_neurons,
            "command": self.command_neurons,
            "motor": self.motor_neurons,
        }

    @property
    def groups(self) -> dict[str, range]:
        """State indices of each group: inter ``0..I-1``, command ``I..I+C-1``, motor last."""
        out, start = {}, 0
        for name, size in self.group_sizes.items():
            out[name] = range(start, start + size)
            start += size
        return out

    @property
    def layer_sizes(self) -> tuple[int, int, int]:
        """Sizes of the three computed layers (inter, command, motor)."""
        return (self.inter_neurons, self.command_neurons, self.motor_neurons)

    @property
    def motor_indices(self) -> range:
        """State indices of the motor neurons (the outputs): the last ``M``."""
        return self.groups["motor"]

    @property
    def neuron_names(self) -> list[str]:
        """One name per state index: ``inter_0 .. inter_{I-1}, command_0 .., motor_0 ..``."""
        return [f"{name}_{k}" for name, size in self.group_sizes.items() for k in range(size)]

    @property
    def ncps_ids(self) -> np.ndarray:
        """Ncps neuron id of each state index, shape (N,), int64."""
        m, c = self.motor_neurons, self.command_neurons
        inter = np.arange(m + c, m + c + self.inter_neurons)
        command = np.arange(m, m + c)
        motor = np.arange(0, m)
        return np.concatenate([inter, command, motor])

    def neuron_group(self, state_index: int) -> str:
        """Group name ("inter", "command" or "motor") of a state index."""
        for name, indices in self.groups.items():
            if state_index in indices:
                return name
        raise WiringError(f"state index {state_index} outside 0..{self.units - 1}")

    # ----------------------------------------------------------------------- building
    @property
    def is_built(self) -> bool:
        """Whether ``build`` has drawn the synapses."""
        return self._adjacency is not None

    def build(self, input_dim: int) -> NCP:
        """Draw the synapses for ``input_dim`` sensory inputs (idempotent).

        Args:
            input_dim: Number of sensory inputs S.

        Returns:
            ``self``, for chaining.

        Raises:
            WiringError: ``input_dim`` is not a positive integer, or differs from an earlier
                build.
        """
        if not isinstance(input_dim, (int, np.integer)) or input_dim < 1:
            raise WiringError(f"input_dim must be a positive integer, got {input_dim!r}")
        if self.input_dim is not None:
            if self.input_dim != input_dim:
                raise WiringError(
                    f"wiring already built for input_dim={self.input_dim}, got {input_dim}; "
                    "create a new wiring for a different input width"
                )
            return self
        self._adjacency, self._sensory = self._draw(int(input_dim))
        self.input_dim = int(input_dim)
        return self

    def _draw(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ncps 1.0.1's synapses for ``s`` inputs; matrices in ncps id order."""
        rng = np.random.RandomState(self.seed)
        n, m, c = self.units, self.motor_neurons, self.command_neurons
        motor = list(range(0, m))
        command = list(range(m, m + c))
        inter = list(range(m + c, n))
        sensory_ids = list(range(s))
        adj = np.zeros((n, n), dtype=np.int32)
        sens = np.zeros((s, n), dtype=np.int32)

        def sign() -> int:
            return int(rng.choice([-1, 1]))

        # 1. sensory -> inter, then every unreached inter neuron gets the mean fan-in.
        unreached = list(inter)
        for src in sensory_ids:
            for dst in rng.choice(inter, size=self.sensory_fanout, replace=False):
                if dst in unreached:
                    unreached.remove(dst)
                sens[src, dst] = sign()
        fanin = int(np.clip(int(s * self.sensory_fanout / len(inter)), 1, s))
        for dst in unreached:
            for src in rng.choice(sensory_ids, size=fanin, replace=False):
                sens[src, dst] = sign()

        # 2. inter -> command (the fill-in bound is the command count: an ncps quirk kept).
        unreached = list(command)
        for src in inter:
            for dst in rng.choice(command, size=self.inter_fanout, replace=False):
                if dst in unreached:
                    unreached.remove(dst)
                adj[src, dst] = sign()
        fanin = int(np.clip(int(len(inter) * self.inter_fanout / c), 1, c))
        for dst in unreached:
            for src in rng.choice(inter, size=fanin, replace=False):
                adj[src, dst] = sign()

        # 3. command -> command, with replacement (later draws overwrite).
        for _ in range(self.recurrent_command_synapses):
            src = rng.choice(command)
            dst = rng.choice(command)
            adj[src, dst] = sign()

        # 4. command -> motor, then every unreached command neuron gets the mean fan-out.
        unreached = list(command)
        for dst in motor:
            for src in rng.choice(command, size=self.motor_fanin, replace=False):
                if src in unreached:
                    unreached.remove(src)
                adj[src, dst] = sign()
        fanout = int(np.clip(int(m * self.motor_fanin / c), 1, m))
        for src in unreached:
            for dst in rng.choice(motor, size=fanout, replace=False):
                adj[src, dst] = sign()
        return adj, sens

    def _require_built(self) -> None:
        if not self.is_built:
            raise WiringError(f"{self!r} is not built yet: call build(input_dim) first")

    # ---------------------------------------------------------------------- matrices
    @property
    def adjacency_matrix(self) -> np.ndarray:
        """Signed internal synapses (N, N) int32, ``[src, dst]``, in **ncps id** order."""
        self._require_built()
        assert self._adjacency is not None
        return self._adjacency.copy()

    @property
    def sensory_adjacency_matrix(self) -> np.ndarray:
        """Signed sensory synapses (S, N) int32, ``[input, dst]``, in **ncps id** order."""
        self._require_built()
        assert self._sensory is not None
        return self._sensory.copy()

    @property
    def state_adjacency(self) -> np.ndarray:
        """Signed internal synapses (N, N) int32, ``[src, dst]``, in **state** order."""
        ids = self.ncps_ids
        return self.adjacency_matrix[np.ix_(ids, ids)]

    @property
    def state_sensory_adjacency(self) -> np.ndarray:
        """Signed sensory synapses (S, N) int32, ``[input, dst]``, in **state** order."""
        return self.sensory_adjacency_matrix[:, self.ncps_ids]

    @property
    def synapse_count(self) -> int:
        """Number of internal (neuron -> neuron) synapses."""
        return int(np.abs(self.adjacency_matrix).sum())

    @property
    def sensory_synapse_count(self) -> int:
        """Number of sensory (input -> neuron) synapses."""
        return int(np.abs(self.sensory_adjacency_matrix).sum())

    @property
    def total_synapse_count(self) -> int:
        """Internal plus sensory synapses (252 for the default steering wiring)."""
        return self.synapse_count + self.sensory_synapse_count

    def synapse_counts(self) -> dict[str, int]:
        """Synapses per pathway: sensory->inter, inter->command, command->command, ->motor."""
        a = np.abs(self.state_adjacency)
        g = self.groups
        inter, command, motor = (slice(g[k].start, g[k].stop) for k in GROUPS)
        return {
            "sensory_inter": self.sensory_synapse_count,
            "inter_command": int(a[inter, command].sum()),
            "command_command": int(a[command, command].sum()),
            "command_motor": int(a[command, motor].sum()),
            "total": self.total_synapse_count,
        }

    # ------------------------------------------------------------------ serialisation
    def config(self) -> dict[str, Any]:
        """Constructor arguments (enough to rebuild the same unbuilt wiring)."""
        return {
            "inter_neurons": self.inter_neurons,
            "command_neurons": self.command_neurons,
            "motor_neurons": self.motor_neurons,
            "sensory_fanout": self.sensory_fanout,
            "inter_fanout": self.inter_fanout,
            "recurrent_command_synapses": self.recurrent_command_synapses,
            "motor_fanin": self.motor_fanin,
            "seed": self.seed,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: kind, arguments, input_dim, and the drawn matrices.

        The matrices (ncps id order) are stored so that ``from_dict`` can prove that the
        rebuilt wiring is the one a checkpoint was trained with.
        """
        out: dict[str, Any] = {"kind": self.kind, "args": self.config(), "input_dim": None}
        if self.is_built:
            out["input_dim"] = self.input_dim
            out["adjacency_matrix"] = self.adjacency_matrix.tolist()
            out["sensory_adjacency_matrix"] = self.sensory_adjacency_matrix.tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NCP:
        """Rebuild a wiring written by ``to_dict`` (any kind; see ``wiring_from_dict``)."""
        return wiring_from_dict(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NCP):
            return NotImplemented
        if self.kind != other.kind or self.config() != other.config():
            return False
        if self.input_dim != other.input_dim:
            return False
        return not self.is_built or (
            np.array_equal(self._adjacency, other._adjacency)
            and np.array_equal(self._sensory, other._sensory)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable (build)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.config().items())
        return f"{self.kind}({args}, input_dim={self.input_dim})"


class AutoNCP(NCP):
    """An NCP sized from a neuron count and a sparsity level, as ncps 1.0.1's ``AutoNCP``.

    ``C = max(int(0.4 (units - output_size)), 1)``, ``I = units - output_size - C``,
    sensory fanout ``max(int(I d), 1)``, inter fanout and motor fanin ``max(int(C d), 1)``,
    recurrent command synapses ``max(int(2 C d), 1)`` with density ``d = 1 - sparsity_level``.

    Args:
        units: Total number of neurons.
        output_size: Number of motor neurons; must be < units - 2.
        sparsity_level: In [0.1, 1.0] (ncps's accepted range).
        seed: Seed of the legacy ``np.random.RandomState``.
    """

    kind = "AutoNCP"

    def __init__(
        self, units: int, output_size: int, sparsity_level: float = 0.5, seed: int = 22222
    ) -> None:
        if not isinstance(units, (int, np.integer)) or not isinstance(
            output_size, (int, np.integer)
        ):
            raise WiringError(
                f"units and output_size must be integers, got {units!r}, {output_size!r}"
            )
        if output_size < 1 or output_size >= units - 2:
            raise WiringError(
                f"output_size must be in 1..units-3, got output_size={output_size} "
                f"with units={units}"
            )
        if not 0.1 <= sparsity_level <= 1.0:
            raise WiringError(f"sparsity_level must be in [0.1, 1.0], got {sparsity_level!r}")
        density = 1.0 - sparsity_level
        inter_and_command = units - output_size
        command = max(int(0.4 * inter_and_command), 1)
        inter = inter_and_command - command
        super().__init__(
            inter_neurons=inter,
            command_neurons=command,
            motor_neurons=output_size,
            sensory_fanout=max(int(inter * density), 1),
            inter_fanout=max(int(command * density), 1),
            recurrent_command_synapses=max(int(command * density * 2), 1),
            motor_fanin=max(int(command * density), 1),
            seed=seed,
        )
        self._auto_args = {
            "units": int(units),
            "output_size": int(output_size),
            "sparsity_level": float(sparsity_level),
            "seed": int(seed),
        }

    def config(self) -> dict[str, Any]:
        """Constructor arguments of the AutoNCP (units, output_size, sparsity_level, seed)."""
        return dict(self._auto_args)


class MatrixNCP(NCP):
    """An NCP whose synapses are given rather than drawn (for example read from ncps).

    ncps does not record an NCP wiring's seed, and a wiring it built twice holds more
    synapses than its arguments draw, so a wiring taken over from an ncps module keeps the
    matrices themselves. Built on construction for ``S`` inputs; it has no generator
    arguments (no fan-outs, no seed).

    Args:
        inter_neurons: Inter neurons I.
        command_neurons: Command neurons C.
        motor_neurons: Motor neurons M.
        adjacency_matrix: Signed internal synapses (N, N), ``[src, dst]``, in ncps id
            order (motor, command, inter); only inter -> command, command -> command and
            command -> motor synapses are allowed.
        sensory_adjacency_matrix: Signed sensory synapses (S, N) in ncps id order, onto
            inter neurons only.
    """

    kind = "MatrixNCP"

    def __init__(
        self,
        inter_neurons: int,
        command_neurons: int,
        motor_neurons: int,
        adjacency_matrix: Any,
        sensory_adjacency_matrix: Any,
    ) -> None:
        for name, value in (
            ("inter_neurons", inter_neurons),
            ("command_neurons", command_neurons),
            ("motor_neurons", motor_neurons),
        ):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise WiringError(f"{name} must be an integer >= 1, got {value!r}")
        self.inter_neurons = int(inter_neurons)
        self.command_neurons = int(command_neurons)
        self.motor_neurons = int(motor_neurons)
        adj, sens = np.asarray(adjacency_matrix), np.asarray(sensory_adjacency_matrix)
        n = self.units
        if adj.shape != (n, n) or sens.ndim != 2 or sens.shape[0] < 1 or sens.shape[1] != n:
            raise WiringError(
                f"matrices must be (N, N) and (S, N) with N={n}, got {adj.shape} and {sens.shape}"
            )
        if not (np.isin(adj, (-1, 0, 1)).all() and np.isin(sens, (-1, 0, 1)).all()):
            raise WiringError("synapse polarities must be -1, 0 or +1")
        m, c = self.motor_neurons, self.command_neurons
        allowed = np.zeros((n, n), dtype=bool)  # ncps ids: motor 0..M-1, command, inter
        allowed[m + c :, m : m + c] = True  # inter -> command
        allowed[m : m + c, : m + c] = True  # command -> command and command -> motor
        for what, matrix, ok in (
            ("internal", adj, allowed),
            ("sensory", sens, np.arange(n)[None, :] >= m + c),  # onto inter neurons only
        ):
            bad = np.argwhere((matrix != 0) & ~ok)
            if len(bad):
                raise WiringError(
                    f"{what} synapse {tuple(int(i) for i in bad[0])} (ncps ids) does not go "
                    "sensory -> inter -> command -> motor (or command -> command)"
                )
        self.input_dim = int(sens.shape[0])
        self._adjacency = adj.astype(np.int32)
        self._sensory = sens.astype(np.int32)

    def config(self) -> dict[str, Any]:
        """Layer sizes (the matrices travel in ``to_dict`` beside them)."""
        return {
            "inter_neurons": self.inter_neurons,
            "command_neurons": self.command_neurons,
            "motor_neurons": self.motor_neurons,
        }


def wiring_from_dict(data: dict[str, Any]) -> NCP:
    """Rebuild an ``NCP`` or any subclass (``AutoNCP``, ``MatrixNCP`` ...) from ``to_dict`` output.

    Raises:
        WiringError: Unknown kind, bad arguments, or stored matrices that differ from the
            ones the arguments generate.
    """
    kinds = {"NCP": NCP, **_KINDS}  # AutoNCP, MatrixNCP, driving.model.wiring_variants
    if not isinstance(data, dict) or data.get("kind") not in kinds:
        kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise WiringError(f"unknown wiring kind {kind!r}; expected one of {sorted(kinds)}")
    if data["kind"] == "MatrixNCP":  # the matrices are the definition
        try:
            return MatrixNCP(
                **data["args"],
                adjacency_matrix=data["adjacency_matrix"],
                sensory_adjacency_matrix=data["sensory_adjacency_matrix"],
            )
        except (TypeError, KeyError) as e:
            raise WiringError(f"bad MatrixNCP description: {e}") from e
    try:
        wiring = kinds[data["kind"]](**data["args"])
    except TypeError as e:
        raise WiringError(f"bad {data['kind']} arguments {data.get('args')!r}: {e}") from e
    if data.get("input_dim") is not None:
        wiring.build(data["input_dim"])
        for key in ("adjacency_matrix", "sensory_adjacency_matrix"):
            if key in data and not np.array_equal(np.asarray(data[key]), getattr(wiring, key)):
                raise WiringError(
                    f"stored {key} differs from the one {wiring!r} generates; the wiring "
                    "description is corrupt or comes from another generator"
                )
    return wiring


def default_steering_wiring(input_dim: int = DEFAULT_STEERING_INPUTS) -> NCP:
    """The built default steering core: ``NCP(**DEFAULT_STEERING_NCP)`` on ``input_dim`` inputs.

    19 neurons (12 inter, 6 command, 1 motor); on 32 inputs 252 synapses.
    """
    return NCP(**DEFAULT_STEERING_NCP).build(input_dim)

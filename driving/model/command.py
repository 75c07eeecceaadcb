"""How the route's high-level command (``sim.spec.Command``) enters a steering policy.

``PolicyConfig.command_input`` picks one of three designs:

* ``"none"``: the policy does not see the command (every model before route commands).
* ``"embed"``: a learned embedding, one vector of F per command (4 x F), is added to the conv
  head's F features before the core, on every step (:class:`CommandEmbedding`). It works for
  every core. The embedding starts at zero, so an untrained ``embed`` policy computes what
  the same weights compute without commands.
* ``"branch"``: CIL's conditional branches. The core's output has one head per command and
  the command selects which one steers (:class:`BranchReadout`). A wired core (the NCPs) gets
  one motor neuron per command (4), so its 19-neuron budget becomes 10 inter + 5 command +
  4 motor neurons; every other core gets a Linear(M -> 4) readout.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor, nn

from liquid_drive.errors import LiquidDriveError
from sim.spec import COMMAND, Command, ContractError, parse_command

CommandInput = Literal["none", "embed", "branch"]
COMMAND_INPUTS: tuple[str, ...] = get_args(CommandInput)
NUM_COMMANDS = len(Command)
"""4 commands: follow_lane, left, right, straight."""


class CommandInputError(LiquidDriveError, ValueError):
    """A command a policy cannot use: missing, of the wrong shape or not a ``Command`` value."""


def check_commands(command: Tensor | None, shape: tuple[int, ...], design: str) -> Tensor | None:
    """The commands a policy of ``design`` needs, checked: int64 of ``shape``.

    Values are checked where they enter (the reader, :func:`observed_command`); an index
    outside 0..3 would also fail in the embedding or the branch selection.

    Returns:
        ``command`` (None for design ``"none"``, which ignores commands).

    Raises:
        CommandInputError: If a command-aware design gets none, or a bad shape or dtype.
    """
    if design == "none":
        return None
    if command is None:
        raise CommandInputError(
            f"a command_input={design!r} policy needs the route commands, int64 {shape}"
        )
    if tuple(command.shape) != tuple(shape) or command.dtype != torch.int64:
        raise CommandInputError(
            f"commands must be int64 {tuple(shape)}, got {command.dtype} {tuple(command.shape)}"
        )
    return command


def observed_command(obs: dict[str, Any]) -> int:
    """The command of a raw simulator observation (``obs["command"]``), as an int.

    Raises:
        CommandInputError: If the observation has none or an unknown value.
    """
    if COMMAND not in obs:
        raise CommandInputError(
            f"the policy takes the route command but the observation has no {COMMAND!r} "
            f"(keys {sorted(obs)})"
        )
    try:
        return int(parse_command(obs[COMMAND]))
    except ContractError as e:
        raise CommandInputError(f"obs[{COMMAND!r}]: {e}") from e


class CommandEmbedding(nn.Module):
    """``embed``: features + E[command], a learned (4, F) table that starts at zero.

    Args:
        num_features: F, the conv head's features.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.table = nn.Embedding(NUM_COMMANDS, num_features)
        nn.init.zeros_(self.table.weight)

    def forward(self, features: Tensor, command: Tensor) -> Tensor:
        """Features (..., F) float, command (...) int64 -> (..., F)."""
        return features + self.table(command).to(features)


class BranchReadout(nn.Module):
    """``branch``: one output head per command; the command picks the head that steers.

    With one core output per command (the NCPs' 4 motor neurons) each head is that output's
    own gain and bias, starting as the identity (as the single-motor readout does); otherwise
    a Linear(M -> 4) gives the 4 heads.

    Args:
        outputs: M, the core's outputs.
        per_output: Heads are the outputs themselves (M must be 4).
    """

    def __init__(self, outputs: int, per_output: bool) -> None:
        super().__init__()
        if per_output and outputs != NUM_COMMANDS:
            raise ValueError(f"per-output branches need {NUM_COMMANDS} outputs, got {outputs}")
        self.per_output = per_output
        if per_output:
            self.weight = nn.Parameter(torch.ones(NUM_COMMANDS))
            self.bias = nn.Parameter(torch.zeros(NUM_COMMANDS))
        else:
            self.heads = nn.Linear(outputs, NUM_COMMANDS)

    def branches(self, y: Tensor) -> Tensor:
        """Every head's output: core outputs (..., M) -> (..., 4)."""
        return y * self.weight + self.bias if self.per_output else self.heads(y)

    def forward(self, y: Tensor, command: Tensor) -> Tensor:
        """Core outputs (..., M), command (...) int64 -> the commanded head's output (...)."""
        return self.branches(y).gather(-1, command.unsqueeze(-1)).squeeze(-1)


def command_array(command: int) -> np.ndarray:
    """A command as the exported graph's input: int64 (1,)."""
    return np.array([command], dtype=np.int64)

"""Refusing checkpoints without a command input on routes with junctions, before any episode.

In a junction town (``TownWeatherSplit.junction_train_towns`` / ``junction_unseen_towns``) each
junction of the route has a command (``sim.spec.Command``) saying which branch to take; a
policy without a command input (``PolicyConfig.command_input`` ``"none"``, and every checkpoint
saved before the field existed) sees only the camera, so it can only guess the branch.
Evaluation refuses such a checkpoint on such towns rather than report its guesses; the
lane-keeping towns stay open to every checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from driving.model.command import CommandInputError
from sim.spec import TownWeatherSplit

NO_COMMAND_INPUT = "none"
"""``command_input`` of a policy that does not see the route's command."""


def command_input(policy_config: Any) -> str:
    """The command input of a policy config (``"none"`` when the config predates it)."""
    return str(getattr(policy_config, "command_input", NO_COMMAND_INPUT))


def junction_towns(split: TownWeatherSplit) -> tuple[str, ...]:
    """The towns of a split whose routes carry junction commands."""
    return (*split.junction_train_towns, *split.junction_unseen_towns)


def check_command_inputs(
    checkpoints: Iterable[tuple[Path | str, Any]],
    towns: Iterable[str],
    split: TownWeatherSplit,
    suite: str,
) -> None:
    """Refuses any checkpoint without a command input when some town has junctions.

    Args:
        checkpoints: ``(checkpoint folder, its policy config)`` per checkpoint to drive.
        towns: The towns the evaluation drives.
        split: The simulator's split, which names its junction towns.
        suite: The suite's name, for the message.

    Raises:
        CommandInputError: Naming the checkpoint, the junction towns and how to fix it.
    """
    junctions = set(junction_towns(split))
    chosen = [t for t in dict.fromkeys(towns) if t in junctions]
    if not chosen:
        return
    for folder, config in checkpoints:
        if command_input(config) == NO_COMMAND_INPUT:
            raise CommandInputError(
                f"{folder}: its policy has no command input (command_input "
                f"{NO_COMMAND_INPUT!r}), but suite {suite!r} drives the junction towns "
                f"{', '.join(chosen)}, where the route's command at each junction says which "
                "branch to take; train a model that reads it (tools/train.py "
                "--model.command-input embed), or evaluate this checkpoint on a lane-keeping "
                "suite (train-towns, unseen-towns, all, ...)"
            )

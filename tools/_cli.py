"""What every command line shares: parse a typed config, call the library, map errors to exit 2.

A tool is ``sys.exit(run(Config, function, description=__doc__))``: tyro turns the frozen
dataclass into the command line (``--help`` lists every field with its docstring), the
library function does the work, and any project error (``LiquidDriveError``) becomes
``error: <message>`` on stderr with exit status 2, never a traceback. Ctrl-C exits with 130.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import tyro

from liquid_drive.errors import LiquidDriveError

ConfigT = TypeVar("ConfigT")

EXIT_ERROR = 2
"""Exit status for a bad request or bad input (the message says what was wrong)."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT)."""


def run(
    config_type: type[ConfigT],
    function: Callable[[ConfigT], Any],
    *,
    description: str | None = None,
    show: Callable[[Any], str | None] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Runs one tool and returns its exit status.

    Args:
        config_type: The tool's frozen dataclass config.
        function: The library function taking the config.
        description: The ``--help`` text (the tool's module docstring).
        show: Turns the function's result into the text printed on stdout (None prints
            nothing).
        argv: Command-line arguments (default ``sys.argv[1:]``).

    Returns:
        0 on success, :data:`EXIT_ERROR` for a project error, :data:`EXIT_INTERRUPTED` after
        Ctrl-C.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        cfg = tyro.cli(config_type, args=argv, description=description)
        result = function(cfg)
    except LiquidDriveError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    text = show(result) if show is not None else None
    if text:
        print(text)
    return 0

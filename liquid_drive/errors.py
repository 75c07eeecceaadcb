"""The base error of the project.

Every error the project raises on purpose (a bad option, a corrupt file, a broken contract)
derives from :class:`LiquidDriveError`, usually together with the builtin it refines
(``class CheckpointError(LiquidDriveError, ValueError)``), so that callers can keep catching
``ValueError`` while the command-line tools catch one type, print its message and exit with
status 2. Tools match on this type, never on class-name strings.
"""

from __future__ import annotations


class LiquidDriveError(Exception):
    """Base class of every error the project raises on purpose; its message names the cause."""

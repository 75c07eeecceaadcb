"""The errors of recorded data; each names the file it is about.

Every one is an :class:`EpisodeFormatError`, a ``ValueError`` and a project error
(:class:`liquid_drive.errors.LiquidDriveError`), so tools print its message and exit 2.
"""

from __future__ import annotations

from pathlib import Path

from liquid_drive.errors import LiquidDriveError


class EpisodeFormatError(LiquidDriveError, ValueError):
    """A dataset or episode on disk that does not follow the format (names the file)."""


class NotADatasetError(EpisodeFormatError):
    """A folder that is not an episode dataset (no readable ``meta/info.json``)."""


class DatasetMismatchError(EpisodeFormatError):
    """A dataset whose format, camera or control rate differs from what the caller needs."""


class PartialEpisodeError(EpisodeFormatError):
    """An unfinished ``episode_N.partial`` folder was asked for."""


class LiveEpisodeError(PartialEpisodeError):
    """An ``episode_N.partial`` folder that a live process is still writing (its lock is held)."""


class InvalidDataError(EpisodeFormatError):
    """A value that breaks the format's rules or physical bounds, with where it was found.

    Attributes:
        path: The file (or folder) holding the value.
        field: The column or JSON key, or None.
        row: The 0-based step (row of ``steps.csv``), or None.
    """

    def __init__(
        self, path: Path | str, problem: str, field: str | None = None, row: int | None = None
    ) -> None:
        self.path, self.field, self.row = Path(path), field, row
        where = "".join(
            [
                f" line {row + 2} (step {row})" if row is not None else "",
                f" {field!r}" if field is not None else "",
            ]
        )
        super().__init__(f"{path}:{where}: {problem}" if where else f"{path}: {problem}")

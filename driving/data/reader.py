"""Reading finished episodes: ``steps.csv`` parsed and checked, frames decoded on demand.

Readers never look at ``.partial`` folders (see :mod:`driving.data.salvage`). Every bad input
is an :class:`~driving.data.errors.EpisodeFormatError` naming the file.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from driving.data.errors import (
    DatasetMismatchError,
    EpisodeFormatError,
    InvalidDataError,
    PartialEpisodeError,
)
from driving.data.format import (
    COLUMNS,
    COMMAND,
    COMMAND_VALUES,
    DTYPES,
    EPISODE_FILE,
    EPISODE_NAME_RE,
    FRAME_INDEX,
    FRAMES_DIR,
    JUNCTION,
    NUMPY_DTYPES,
    PARTIAL_NAME_RE,
    STEPS_FILE,
    T_S,
    V1_DEFAULTS,
    DatasetInfo,
    frame_name,
    list_episodes,
    read_info,
    read_json,
    required_columns,
)
from driving.data.frames import decode_frame
from driving.data.views import check_views, view_dir
from sim.spec import COMMAND_NAMES

logger = logging.getLogger(__name__)

SALVAGE_COMMAND = "python tools/inspect_dataset.py {root} --salvage"
"""What to run to finalise interrupted episodes (named in error messages)."""


def parse_steps(path: Path, required: Sequence[str]) -> tuple[list[str], np.ndarray, int]:
    """Reads ``steps.csv``: (header, float64 (N, C) values, number of complete rows).

    Raises EpisodeFormatError on a malformed file; a truncated last line is reported too.
    """
    if not path.is_file():
        raise EpisodeFormatError(f"{path}: missing")
    try:
        with open(path, newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise EpisodeFormatError(f"{path}: not readable ({e})") from e
    if not text:
        raise EpisodeFormatError(f"{path}: empty (no header)")
    lines = text.split("\n")
    header = lines[0].split(",")
    missing = [c for c in required if c not in header]
    if missing:
        raise EpisodeFormatError(f"{path}: header lacks columns {missing}")
    if len(set(header)) != len(header):
        raise EpisodeFormatError(f"{path}: duplicate column names in the header")
    if lines[-1] != "":
        raise EpisodeFormatError(f"{path}: truncated, the last line ({len(lines)}) has no line end")
    body = lines[1:-1]
    values = np.empty((len(body), len(header)), dtype=np.float64)
    for i, line in enumerate(csv.reader(body)):
        if len(line) != len(header):
            raise EpisodeFormatError(
                f"{path}: line {i + 2} has {len(line)} fields, the header has {len(header)}"
            )
        try:
            values[i] = [float(v) for v in line]
        except ValueError as e:
            raise EpisodeFormatError(f"{path}: line {i + 2}: {e}") from e
    if not np.all(np.isfinite(values)):
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise EpisodeFormatError(f"{path}: line {row + 2} column {header[col]!r} is not finite")
    return header, values, len(body)


def _typed_column(path: Path, name: str, values: np.ndarray) -> np.ndarray:
    """One column in its dtype; an int column must hold integers and a flag only 0 or 1."""
    dtype = DTYPES.get(name, "float")
    if dtype == "int":
        bad = np.flatnonzero(values != np.round(values))
        if bad.size:
            i = int(bad[0])
            raise InvalidDataError(path, f"{float(values[i])!r} is not an integer", name, i)
    elif dtype == "bool":
        bad = np.flatnonzero((values != 0) & (values != 1))
        if bad.size:
            i = int(bad[0])
            raise InvalidDataError(path, f"flag is {float(values[i])!r}, not 0 or 1", name, i)
    return values.astype(NUMPY_DTYPES[dtype])


_migrated: set[Path] = set()
"""Datasets whose version-1 episodes were migrated on read (logged once per dataset)."""


def _route_columns(
    path: Path, meta: dict[str, Any], columns: dict[str, np.ndarray], n: int
) -> None:
    """Fills in the route-command columns a version-1 episode lacks, then checks them."""
    missing = [name for name in V1_DEFAULTS if name not in columns]  # version 1 only
    for name in missing:
        columns[name] = np.full(n, V1_DEFAULTS[name], dtype=NUMPY_DTYPES[DTYPES[name]])
    root = path.parent.parent
    if missing and root not in _migrated:
        _migrated.add(root)
        logger.info(
            "%s: format version 1 episodes (no route commands) read as command follow_lane, "
            "junction -1",
            root,
        )
    steps = path / STEPS_FILE
    bad = np.flatnonzero(~np.isin(columns[COMMAND], COMMAND_VALUES))
    if bad.size:
        i = int(bad[0])
        valid = ", ".join(
            f"{c} {name}" for c, name in zip(COMMAND_VALUES, COMMAND_NAMES, strict=True)
        )
        raise InvalidDataError(
            steps, f"unknown command {int(columns[COMMAND][i])} (valid: {valid})", COMMAND, i
        )
    bad = np.flatnonzero(columns[JUNCTION] < -1)
    if bad.size:
        i = int(bad[0])
        raise InvalidDataError(
            steps, f"junction {int(columns[JUNCTION][i])} is below -1 (none)", JUNCTION, i
        )


@dataclass
class Episode:
    """A finished episode: its per-step columns in memory, its frames decoded on demand."""

    path: Path
    """The episode folder."""
    index: int
    """Episode id (N of ``episode_N``)."""
    meta: dict[str, Any]
    """The content of ``episode.json``."""
    columns: dict[str, np.ndarray]
    """Per-step columns, each (N,) with the dtype from the column table."""
    units: dict[str, str]
    """Unit of every column."""
    image_shape: tuple[int, int, int]
    """(H, W, 3) of every frame."""
    views: int = 0
    """Recovery views K besides the car's own camera (view 0; :mod:`driving.data.views`)."""

    def __len__(self) -> int:
        return int(self.columns[T_S].shape[0])

    @property
    def town(self) -> str:
        """Town name from ``episode.json`` (``"?"`` if absent)."""
        return str(self.meta.get("town", "?"))

    @property
    def weather(self) -> str:
        """Weather name from ``episode.json`` (``"?"`` if absent)."""
        return str(self.meta.get("weather", "?"))

    def frame_path(self, i: int) -> Path:
        """Path of frame ``i``."""
        return self.path / FRAMES_DIR / frame_name(i)

    def frame(self, i: int) -> np.ndarray:
        """Decodes frame ``i``: uint8 (H, W, 3) RGB.

        Raises:
            EpisodeFormatError: If the JPEG is missing, corrupt or has the wrong size.
        """
        return decode_frame(self.frame_path(i), self.image_shape)

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Decodes frames ``start..stop-1``: uint8 (stop - start, H, W, 3) RGB."""
        out = np.empty((stop - start, *self.image_shape), dtype=np.uint8)
        for k, i in enumerate(range(start, stop)):
            out[k] = self.frame(i)
        return out

    def view_frame_path(self, view: int, i: int) -> Path:
        """Path of frame ``i`` of view ``view`` (0 = the car's camera, 1..K recovery views)."""
        if not 0 <= view <= self.views:
            raise IndexError(f"{self.path}: no view {view} (it has recovery views 1..{self.views})")
        return view_dir(self.path, view) / frame_name(i)

    def view_frames(self, view: int, start: int, stop: int) -> np.ndarray:
        """Decodes frames ``start..stop-1`` of view ``view``: uint8 (stop - start, H, W, 3)."""
        if view == 0:
            return self.frames(start, stop)
        out = np.empty((stop - start, *self.image_shape), dtype=np.uint8)
        for k, i in enumerate(range(start, stop)):
            out[k] = decode_frame(self.view_frame_path(view, i), self.image_shape)
        return out


def read_episode(
    path: Path | str, info: DatasetInfo | None = None, check_frames: bool = False
) -> Episode:
    """Reads one finished episode folder.

    Args:
        path: ``<dataset>/episodes/episode_N``.
        info: The dataset's info (read from ``<dataset>/meta/info.json`` if omitted).
        check_frames: Decode every frame (slow); otherwise frame 0 and the last frame are
            decoded and the others only checked to exist.

    Returns:
        The :class:`Episode`.

    Raises:
        PartialEpisodeError: For an ``episode_N.partial`` folder.
        EpisodeFormatError: For a missing or malformed ``episode.json`` or ``steps.csv``, row
            and frame counts that differ, or a missing, corrupt or wrongly sized frame.
    """
    path = Path(path)
    if PARTIAL_NAME_RE.match(path.name):
        raise PartialEpisodeError(
            f"{path}: unfinished episode; finalise it with "
            f"`{SALVAGE_COMMAND.format(root=path.parent.parent)}` or delete it"
        )
    m = EPISODE_NAME_RE.match(path.name)
    if not m or not path.is_dir():
        raise EpisodeFormatError(f"{path}: not an episode folder (episode_NNNNNN)")
    if info is None:
        info = read_info(path.parent.parent)
    meta = read_json(path / EPISODE_FILE)
    extra = meta.get("extra_columns", {})
    if not isinstance(extra, dict):
        raise EpisodeFormatError(f"{path / EPISODE_FILE}: 'extra_columns' must be an object")
    header, values, n = parse_steps(path / STEPS_FILE, required_columns(meta))
    undeclared = [c for c in header if c not in DTYPES and c not in extra]
    if undeclared:
        raise EpisodeFormatError(
            f"{path / STEPS_FILE}: columns {undeclared} are not declared in {EPISODE_FILE}"
        )
    num_steps = meta.get("num_steps")
    if num_steps != n or isinstance(num_steps, bool):
        raise EpisodeFormatError(
            f"{path}: {STEPS_FILE} has {n} rows but {EPISODE_FILE} says num_steps={num_steps!r}"
        )
    if n == 0:
        raise EpisodeFormatError(f"{path / STEPS_FILE}: no rows")
    columns = {
        name: _typed_column(path / STEPS_FILE, name, values[:, j]) for j, name in enumerate(header)
    }
    _route_columns(path, meta, columns, n)
    if not np.array_equal(columns[FRAME_INDEX], np.arange(n)):
        raise EpisodeFormatError(f"{path / STEPS_FILE}: frame_index is not 0..{n - 1}")
    frames_dir = path / FRAMES_DIR
    names = sorted(os.listdir(frames_dir)) if frames_dir.is_dir() else []
    expected = [frame_name(i) for i in range(n)]
    if names != expected:
        missing = sorted(set(expected) - set(names))
        extra_files = sorted(set(names) - set(expected))
        raise EpisodeFormatError(
            f"{frames_dir}: {len(names)} frames for {n} rows in {STEPS_FILE}"
            + (f"; missing {missing[:3]}" if missing else "")
            + (f"; unexpected {extra_files[:3]}" if extra_files else "")
        )
    views = check_views(path, meta, header, n)
    units = {c.name: c.unit for c in COLUMNS} | {k: str(v) for k, v in extra.items()}
    episode = Episode(path, int(m.group(1)), meta, columns, units, info.image_shape, views)
    for i in range(n) if check_frames else {0, n - 1}:
        for view in range(views + 1):
            decode_frame(episode.view_frame_path(view, i), info.image_shape)
    return episode


def iter_episodes(
    root: Path | str, skip_bad: bool = False, check_frames: bool = False
) -> Iterator[Episode]:
    """Reads every finished episode of a dataset in id order.

    Args:
        root: The dataset folder.
        skip_bad: Log a warning and skip an unreadable episode instead of raising.
        check_frames: Decode every frame (see :func:`read_episode`).

    Raises:
        NotADatasetError: If ``root`` is not a dataset.
        EpisodeFormatError: For a bad episode, unless ``skip_bad``.
    """
    info = read_info(root)
    for path in list_episodes(root):
        try:
            yield read_episode(path, info, check_frames=check_frames)
        except EpisodeFormatError as e:
            if not skip_bad:
                raise
            logger.warning("skipping episode: %s", e)


def check_same_camera(roots: Sequence[Path | str]) -> list[DatasetInfo]:
    """The infos of ``roots``, whose frames must all have one shape.

    Raises:
        DatasetMismatchError: If the datasets' cameras differ.
    """
    infos: list[DatasetInfo] = []
    for root in roots:
        info = read_info(root)
        if infos and info.image_shape != infos[0].image_shape:
            raise DatasetMismatchError(
                f"{root}: frames are {info.image_shape}, other datasets have {infos[0].image_shape}"
            )
        infos.append(info)
    return infos


def load_episodes(
    roots: Path | str | Sequence[Path | str], skip_bad: bool = False
) -> list[Episode]:
    """Reads every finished episode of one or more datasets with the same camera.

    Raises:
        DatasetMismatchError: If the datasets' cameras differ.
    """
    if isinstance(roots, (str, Path)):
        roots = [roots]
    check_same_camera(roots)
    return [e for root in roots for e in iter_episodes(root, skip_bad=skip_bad)]

"""The episode dataset format: names, columns with units, errors, ``meta/info.json``, listing.

Layout (``shared/DESIGN.md`` "Episode dataset format")::

    <dataset>/meta/info.json                 format name + version, sim, camera, control rate,
                                             the columns with units and dtypes
    <dataset>/episodes/episode_000042/
        frames/000000.jpg ...                RGB frames (JPEG, see :mod:`driving.data.frames`)
        steps.csv                            one row per step, the header names the columns
        episode.json                         town, weather, seed, target speed, noise settings,
                                             outcome, number of steps, extra columns with units
    <dataset>/episodes/episode_000043.partial/   being written or interrupted: never read

Row ``i`` of ``steps.csv`` describes control step ``i``: what the car saw (frame ``i``, time,
speed, privileged ground truth at that moment) and what was done (the driver's command, the
label, the curvature the car executed during the step, events during the step).

Version 2 added the route-command columns ``command`` (a ``sim.spec.Command`` value) and
``junction`` (the index in ``episode.json``'s ``route_commands`` of the junction whose command
is active, -1 none); ``episode.json`` records its ``format_version``. A version-1 dataset reads
as command follow-lane, junction -1 (:data:`V1_DEFAULTS`, logged once per dataset); appending
to one upgrades its ``meta/info.json`` to version 2 atomically (:func:`upgrade_info`: the old
episodes are kept as they are and still read), and an :class:`~driving.data.writer.EpisodeWriter`
refuses a version-1 dataset that was not opened that way.

Every bad input is an :class:`~driving.data.errors.EpisodeFormatError` (a ``ValueError``)
naming the file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from driving.data.atomic import write_json_atomic
from driving.data.errors import (
    DatasetMismatchError,
    EpisodeFormatError,
    InvalidDataError,
    NotADatasetError,
)
from sim.spec import Command

logger = logging.getLogger(__name__)

FORMAT_NAME = "liquid-drive-episodes"
FORMAT_VERSION = 2
"""Version 2 added the route-command columns :data:`COMMAND` and :data:`JUNCTION`."""
READABLE_VERSIONS = (1, 2)
"""Dataset versions this code reads; version 1 is migrated on read (:data:`V1_DEFAULTS`)."""

INFO_PATH = Path("meta") / "info.json"
EPISODES_DIR = "episodes"
FRAMES_DIR = "frames"
STEPS_FILE = "steps.csv"
EPISODE_FILE = "episode.json"
PARTIAL_SUFFIX = ".partial"
EPISODE_NAME_RE = re.compile(r"^episode_(\d{6,})$")
PARTIAL_NAME_RE = re.compile(r"^episode_(\d{6,})\.partial$")

# ---------------------------------------------------------------------------------------------
# Column names (the ``steps.csv`` header). Units and dtypes live in COLUMNS below.
FRAME_INDEX = "frame_index"
T_S = "t_s"
SPEED_MPS = "speed_mps"
CURVATURE_APPLIED = "curvature_applied"
CURVATURE_EXPERT = "curvature_expert"
ROAD_CURVATURE = "road_curvature"
LATERAL_OFFSET_M = "lateral_offset_m"
HEADING_ERROR_RAD = "heading_error_rad"
LANE_HALF_WIDTH_M = "lane_half_width_m"
X_M = "x_m"
Y_M = "y_m"
YAW_RAD = "yaw_rad"
PROGRESS_M = "progress_m"
NOISE_ACTIVE = "noise_active"
INTERVENTION = "intervention"
COLLISION = "collision"
# Rollout-only columns (evaluation): the learned policy's command and its neuron states.
CURVATURE_PRED = "curvature_pred"
NEURON_PREFIX = "neuron_"
# Recorded with a learned driver (DAgger, driving/rollout/dagger.py): 1 = the policy's command
# was applied this step, 0 = the expert's. A dataset without it was driven by the expert.
POLICY_DROVE = "policy_drove"
# The route's high-level command on each observation (a sim.spec.Command value) and the index of
# the route junction whose command is active (-1 = none), both since format version 2.
COMMAND = "command"
JUNCTION = "junction"
COMMAND_VALUES: tuple[int, ...] = tuple(int(c) for c in Command)
"""The valid values of the :data:`COMMAND` column (``sim.spec.Command``)."""
V1_DEFAULTS: dict[str, int] = {COMMAND: int(Command.FOLLOW_LANE), JUNCTION: -1}
"""What a version-1 episode (recorded before routes had junctions) reads as in the columns it
lacks: every step follow-lane, no junction."""


@dataclass(frozen=True)
class Column:
    """One per-step column of ``steps.csv``."""

    name: str
    """Header name."""
    unit: str
    """SI unit (``"1"`` for dimensionless, ``"bool"`` for flags stored as 0/1)."""
    dtype: str
    """``"float"``, ``"int"`` or ``"bool"``: the numpy dtype the reader returns."""
    description: str
    """What the value means."""

    def to_dict(self) -> dict[str, str]:
        """Plain-JSON form stored in ``meta/info.json``."""
        return {
            "name": self.name,
            "unit": self.unit,
            "dtype": self.dtype,
            "description": self.description,
        }


COLUMNS: tuple[Column, ...] = (
    Column(FRAME_INDEX, "1", "int", "step index = frame file number (frames/%06d.jpg)"),
    Column(T_S, "s", "float", "simulation time of the observation"),
    Column(SPEED_MPS, "m/s", "float", "forward speed"),
    Column(CURVATURE_APPLIED, "1/m", "float", "curvature the car executed (after noise, clip)"),
    Column(CURVATURE_EXPERT, "1/m", "float", "the label: the expert's clean curvature command"),
    Column(ROAD_CURVATURE, "1/m", "float", "curvature of the lane centre, + = bends left"),
    Column(LATERAL_OFFSET_M, "m", "float", "offset from the lane centre, + = left"),
    Column(HEADING_ERROR_RAD, "rad", "float", "vehicle yaw minus lane heading, + = left"),
    Column(LANE_HALF_WIDTH_M, "m", "float", "half the width of the current lane"),
    Column(X_M, "m", "float", "world x of the rear axle centre"),
    Column(Y_M, "m", "float", "world y of the rear axle centre"),
    Column(YAW_RAD, "rad", "float", "world yaw, counter-clockwise positive"),
    Column(PROGRESS_M, "m", "float", "route arc length driven since the episode start"),
    Column(NOISE_ACTIVE, "bool", "bool", "injected steering noise active during the step"),
    Column(INTERVENTION, "bool", "bool", "lane departure counted and car reset this step"),
    Column(COLLISION, "bool", "bool", "collision during the step"),
    Column(
        COMMAND,
        "1",
        "int",
        "route command on the observation: 0 follow_lane 1 left 2 right 3 straight",
    ),
    Column(
        JUNCTION, "1", "int", "index in episode.json route_commands of the active junction, -1 none"
    ),
)
"""The columns every episode has, in header order."""

BASE_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
DTYPES: dict[str, str] = {c.name: c.dtype for c in COLUMNS}
"""Dtype name of every base column (extra columns are ``"float"``)."""
NUMPY_DTYPES = {"float": np.float64, "int": np.int64, "bool": np.bool_}


def neuron_column(index: int) -> str:
    """Name of the column holding neuron ``index``'s state (the policy's state order)."""
    return f"{NEURON_PREFIX}{index:03d}"


def frame_name(index: int) -> str:
    """File name of frame ``index`` inside ``frames/`` (``000042.jpg``)."""
    return f"{index:06d}.jpg"


# ---------------------------------------------------------------------------------------------
# Dataset metadata


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class DatasetInfo:
    """What ``meta/info.json`` holds; two datasets may be merged only if these agree."""

    sim: str
    """Simulator that produced the data (``"builtin"`` or ``"carla"``)."""
    camera: dict[str, Any]
    """The camera spec (``sim.spec.CameraSpec.to_dict()``): width_px, height_px, hfov_deg ..."""
    control_rate_hz: float
    """Nominal control rate, Hz (actual timestamps are in the ``t_s`` column)."""
    jpeg_quality: int = 95
    """JPEG quality of the stored frames, 1-100."""
    format: str = FORMAT_NAME
    """Format name."""
    format_version: int = FORMAT_VERSION
    """Format version."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.control_rate_hz) and self.control_rate_hz > 0):
            raise ValueError(f"control_rate_hz must be positive, got {self.control_rate_hz}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        for key in ("width_px", "height_px"):
            v = self.camera.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"camera needs a positive integer {key}, got {self.camera!r}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, 3) of every frame."""
        return (int(self.camera["height_px"]), int(self.camera["width_px"]), 3)

    def to_dict(self) -> dict[str, Any]:
        """The full ``info.json`` content (adds the column table and file layout)."""
        return {
            "format": self.format,
            "format_version": self.format_version,
            "sim": self.sim,
            "control_rate_hz": self.control_rate_hz,
            "camera": dict(self.camera),
            "frames": {
                "path": f"{EPISODES_DIR}/episode_NNNNNN/{FRAMES_DIR}/%06d.jpg",
                "codec": "jpeg",
                "jpeg_quality": self.jpeg_quality,
                "channel_order": "RGB",
                "shape": list(self.image_shape),
            },
            "steps": f"{EPISODES_DIR}/episode_NNNNNN/{STEPS_FILE}",
            "columns": [c.to_dict() for c in COLUMNS],
            "extra_columns": "per episode, with units, in episode.json 'extra_columns'",
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: Path | str = INFO_PATH) -> DatasetInfo:
        """Parses ``info.json`` content; a missing or wrong field is an error naming ``path``."""
        if d.get("format") != FORMAT_NAME:
            raise NotADatasetError(
                f"{path}: format is {d.get('format')!r}, expected {FORMAT_NAME!r}"
            )
        try:
            frames = d["frames"]
            typed = {
                "sim": (d["sim"], isinstance(d["sim"], str)),
                "camera": (d["camera"], isinstance(d["camera"], dict)),
                "control_rate_hz": (d["control_rate_hz"], _is_number(d["control_rate_hz"])),
                "frames.jpeg_quality": (frames["jpeg_quality"], _is_number(frames["jpeg_quality"])),
                "format_version": (d["format_version"], _is_number(d["format_version"])),
            }
            for key, (value, ok) in typed.items():
                if not ok:
                    raise InvalidDataError(path, f"wrong type {type(value).__name__}", key)
            return cls(
                sim=d["sim"],
                camera=dict(d["camera"]),
                control_rate_hz=float(d["control_rate_hz"]),
                jpeg_quality=int(frames["jpeg_quality"]),
                format=str(d["format"]),
                format_version=int(d["format_version"]),
            )
        except InvalidDataError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise EpisodeFormatError(f"{path}: malformed dataset info ({e!r})") from e


def read_json(path: Path) -> dict[str, Any]:
    """Reads a JSON object file; a missing, unreadable or non-object file is an error."""
    if not path.is_file():
        raise EpisodeFormatError(f"{path}: missing")
    try:
        with open(path) as f:
            content = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise EpisodeFormatError(f"{path}: not readable JSON ({e})") from e
    if not isinstance(content, dict):
        raise EpisodeFormatError(f"{path}: expected a JSON object, got {type(content).__name__}")
    return content


def read_info(root: Path | str) -> DatasetInfo:
    """Reads a dataset's ``meta/info.json``.

    Raises:
        NotADatasetError: If ``root`` is not a folder with a readable ``meta/info.json`` of this
            format.
    """
    root = Path(root)
    path = root / INFO_PATH
    if not root.is_dir():
        raise NotADatasetError(f"{root}: not a folder, so not an episode dataset")
    if not path.is_file():
        raise NotADatasetError(f"{root}: not an episode dataset (no {INFO_PATH})")
    try:
        content = read_json(path)
    except EpisodeFormatError as e:
        raise NotADatasetError(str(e)) from e
    info = DatasetInfo.from_dict(content, path)
    if info.format_version not in READABLE_VERSIONS:
        raise DatasetMismatchError(
            f"{path}: format version {info.format_version}, this code reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    return info


def episode_version(meta: Mapping[str, Any]) -> int:
    """The format version an episode was written in (``episode.json`` ``format_version``).

    Writers since version 2 record it; an episode without it is a version-1 episode.
    """
    version = meta.get("format_version", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else -1


def required_columns(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The base columns an episode's ``steps.csv`` must have, by its version.

    A version-1 episode lacks :data:`V1_DEFAULTS`' columns (the reader fills them in).
    """
    if episode_version(meta) == 1:
        return tuple(n for n in BASE_COLUMN_NAMES if n not in V1_DEFAULTS)
    return BASE_COLUMN_NAMES


def upgrade_info(root: Path | str, info: DatasetInfo) -> DatasetInfo:
    """Rewrites a version-1 dataset's ``meta/info.json`` as version 2 (atomically).

    Nothing is lost: the episodes stay as they are (each ``episode.json`` says its version and
    version-1 episodes read as :data:`V1_DEFAULTS`); only the column table and version change,
    and ``upgraded_from_version`` records where the dataset came from.
    """
    path = Path(root) / INFO_PATH
    content = read_json(path)
    upgraded = DatasetInfo(
        sim=info.sim,
        camera=info.camera,
        control_rate_hz=info.control_rate_hz,
        jpeg_quality=info.jpeg_quality,
    )
    merged = content | upgraded.to_dict() | {"upgraded_from_version": info.format_version}
    write_json_atomic(path, merged)
    logger.warning(
        "%s: upgraded the dataset from format version %d to %d to append episodes with route "
        "commands; its older episodes read as command follow_lane, junction -1",
        root,
        info.format_version,
        FORMAT_VERSION,
    )
    return upgraded


def create_or_open_dataset(root: Path | str, info: DatasetInfo) -> DatasetInfo:
    """Creates a dataset at ``root``, or opens an existing one for appending.

    Args:
        root: Dataset folder. Created if missing; may be an empty folder.
        info: What the new data will be (sim, camera, control rate, JPEG quality).

    Returns:
        The dataset's info (``info`` itself for a new dataset). An existing version-1 dataset
        is upgraded to the current version first (:func:`upgrade_info`).

    Raises:
        NotADatasetError: If ``root`` is a non-empty folder that is not a dataset.
        DatasetMismatchError: If the existing dataset has another format, sim, camera or
            control rate (the message names each difference).
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotADatasetError(f"{root}: exists and is not a folder")
    if (root / INFO_PATH).exists():
        existing = read_info(root)
        diffs = []
        if existing.sim != info.sim:
            diffs.append(f"sim {existing.sim!r} vs {info.sim!r}")
        if existing.camera != info.camera:
            diffs.append(f"camera {existing.camera} vs {info.camera}")
        if not math.isclose(existing.control_rate_hz, info.control_rate_hz, rel_tol=1e-9):
            diffs.append(f"control rate {existing.control_rate_hz} Hz vs {info.control_rate_hz} Hz")
        if diffs:
            raise DatasetMismatchError(
                f"{root}: refusing to append, the dataset differs: " + "; ".join(diffs)
            )
        if existing.format_version < FORMAT_VERSION:
            return upgrade_info(root, existing)
        return existing
    if root.is_dir() and any(root.iterdir()):
        raise NotADatasetError(
            f"{root}: refusing to write into a non-empty folder that is not an episode dataset"
        )
    (root / INFO_PATH.parent).mkdir(parents=True, exist_ok=True)
    (root / EPISODES_DIR).mkdir(exist_ok=True)
    write_json_atomic(root / INFO_PATH, info.to_dict())
    return info


# ---------------------------------------------------------------------------------------------
# Listing


def episode_index(name: str) -> int | None:
    """N of ``episode_N`` or ``episode_N.partial``; None for any other name."""
    m = EPISODE_NAME_RE.match(name) or PARTIAL_NAME_RE.match(name)
    return int(m.group(1)) if m else None


def episode_dir(root: Path | str, index: int, partial: bool = False) -> Path:
    """Folder of episode ``index`` (``episode_000042`` or ``episode_000042.partial``)."""
    name = f"episode_{index:06d}" + (PARTIAL_SUFFIX if partial else "")
    return Path(root) / EPISODES_DIR / name


def _list(root: Path | str, pattern: re.Pattern[str]) -> list[Path]:
    read_info(root)
    folder = Path(root) / EPISODES_DIR
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        if not pattern.match(p.name):
            continue
        if p.is_dir():
            found.append(p)
        else:  # a file, a dangling link or a link loop named like an episode
            logger.warning("%s: named like an episode but not a folder; ignored", p)
    return sorted(found, key=lambda p: int(pattern.match(p.name).group(1)))


def list_episodes(root: Path | str) -> list[Path]:
    """Finished episode folders of a dataset, sorted by index (``.partial`` ones excluded).

    Raises:
        NotADatasetError: If ``root`` is not a dataset.
    """
    return _list(root, EPISODE_NAME_RE)


def list_partial_episodes(root: Path | str) -> list[Path]:
    """Unfinished ``episode_N.partial`` folders of a dataset, sorted by index."""
    return _list(root, PARTIAL_NAME_RE)


def next_episode_index(root: Path | str) -> int:
    """The id a new episode would get: one above every existing id, ``.partial`` included."""
    folder = Path(root) / EPISODES_DIR
    names = os.listdir(folder) if folder.is_dir() else []
    ids = [i for i in (episode_index(n) for n in names) if i is not None]
    return max(ids, default=-1) + 1

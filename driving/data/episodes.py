"""The episode dataset format: one folder per episode, written step by step, crash-safe.

Layout (``shared/DESIGN.md`` "Episode dataset format")::

    <dataset>/meta/info.json                 format name + version, sim, camera, control rate,
                                             the columns with units and dtypes
    <dataset>/episodes/episode_000042/
        frames/000000.jpg ...                RGB frames (JPEG; decode with :meth:`Episode.frame`)
        steps.csv                            one row per step, the header names the columns
        episode.json                         town, weather, seed, target speed, noise settings,
                                             outcome, number of steps, extra columns with units
    <dataset>/episodes/episode_000043.partial/   being written or interrupted: never read

Row ``i`` of ``steps.csv`` describes control step ``i``: what the car saw (frame ``i``, time,
speed, privileged ground truth at that moment) and what was done (the driver's command, the
label, the curvature the car executed during the step, events during the step).

Crash safety: an :class:`EpisodeWriter` writes into ``episode_N.partial/``: the frame first,
then its CSV row, flushed every step, so a killed recorder leaves only complete rows plus at
most one unreferenced frame. :meth:`EpisodeWriter.finish` fsyncs every file and renames the
folder to ``episode_N``. Readers never look at ``.partial`` folders; :func:`salvage_episode`
finalises one from its complete rows.

Every bad input is an :class:`EpisodeFormatError` (a ``ValueError``) naming the file.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from liquid_drive.errors import LiquidDriveError

logger = logging.getLogger(__name__)

FORMAT_NAME = "liquid-drive-episodes"
FORMAT_VERSION = 1

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
)
"""The columns every episode has, in header order."""

BASE_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
_DTYPES = {c.name: c.dtype for c in COLUMNS}
_NUMPY_DTYPES = {"float": np.float64, "int": np.int64, "bool": np.bool_}


def neuron_column(index: int) -> str:
    """Name of the column holding neuron ``index``'s state (the policy's state order)."""
    return f"{NEURON_PREFIX}{index:03d}"


class EpisodeFormatError(LiquidDriveError, ValueError):
    """A dataset or episode on disk that does not follow the format (names the file)."""


class NotADatasetError(EpisodeFormatError):
    """A folder that is not an episode dataset (no readable ``meta/info.json``)."""


class DatasetMismatchError(EpisodeFormatError):
    """A dataset whose format, camera or control rate differs from what the caller needs."""


class PartialEpisodeError(EpisodeFormatError):
    """An unfinished ``episode_N.partial`` folder was asked for."""


# ---------------------------------------------------------------------------------------------
# Dataset metadata


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
            if not isinstance(self.camera.get(key), int) or self.camera[key] <= 0:
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
            return cls(
                sim=str(d["sim"]),
                camera=dict(d["camera"]),
                control_rate_hz=float(d["control_rate_hz"]),
                jpeg_quality=int(d["frames"]["jpeg_quality"]),
                format=str(d["format"]),
                format_version=int(d["format_version"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise EpisodeFormatError(f"{path}: malformed dataset info ({e!r})") from e


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _BackgroundSync:
    """Fsyncs files on a helper thread while the recorder goes on (fsync releases the GIL)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="episode-fsync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (path := self._queue.get()) is not None:
            try:
                _fsync_path(path)
            except OSError as e:
                self._error = e

    def submit(self, path: Path) -> None:
        """Queues ``path`` for fsync."""
        self._queue.put(path)

    def drain(self) -> None:
        """Waits until every queued file is synced; re-raises the first error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


def _write_json_atomic(path: Path, content: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(content, f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise EpisodeFormatError(f"{path}: missing")
    try:
        with open(path) as f:
            content = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
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
        content = _read_json(path)
    except EpisodeFormatError as e:
        raise NotADatasetError(str(e)) from e
    info = DatasetInfo.from_dict(content, path)
    if info.format_version != FORMAT_VERSION:
        raise DatasetMismatchError(
            f"{path}: format version {info.format_version}, this code reads {FORMAT_VERSION}"
        )
    return info


def create_or_open_dataset(root: Path | str, info: DatasetInfo) -> DatasetInfo:
    """Creates a dataset at ``root``, or opens an existing one for appending.

    Args:
        root: Dataset folder. Created if missing; may be an empty folder.
        info: What the new data will be (sim, camera, control rate, JPEG quality).

    Returns:
        The dataset's info (``info`` itself for a new dataset).

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
        return existing
    if root.is_dir() and any(root.iterdir()):
        raise NotADatasetError(
            f"{root}: refusing to write into a non-empty folder that is not an episode dataset"
        )
    (root / INFO_PATH.parent).mkdir(parents=True, exist_ok=True)
    (root / EPISODES_DIR).mkdir(exist_ok=True)
    _write_json_atomic(root / INFO_PATH, info.to_dict())
    return info


# ---------------------------------------------------------------------------------------------
# Listing


def _episode_index(name: str) -> int | None:
    m = EPISODE_NAME_RE.match(name) or PARTIAL_NAME_RE.match(name)
    return int(m.group(1)) if m else None


def episode_dir(root: Path | str, index: int, partial: bool = False) -> Path:
    """Folder of episode ``index`` (``episode_000042`` or ``episode_000042.partial``)."""
    name = f"episode_{index:06d}" + (PARTIAL_SUFFIX if partial else "")
    return Path(root) / EPISODES_DIR / name


def list_episodes(root: Path | str) -> list[Path]:
    """Finished episode folders of a dataset, sorted by index (``.partial`` ones excluded).

    Raises:
        NotADatasetError: If ``root`` is not a dataset.
    """
    read_info(root)
    folder = Path(root) / EPISODES_DIR
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if EPISODE_NAME_RE.match(p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(EPISODE_NAME_RE.match(p.name).group(1)))


def list_partial_episodes(root: Path | str) -> list[Path]:
    """Unfinished ``episode_N.partial`` folders of a dataset, sorted by index."""
    read_info(root)
    folder = Path(root) / EPISODES_DIR
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if PARTIAL_NAME_RE.match(p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(PARTIAL_NAME_RE.match(p.name).group(1)))


def next_episode_index(root: Path | str) -> int:
    """The id a new episode would get: one above every existing id, ``.partial`` included."""
    folder = Path(root) / EPISODES_DIR
    names = os.listdir(folder) if folder.is_dir() else []
    ids = [i for i in (_episode_index(n) for n in names) if i is not None]
    return max(ids, default=-1) + 1


def _allocate_episode(root: Path) -> tuple[int, Path]:
    """Creates a fresh ``episode_N.partial`` folder, N above every existing id (race-free)."""
    (root / EPISODES_DIR).mkdir(parents=True, exist_ok=True)
    while True:
        index = next_episode_index(root)
        path = episode_dir(root, index, partial=True)
        try:
            path.mkdir()
        except FileExistsError:
            continue
        if episode_dir(root, index).exists():  # another process finished this id meanwhile
            path.rmdir()
            continue
        return index, path


# ---------------------------------------------------------------------------------------------
# Writing


def _format_value(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"non-finite value {v}")
    return repr(v)  # shortest text that reads back to exactly the same float64


class EpisodeWriter:
    """Writes one episode step by step into ``episode_N.partial/`` and finalises it.

    Usage::

        with EpisodeWriter(root, {"town": "hills", "seed": 3}) as w:
            for obs, row in ...:
                w.write_step(obs["image"], row)      # row: {column name: value}
            w.finish({"outcome": "route_complete"})  # fsync + rename to episode_N
        # leaving the block without finish() (an exception) keeps episode_N.partial

    Args:
        root: An existing dataset (see :func:`create_or_open_dataset`).
        metadata: Episode facts known at the start (town, weather, seed, target speed, noise
            settings ...), plain JSON. Written to ``episode.json`` at once and again at finish.
        extra_columns: Additional per-step columns, ``{name: unit}``, after the base ones
            (rollouts: ``curvature_pred``, ``neuron_000`` ...).
        fsync: Fsync every file before the rename (turn off only in tests of speed).
    """

    def __init__(
        self,
        root: Path | str,
        metadata: Mapping[str, Any] | None = None,
        extra_columns: Mapping[str, str] | None = None,
        fsync: bool = True,
    ) -> None:
        self.root = Path(root)
        self.info = read_info(self.root)
        self.extra_columns = dict(extra_columns or {})
        clash = set(self.extra_columns) & set(BASE_COLUMN_NAMES)
        if clash:
            raise ValueError(f"extra columns {sorted(clash)} clash with the base columns")
        for name in self.extra_columns:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"extra column name {name!r} must be an identifier")
        self.columns = (*BASE_COLUMN_NAMES, *self.extra_columns)
        self.fsync = fsync
        self.index, self.path = _allocate_episode(self.root)
        self.final_path = episode_dir(self.root, self.index)
        self.metadata: dict[str, Any] = {
            "episode_index": self.index,
            "status": "recording",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **dict(metadata or {}),
            "extra_columns": self.extra_columns,
        }
        (self.path / FRAMES_DIR).mkdir()
        _write_json_atomic(self.path / EPISODE_FILE, self.metadata)
        self._csv_file = open(self.path / STEPS_FILE, "w", newline="")  # noqa: SIM115
        self._csv_file.write(",".join(self.columns) + "\n")
        self._csv_file.flush()
        self._encode_params = [cv2.IMWRITE_JPEG_QUALITY, self.info.jpeg_quality]
        self.num_steps = 0
        self.finished = False
        self._sync = _BackgroundSync() if fsync else None

    def write_step(self, image: np.ndarray, row: Mapping[str, Any]) -> None:
        """Appends one step: its RGB frame, then its CSV row (flushed).

        Args:
            image: uint8 (H, W, 3) RGB frame of the dataset's camera size.
            row: A value for every column except ``frame_index`` (filled in here).

        Raises:
            ValueError: If the image has the wrong shape or dtype, a column is missing or
                unknown, or a value is not finite.
        """
        if self.finished:
            raise RuntimeError(f"{self.final_path}: episode already finished")
        if image.dtype != np.uint8 or image.shape != self.info.image_shape:
            raise ValueError(
                f"frame must be uint8 {self.info.image_shape}, got {image.dtype} {image.shape}"
            )
        expected = set(self.columns) - {FRAME_INDEX}
        got = set(row) - {FRAME_INDEX}
        if got != expected:
            raise ValueError(
                f"step row columns differ: missing {sorted(expected - got)}, "
                f"unknown {sorted(got - expected)}"
            )
        values = []
        for name in self.columns:
            if name == FRAME_INDEX:
                values.append(str(self.num_steps))
                continue
            try:
                values.append(_format_value(row[name]))
            except (TypeError, ValueError) as e:
                raise ValueError(f"column {name!r}: bad value {row[name]!r} ({e})") from e
        ok, buf = cv2.imencode(".jpg", image[..., ::-1], self._encode_params)  # RGB -> BGR
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for step {self.num_steps}")
        frame_path = self.path / FRAMES_DIR / f"{self.num_steps:06d}.jpg"
        with open(frame_path, "wb") as f:
            f.write(buf.tobytes())
        if self._sync is not None:
            self._sync.submit(frame_path)
        self._csv_file.write(",".join(values) + "\n")
        self._csv_file.flush()
        self.num_steps += 1

    def finish(self, summary: Mapping[str, Any] | None = None) -> Path:
        """Writes ``episode.json``, fsyncs everything and renames the folder to ``episode_N``.

        Args:
            summary: Facts known at the end (outcome, distance ...), merged into the metadata.

        Returns:
            The finished episode folder.
        """
        if self.finished:
            return self.final_path
        if self.num_steps == 0:
            raise ValueError(f"{self.path}: an episode needs at least one step")
        self._csv_file.flush()
        if self.fsync:
            os.fsync(self._csv_file.fileno())
        self._csv_file.close()
        self.metadata.update(dict(summary or {}))
        self.metadata.update(
            status="complete",
            num_steps=self.num_steps,
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        if self._sync is not None:
            self._sync.drain()  # every frame is on disk
        _finalise(self.path, self.final_path, self.metadata, 0, self.fsync)
        self.finished = True
        return self.final_path

    def close(self) -> None:
        """Closes the CSV file without finishing (the folder stays ``.partial``)."""
        if not self._csv_file.closed:
            self._csv_file.close()
        if self._sync is not None:
            self._sync.drain()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finalise(
    partial: Path, final: Path, metadata: Mapping[str, Any], sync_frames: int, fsync: bool
) -> None:
    """Writes the final metadata, fsyncs (frames ``0..sync_frames-1`` too), renames."""
    frames = partial / FRAMES_DIR
    _write_json_atomic(partial / EPISODE_FILE, metadata)
    if fsync:
        for i in range(sync_frames):
            _fsync_path(frames / f"{i:06d}.jpg")
        _fsync_path(partial / STEPS_FILE)
        _fsync_path(frames)
        _fsync_path(partial)
    os.rename(partial, final)
    if fsync:
        _fsync_path(final.parent)


# ---------------------------------------------------------------------------------------------
# Reading


def _parse_steps(path: Path, required: Sequence[str]) -> tuple[list[str], np.ndarray, int]:
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
        return self.path / FRAMES_DIR / f"{i:06d}.jpg"

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


def decode_frame(path: Path, image_shape: tuple[int, int, int]) -> np.ndarray:
    """Reads and decodes one JPEG frame to uint8 (H, W, 3) RGB, checking its size.

    Raises:
        EpisodeFormatError: If the file is missing, not a decodable JPEG or of another size.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise EpisodeFormatError(f"{path}: frame not readable ({e.strerror})") from e
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise EpisodeFormatError(f"{path}: corrupt or empty JPEG ({len(data)} bytes)")
    if img.shape != image_shape:
        raise EpisodeFormatError(
            f"{path}: frame is {img.shape[1]}x{img.shape[0]}, the dataset camera is "
            f"{image_shape[1]}x{image_shape[0]}"
        )
    return img[..., ::-1]  # BGR -> RGB (a view; callers copy into their batch)


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
            f"{path}: unfinished episode; finalise it with `python tools/inspect.py "
            f"{path.parent.parent} --salvage` or delete it"
        )
    m = EPISODE_NAME_RE.match(path.name)
    if not m or not path.is_dir():
        raise EpisodeFormatError(f"{path}: not an episode folder (episode_NNNNNN)")
    if info is None:
        info = read_info(path.parent.parent)
    meta = _read_json(path / EPISODE_FILE)
    extra = meta.get("extra_columns", {})
    if not isinstance(extra, dict):
        raise EpisodeFormatError(f"{path / EPISODE_FILE}: 'extra_columns' must be an object")
    header, values, n = _parse_steps(path / STEPS_FILE, BASE_COLUMN_NAMES)
    undeclared = [c for c in header if c not in _DTYPES and c not in extra]
    if undeclared:
        raise EpisodeFormatError(
            f"{path / STEPS_FILE}: columns {undeclared} are not declared in {EPISODE_FILE}"
        )
    if meta.get("num_steps") != n:
        raise EpisodeFormatError(
            f"{path}: {STEPS_FILE} has {n} rows but {EPISODE_FILE} says "
            f"num_steps={meta.get('num_steps')}"
        )
    if n == 0:
        raise EpisodeFormatError(f"{path / STEPS_FILE}: no rows")
    columns = {
        name: values[:, j].astype(_NUMPY_DTYPES[_DTYPES.get(name, "float")])
        for j, name in enumerate(header)
    }
    if not np.array_equal(columns[FRAME_INDEX], np.arange(n)):
        raise EpisodeFormatError(f"{path / STEPS_FILE}: frame_index is not 0..{n - 1}")
    frames_dir = path / FRAMES_DIR
    names = sorted(os.listdir(frames_dir)) if frames_dir.is_dir() else []
    expected = [f"{i:06d}.jpg" for i in range(n)]
    if names != expected:
        missing = sorted(set(expected) - set(names))
        extra_files = sorted(set(names) - set(expected))
        raise EpisodeFormatError(
            f"{frames_dir}: {len(names)} frames for {n} rows in {STEPS_FILE}"
            + (f"; missing {missing[:3]}" if missing else "")
            + (f"; unexpected {extra_files[:3]}" if extra_files else "")
        )
    units = {c.name: c.unit for c in COLUMNS} | {k: str(v) for k, v in extra.items()}
    episode = Episode(path, int(m.group(1)), meta, columns, units, info.image_shape)
    for i in range(n) if check_frames else {0, n - 1}:
        episode.frame(i)
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


def load_episodes(
    roots: Path | str | Sequence[Path | str], skip_bad: bool = False
) -> list[Episode]:
    """Reads every finished episode of one or more datasets with the same camera.

    Raises:
        DatasetMismatchError: If the datasets' cameras differ.
    """
    if isinstance(roots, (str, Path)):
        roots = [roots]
    episodes: list[Episode] = []
    shape = None
    for root in roots:
        info = read_info(root)
        if shape is not None and info.image_shape != shape:
            raise DatasetMismatchError(
                f"{root}: frames are {info.image_shape}, other datasets have {shape}"
            )
        shape = info.image_shape
        episodes.extend(iter_episodes(root, skip_bad=skip_bad))
    return episodes


# ---------------------------------------------------------------------------------------------
# Salvage


def salvage_episode(path: Path | str) -> Path | None:
    """Finalises an interrupted ``episode_N.partial`` folder from its complete rows.

    Keeps the rows that end with a line break, parse, and whose frame decodes; drops the
    rest (and stray frames), marks ``episode.json`` with ``outcome: "salvaged"`` and renames
    the folder to ``episode_N``. A folder with no usable row is left alone.

    Returns:
        The finished folder, or None if nothing could be salvaged.

    Raises:
        EpisodeFormatError: If the folder is not a partial episode or its header is unusable.
    """
    path = Path(path)
    m = PARTIAL_NAME_RE.match(path.name)
    if not m:
        raise EpisodeFormatError(f"{path}: not a .partial episode folder")
    info = read_info(path.parent.parent)
    steps = path / STEPS_FILE
    try:
        meta = _read_json(path / EPISODE_FILE)
    except EpisodeFormatError:
        meta = {"episode_index": int(m.group(1))}
    if not steps.is_file():
        logger.warning("%s: no %s, nothing to salvage", path, STEPS_FILE)
        return None
    text = steps.read_text()
    lines = text.split("\n")
    header = lines[0].split(",")
    missing = [c for c in BASE_COLUMN_NAMES if c not in header]
    if missing:
        raise EpisodeFormatError(f"{steps}: header lacks columns {missing}")
    good: list[str] = []
    for k, line in enumerate(lines[1:-1]):  # the last piece has no line end: incomplete
        fields_ = line.split(",")
        try:
            ok = len(fields_) == len(header) and all(math.isfinite(float(v)) for v in fields_)
        except ValueError:
            ok = False
        if not ok or int(float(fields_[header.index(FRAME_INDEX)])) != k:
            break
        try:
            decode_frame(path / FRAMES_DIR / f"{k:06d}.jpg", info.image_shape)
        except EpisodeFormatError:
            break
        good.append(line)
    if not good:
        logger.warning("%s: no complete step, nothing to salvage", path)
        return None
    n = len(good)
    with open(steps, "w", newline="") as f:
        f.write("\n".join([lines[0], *good]) + "\n")
    for name in os.listdir(path / FRAMES_DIR):
        if not (name.endswith(".jpg") and name[:-4].isdigit() and int(name[:-4]) < n):
            (path / FRAMES_DIR / name).unlink()
    meta.update(status="complete", outcome="salvaged", num_steps=n)
    known = set(BASE_COLUMN_NAMES) | set(meta.get("extra_columns") or {})
    unknown = [c for c in header if c not in known]
    if unknown:
        meta["extra_columns"] = dict(meta.get("extra_columns") or {}) | dict.fromkeys(unknown, "?")
    final = path.with_name(path.name[: -len(PARTIAL_SUFFIX)])
    if final.exists():
        raise EpisodeFormatError(f"{final}: already exists, cannot salvage {path}")
    _finalise(path, final, meta, n, fsync=True)
    return final

"""One validation of recorded data, run up front by ``inspect_dataset`` and by training.

Beyond what the reader refuses (malformed files, counts that disagree, non-finite values,
non-integer indices, flags other than 0/1), :func:`validate_dataset` checks:

* ``meta/info.json``: a control rate in (0, 1000] Hz, a camera of 1..8192 px per side and a
  field of view in (0, 180) degrees;
* ``episodes/``: every entry named like an episode is a real folder (not a file, a dangling
  link or a link loop) with a unique id;
* ``episode.json``: written by a finished writer (``status: "complete"``), town and weather
  strings, units of the extra columns strings, ``route_commands`` a list of command values;
* ``steps.csv``: time strictly increasing with steps of at most :attr:`Bounds.max_step_dt_s`,
  every base column within its physical bounds (:class:`Bounds`), and every ``junction``
  an index into ``episode.json``'s ``route_commands`` (when the episode records them);
* recovery views (:mod:`driving.data.views`): their labels within the curvature bound;
* every frame, the recovery views' too (``frames="structure"``): a regular file with a sound
  JPEG structure and, for frames that carry one, a matching checksum
  (:mod:`driving.data.frames`); with ``frames="decode"`` it is also decoded and its size
  checked.

Every problem is an :class:`~driving.data.errors.InvalidDataError` (an ``EpisodeFormatError``)
naming the file and the field or row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from driving.data import format as F
from driving.data.errors import EpisodeFormatError, InvalidDataError
from driving.data.frames import check_jpeg, decode_jpeg, read_frame_bytes
from driving.data.reader import Episode, check_same_camera, read_episode
from driving.data.views import label_column

FrameCheck = Literal["decode", "structure", "exist"]


@dataclass(frozen=True)
class Bounds:
    """Physical bounds of the recorded values; a value outside is a data error."""

    max_abs_curvature_per_m: float = 1.0
    """Applied, label and road curvature, 1/m (1 1/m is a 1 m turning radius)."""
    max_speed_mps: float = 100.0
    """Forward speed, m/s (speeds are never negative)."""
    max_abs_lateral_offset_m: float = 50.0
    """Offset from the lane centre, m."""
    max_lane_half_width_m: float = 20.0
    """Half the lane width, m (never negative)."""
    max_abs_position_m: float = 1.0e6
    """World x, y, route progress and time, in m or s."""
    max_abs_yaw_rad: float = 1.0e6
    """World yaw, rad (it may wind up over laps)."""
    max_step_dt_s: float = 10.0
    """Largest time between two recorded steps, s (``t_s`` must strictly increase)."""

    def column_limits(self) -> dict[str, tuple[float, float]]:
        """(low, high) of every bounded base column."""
        k, p = self.max_abs_curvature_per_m, self.max_abs_position_m
        return {
            F.T_S: (-p, p),
            F.SPEED_MPS: (0.0, self.max_speed_mps),
            F.CURVATURE_APPLIED: (-k, k),
            F.CURVATURE_EXPERT: (-k, k),
            F.ROAD_CURVATURE: (-k, k),
            F.LATERAL_OFFSET_M: (-self.max_abs_lateral_offset_m, self.max_abs_lateral_offset_m),
            F.HEADING_ERROR_RAD: (-math.pi - 1e-9, math.pi + 1e-9),
            F.LANE_HALF_WIDTH_M: (0.0, self.max_lane_half_width_m),
            F.X_M: (-p, p),
            F.Y_M: (-p, p),
            F.YAW_RAD: (-self.max_abs_yaw_rad, self.max_abs_yaw_rad),
            F.PROGRESS_M: (-p, p),
        }


def validate_info(root: Path | str) -> F.DatasetInfo:
    """Reads ``meta/info.json`` and checks its values are physically sensible."""
    info = F.read_info(root)
    path = Path(root) / F.INFO_PATH
    if not 0 < info.control_rate_hz <= 1000:
        raise InvalidDataError(path, f"{info.control_rate_hz} Hz", "control_rate_hz")
    for key in ("width_px", "height_px"):
        if not 1 <= info.camera[key] <= 8192:
            raise InvalidDataError(path, f"{info.camera[key]} px", f"camera.{key}")
    fov = info.camera.get("hfov_deg")
    if fov is not None and not (isinstance(fov, (int, float)) and 0 < fov < 180):
        raise InvalidDataError(path, f"{fov!r} is not in (0, 180) degrees", "camera.hfov_deg")
    return info


def check_entries(root: Path | str) -> list[InvalidDataError]:
    """Problems with the entries of ``episodes/`` named like episodes (one per entry)."""
    folder = Path(root) / F.EPISODES_DIR
    if not folder.exists():
        return []
    if not folder.is_dir():
        return [InvalidDataError(folder, "is not a folder")]
    problems, seen = [], {}
    for p in sorted(folder.iterdir()):
        if not p.name.startswith("episode"):
            continue
        index = F.episode_index(p.name)
        if index is None:
            problems.append(InvalidDataError(p, "named like an episode but not episode_NNNNNN"))
        elif p.is_symlink() and not p.exists():
            problems.append(InvalidDataError(p, "a link that leads nowhere (dangling or a loop)"))
        elif not p.is_dir():
            problems.append(InvalidDataError(p, "named like an episode but not a folder"))
        elif (index, p.name.endswith(F.PARTIAL_SUFFIX)) in seen:
            other = seen[index, p.name.endswith(F.PARTIAL_SUFFIX)]
            problems.append(InvalidDataError(p, f"episode id {index} is also {other}"))
        else:
            seen[index, p.name.endswith(F.PARTIAL_SUFFIX)] = p.name
    return problems


def validate_episode(
    episode: Episode, bounds: Bounds = Bounds(), frames: FrameCheck = "decode"
) -> None:
    """Checks one read episode's metadata, values and frames (see the module docstring)."""
    meta_path, steps = episode.path / F.EPISODE_FILE, episode.path / F.STEPS_FILE
    meta = episode.meta
    if meta.get("status") != "complete":
        raise InvalidDataError(
            meta_path, f"{meta.get('status')!r}: not finished by the writer", "status"
        )
    for key in ("town", "weather"):
        if key in meta and not isinstance(meta[key], str):
            raise InvalidDataError(meta_path, f"{meta[key]!r} is not a string", key)
    for name, unit in meta.get("extra_columns", {}).items():
        if not isinstance(unit, str):
            raise InvalidDataError(meta_path, f"unit {unit!r} is not a string", name)
    for name, (lo, hi) in bounds.column_limits().items():
        v = episode.columns[name]
        bad = np.flatnonzero((v < lo) | (v > hi))
        if bad.size:
            raise InvalidDataError(
                steps, f"{float(v[bad[0]])!r} is outside [{lo:g}, {hi:g}]", name, int(bad[0])
            )
    routes = meta.get("route_commands", [])
    if not isinstance(routes, list) or any(c not in F.COMMAND_VALUES for c in routes):
        raise InvalidDataError(meta_path, f"{routes!r} is not a list of commands", "route_commands")
    junction = episode.columns[F.JUNCTION]
    bad = np.flatnonzero(junction >= max(len(routes), 0))
    if bad.size and "route_commands" in meta:
        i = int(bad[0])
        problem = f"junction {int(junction[i])} but the route has {len(routes)} junctions"
        raise InvalidDataError(steps, problem, F.JUNCTION, i)
    dt = np.diff(episode.columns[F.T_S])
    bad = np.flatnonzero((dt <= 0) | (dt > bounds.max_step_dt_s))
    if bad.size:
        i = int(bad[0]) + 1
        problem = "goes backwards or stands still" if dt[i - 1] <= 0 else "jumps"
        raise InvalidDataError(steps, f"time {problem} ({dt[i - 1]:+g} s)", F.T_S, i)
    k = bounds.max_abs_curvature_per_m
    for view in range(1, episode.views + 1):  # recovery views: labels bounded like the car's
        v = episode.columns[label_column(view)]
        bad = np.flatnonzero(np.abs(v) > k)
        if bad.size:
            raise InvalidDataError(
                steps, f"{float(v[bad[0]])!r} is outside [{-k:g}, {k:g}]", label_column(view),
                int(bad[0]),
            )  # fmt: skip
    if frames != "exist":
        for view in range(episode.views + 1):
            for i in range(len(episode)):
                path = episode.view_frame_path(view, i)
                check_frame(path, episode.image_shape, decode=frames == "decode")


def check_frame(path: Path, image_shape: tuple[int, int, int], decode: bool = True) -> None:
    """Checks one frame file: a regular file, sound JPEG structure and checksum, decodable."""
    data = read_frame_bytes(path)
    check_jpeg(path, data)
    if decode:
        decode_jpeg(path, data, image_shape)


@dataclass
class DatasetCheck:
    """The outcome of :func:`validate_dataset` with ``keep_going``."""

    info: F.DatasetInfo
    """The dataset's info."""
    episodes: list[Episode] = field(default_factory=list)
    """The finished episodes that passed every check, in id order."""
    problems: list[tuple[Path, EpisodeFormatError]] = field(default_factory=list)
    """(entry or episode folder, its error naming the file) for each bad one."""
    partial: list[Path] = field(default_factory=list)
    """Unfinished ``.partial`` folders (not read)."""


def validate_dataset(
    root: Path | str,
    *,
    frames: FrameCheck = "decode",
    bounds: Bounds = Bounds(),
    keep_going: bool = False,
) -> DatasetCheck:
    """Reads and checks every finished episode of a dataset.

    Args:
        root: The dataset folder.
        frames: ``"decode"`` checks and decodes every frame, ``"structure"`` checks every
            frame's structure and checksum without decoding, ``"exist"`` decodes the first
            and last frame of each episode only.
        bounds: The physical bounds of the values.
        keep_going: Collect every bad entry or episode in :attr:`DatasetCheck.problems`
            instead of raising the first.

    Raises:
        NotADatasetError: If ``root`` is not a dataset.
        EpisodeFormatError: For ``meta/info.json`` (always) or the first bad entry or episode
            (unless ``keep_going``); an :class:`~driving.data.errors.InvalidDataError` names
            the file and the field or row.
    """
    check = DatasetCheck(validate_info(root))
    for problem in check_entries(root):
        if not keep_going:
            raise problem
        check.problems.append((problem.path, problem))
    check.partial = F.list_partial_episodes(root)
    for path in F.list_episodes(root):
        try:
            episode = read_episode(path, check.info)
            validate_episode(episode, bounds, frames)
        except EpisodeFormatError as e:
            if not keep_going:
                raise
            check.problems.append((path, e))
        else:
            check.episodes.append(episode)
    return check


def load_valid_episodes(
    roots: Path | str | Sequence[Path | str],
    frames: FrameCheck = "structure",
    bounds: Bounds = Bounds(),
) -> list[Episode]:
    """Every finished episode of one or more datasets with the same camera, all validated.

    Training calls this up front with ``frames="structure"``: it decodes every frame right
    after (with the same decoder and size check), so every check runs once.

    Raises:
        DatasetMismatchError: If the datasets' cameras differ.
        EpisodeFormatError: For the first problem found (naming the file).
    """
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    check_same_camera(roots)
    checks = [validate_dataset(root, frames=frames, bounds=bounds) for root in roots]
    return [e for check in checks for e in check.episodes]

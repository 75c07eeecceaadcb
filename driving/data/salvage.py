"""Finalising interrupted ``episode_N.partial`` folders from their complete rows.

A recorder killed mid-episode leaves ``episode_N.partial/`` with complete rows, perhaps half
a row and a frame without a row. :func:`salvage_episode` keeps what is whole and finishes the
folder. A folder whose writer is still alive (its lock is held, :mod:`driving.data.lock`) is
refused with a :class:`~driving.data.errors.LiveEpisodeError` and left untouched.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from driving.data.atomic import write_text_atomic
from driving.data.errors import EpisodeFormatError, LiveEpisodeError
from driving.data.format import (
    BASE_COLUMN_NAMES,
    EPISODE_FILE,
    EPISODES_DIR,
    FORMAT_VERSION,
    FRAME_INDEX,
    FRAMES_DIR,
    PARTIAL_NAME_RE,
    PARTIAL_SUFFIX,
    STEPS_FILE,
    V1_DEFAULTS,
    frame_name,
    list_partial_episodes,
    read_info,
    read_json,
    required_columns,
)
from driving.data.frames import decode_frame
from driving.data.lock import EpisodeLock, try_lock
from driving.data.views import drop_stray_view_frames
from driving.data.writer import STAGING_PREFIX, finalise

logger = logging.getLogger(__name__)


def _complete_rows(path: Path, lines: list[str], header: list[str], shape: tuple) -> list[str]:
    """The leading rows that end with a line break, parse, and whose frame decodes."""
    good: list[str] = []
    frame_col = header.index(FRAME_INDEX)
    for k, line in enumerate(lines[1:-1]):  # the last piece has no line end: incomplete
        fields_ = line.split(",")
        try:
            ok = len(fields_) == len(header) and all(math.isfinite(float(v)) for v in fields_)
        except ValueError:
            ok = False
        if not ok or float(fields_[frame_col]) != k:
            break
        try:
            decode_frame(path / FRAMES_DIR / frame_name(k), shape)
        except EpisodeFormatError:
            break
        good.append(line)
    return good


def salvage_episode(path: Path | str) -> Path | None:
    """Finalises an interrupted ``episode_N.partial`` folder from its complete rows.

    Keeps the rows that end with a line break, parse, and whose frame decodes; drops the
    rest (and stray frames), marks ``episode.json`` with ``outcome: "salvaged"`` and renames
    the folder to ``episode_N``. A folder with no usable row is left alone.

    Returns:
        The finished folder, or None if nothing could be salvaged.

    Raises:
        LiveEpisodeError: If a live process is still writing the folder (nothing is touched).
        EpisodeFormatError: If the folder is not a partial episode or its header is unusable.
    """
    path = Path(path)
    m = PARTIAL_NAME_RE.match(path.name)
    if not m:
        raise EpisodeFormatError(f"{path}: not a .partial episode folder")
    info = read_info(path.parent.parent)
    lock = try_lock(path)  # held until the folder is finished, so no one else salvages it
    try:
        return _salvage_locked(path, int(m.group(1)), info.image_shape, lock)
    finally:
        if lock is not None:
            lock.release()


def _salvage_locked(path: Path, index: int, shape: tuple, lock: EpisodeLock | None) -> Path | None:
    steps = path / STEPS_FILE
    try:
        meta = read_json(path / EPISODE_FILE)
    except EpisodeFormatError:
        meta = {"episode_index": index}
    if not steps.is_file():
        logger.warning("%s: no %s, nothing to salvage", path, STEPS_FILE)
        return None
    final = path.with_name(path.name[: -len(PARTIAL_SUFFIX)])
    if final.exists():
        raise EpisodeFormatError(f"{final}: already exists, cannot salvage {path}")
    lines = steps.read_bytes().decode("utf-8", errors="replace").split("\n")
    header = lines[0].split(",")
    if "format_version" not in meta and all(c in header for c in V1_DEFAULTS):
        meta["format_version"] = FORMAT_VERSION  # episode.json was lost; the header tells
    missing = [c for c in required_columns(meta) if c not in header]
    if missing:
        raise EpisodeFormatError(f"{steps}: header lacks columns {missing}")
    good = _complete_rows(path, lines, header, shape)
    if not good:
        logger.warning("%s: no complete step, nothing to salvage", path)
        return None
    n = len(good)
    write_text_atomic(steps, "\n".join([lines[0], *good]) + "\n")
    for name in os.listdir(path / FRAMES_DIR):
        if not (name.endswith(".jpg") and name[:-4].isdigit() and int(name[:-4]) < n):
            (path / FRAMES_DIR / name).unlink()
    drop_stray_view_frames(path, meta, n)
    meta.update(status="complete", outcome="salvaged", num_steps=n)
    declared = meta.get("extra_columns")
    declared = dict(declared) if isinstance(declared, dict) else {}
    unknown = [c for c in header if c not in set(BASE_COLUMN_NAMES) | set(declared)]
    if unknown or "extra_columns" in meta:
        meta["extra_columns"] = declared | dict.fromkeys(unknown, "?")
    finalise(path, final, meta, n, True, lock)
    return final


@dataclass
class SalvageReport:
    """What :func:`salvage_dataset` did with each ``.partial`` folder."""

    salvaged: list[Path] = field(default_factory=list)
    """Folders finished (``episode_N``)."""
    live: list[str] = field(default_factory=list)
    """Messages for folders a live process is still writing (left untouched)."""
    failed: list[str] = field(default_factory=list)
    """Messages for folders that could not be salvaged (left as they are)."""
    empty: list[Path] = field(default_factory=list)
    """Folders without one complete step (left as they are)."""


def salvage_dataset(root: Path | str) -> SalvageReport:
    """Salvages every interrupted ``.partial`` episode of a dataset; live ones are left alone.

    Also removes the hidden staging folders of writers killed before their folder got a name.
    """
    report = SalvageReport()
    for path in list_partial_episodes(root):
        try:
            done = salvage_episode(path)
        except LiveEpisodeError as e:
            report.live.append(str(e))
        except EpisodeFormatError as e:
            report.failed.append(str(e))
        else:
            (report.salvaged if done is not None else report.empty).append(done or path)
    for staging in Path(root, EPISODES_DIR).glob(f"{STAGING_PREFIX}*"):
        try:
            lock = try_lock(staging)
        except LiveEpisodeError:
            continue
        shutil.rmtree(staging, ignore_errors=True)
        if lock is not None:
            lock.release()
    return report

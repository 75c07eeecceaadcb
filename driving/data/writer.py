"""Writing an episode step by step, crash-safe.

An :class:`EpisodeWriter` writes into ``episode_N.partial/``: the frame first, then its CSV
row, flushed every step, so a killed recorder leaves only complete rows plus at most one
unreferenced frame. :meth:`EpisodeWriter.finish` fsyncs every file and renames the folder to
``episode_N``. While the writer is open it holds the folder's lock
(:mod:`driving.data.lock`), so salvage can tell a live recording from an interrupted one.
"""

from __future__ import annotations

import math
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from driving.data.atomic import fsync_dir, fsync_file, write_json_atomic
from driving.data.errors import DatasetMismatchError
from driving.data.format import (
    BASE_COLUMN_NAMES,
    EPISODE_FILE,
    EPISODES_DIR,
    FORMAT_VERSION,
    FRAME_INDEX,
    FRAMES_DIR,
    STEPS_FILE,
    episode_dir,
    frame_name,
    next_episode_index,
    read_info,
)
from driving.data.frames import encode_frame
from driving.data.lock import EpisodeLock
from driving.data.views import check_writer_views, view_dir

STAGING_PREFIX = ".new-episode-"
"""A writer prepares its locked folder as ``episodes/.new-episode-XXXX`` before naming it."""


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
                fsync_file(path)
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


def _allocate_episode(root: Path) -> tuple[int, Path, EpisodeLock]:
    """A fresh locked ``episode_N.partial`` folder, N above every existing id (race-free).

    The folder is built and locked under a hidden name, the id is reserved by creating the
    empty ``episode_N.partial`` (``mkdir`` fails for all but one process), and the locked
    folder is renamed over the empty reservation: nobody sees the named folder unlocked.
    """
    episodes = root / EPISODES_DIR
    episodes.mkdir(parents=True, exist_ok=True)
    while True:  # mkdir, not mkdtemp: the folder gets the usual permissions (umask)
        staging = episodes / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
        try:
            staging.mkdir()
            break
        except FileExistsError:
            continue
    lock = EpisodeLock.create(staging)
    (staging / FRAMES_DIR).mkdir()
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
        os.rename(staging, path)  # replaces the empty reservation
        lock.moved_to(path)
        return index, path, lock


def _format_value(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"non-finite value {v}")
    return repr(v)  # shortest text that reads back to exactly the same float64


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class EpisodeWriter:
    """Writes one episode step by step into ``episode_N.partial/`` and finalises it.

    Usage::

        with EpisodeWriter(root, {"town": "hills", "seed": 3}) as w:
            for obs, row in ...:
                w.write_step(obs["image"], row)      # row: {column name: value}
            w.finish({"outcome": "route_complete"})  # fsync + rename to episode_N
        # leaving the block without finish() (an exception) keeps episode_N.partial

    Args:
        root: An existing dataset (see :func:`driving.data.format.create_or_open_dataset`).
        metadata: Episode facts known at the start (town, weather, seed, target speed, noise
            settings ...), plain JSON. Written to ``episode.json`` at once and again at finish.
        extra_columns: Additional per-step columns, ``{name: unit}``, after the base ones
            (rollouts: ``curvature_pred``, ``neuron_000`` ...).
        fsync: Fsync every file before the rename (turn off only in tests of speed).
        views: Recovery views per step (:mod:`driving.data.views`; 0 = none): each
            :meth:`write_step` then takes their frames, and ``metadata`` must hold their
            settings under ``"recovery"`` and ``extra_columns`` their columns.
    """

    def __init__(
        self,
        root: Path | str,
        metadata: Mapping[str, Any] | None = None,
        extra_columns: Mapping[str, str] | None = None,
        fsync: bool = True,
        views: int = 0,
    ) -> None:
        self.root = Path(root)
        self.info = read_info(self.root)
        if self.info.format_version != FORMAT_VERSION:
            raise DatasetMismatchError(
                f"{self.root}: a format version {self.info.format_version} dataset; open it with "
                "driving.data.episodes.create_or_open_dataset (it upgrades the dataset to "
                f"version {FORMAT_VERSION}) before writing episodes"
            )
        self.extra_columns = dict(extra_columns or {})
        clash = set(self.extra_columns) & set(BASE_COLUMN_NAMES)
        if clash:
            raise ValueError(f"extra columns {sorted(clash)} clash with the base columns")
        for name in self.extra_columns:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"extra column name {name!r} must be an identifier")
        self.columns = (*BASE_COLUMN_NAMES, *self.extra_columns)
        self.fsync = fsync
        self.views = check_writer_views(views, metadata, self.extra_columns)
        self.index, self.path, self._lock = _allocate_episode(self.root)
        for k in range(1, self.views + 1):
            view_dir(self.path, k).mkdir(parents=True)
        self.final_path = episode_dir(self.root, self.index)
        self.metadata: dict[str, Any] = {
            "episode_index": self.index,
            "format_version": FORMAT_VERSION,
            "status": "recording",
            "started_at": _now(),
            **dict(metadata or {}),
            "extra_columns": self.extra_columns,
        }
        write_json_atomic(self.path / EPISODE_FILE, self.metadata)
        self._csv_file = open(self.path / STEPS_FILE, "w", newline="")  # noqa: SIM115
        self._csv_file.write(",".join(self.columns) + "\n")
        self._csv_file.flush()
        self.num_steps = 0
        self.finished = False
        self._sync = _BackgroundSync() if fsync else None

    def write_step(
        self, image: np.ndarray, row: Mapping[str, Any], views: np.ndarray | None = None
    ) -> None:
        """Appends one step: its RGB frame (after its views' frames), then its CSV row (flushed).

        Args:
            image: uint8 (H, W, 3) RGB frame of the dataset's camera size.
            row: A value for every column except ``frame_index`` (filled in here).
            views: uint8 (K, H, W, 3) frames of the K recovery views (only with ``views=K``).

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
        if self.views or views is not None:
            expected_shape = (self.views, *self.info.image_shape)
            if views is None or views.dtype != np.uint8 or views.shape != expected_shape:
                got = None if views is None else (views.dtype, views.shape)
                raise ValueError(f"recovery view frames must be uint8 {expected_shape}, got {got}")
        images = [(view_dir(self.path, k + 1), views[k]) for k in range(self.views)]
        for folder, frame in (*images, (self.path / FRAMES_DIR, image)):
            try:
                data = encode_frame(frame, self.info.jpeg_quality)
            except RuntimeError as e:
                raise RuntimeError(f"JPEG encoding failed for step {self.num_steps}") from e
            frame_path = folder / frame_name(self.num_steps)
            with open(frame_path, "wb") as f:
                f.write(data)
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
        self.metadata.update(status="complete", num_steps=self.num_steps, finished_at=_now())
        if self._sync is not None:
            self._sync.drain()  # every frame is on disk
        finalise(self.path, self.final_path, self.metadata, 0, self.fsync, self._lock)
        self.finished = True
        return self.final_path

    def close(self) -> None:
        """Closes the CSV file without finishing (the folder stays ``.partial``, unlocked)."""
        if not self._csv_file.closed:
            self._csv_file.close()
        if self._sync is not None:
            self._sync.drain()
        self._lock.release()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def finalise(
    partial: Path,
    final: Path,
    metadata: Mapping[str, Any],
    sync_frames: int,
    fsync: bool,
    lock: EpisodeLock | None,
) -> None:
    """Writes the final metadata, fsyncs (frames ``0..sync_frames-1`` too), renames.

    The lock (if any) is released only after the rename, so nobody sees the ``.partial``
    folder unlocked while it is being finished; its lock file is then removed.
    """
    frames = partial / FRAMES_DIR
    write_json_atomic(partial / EPISODE_FILE, metadata)
    if fsync:
        for i in range(sync_frames):
            fsync_file(frames / frame_name(i))
        fsync_file(partial / STEPS_FILE)
        fsync_dir(frames)
        fsync_dir(partial)
    os.rename(partial, final)
    if lock is not None:
        lock.moved_to(final)
        lock.release(remove=True)
    if fsync:
        fsync_dir(final.parent)

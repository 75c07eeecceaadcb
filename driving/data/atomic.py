"""Atomic file and folder writes, used by every writer of the project.

A reader never sees a half-written file: content goes to a temporary sibling, is flushed to
disk (fsync), then renamed over the target (``os.replace`` is atomic on POSIX), and the
parent folder is synced so the rename survives a power cut. Folders (checkpoints) are
replaced by two renames; :func:`recover_dir` undoes what a kill between them left behind.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OLD_INFIX = ".old-"
"""A replaced folder waits in ``.<name>.old-XXXX/<name>`` until the new one is in place."""
TMP_INFIX = ".tmp-"
"""A folder being written is ``.<name>.tmp-XXXX`` beside its target."""


def fsync_file(path: Path | str) -> None:
    """Flushes a file's content to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path | str) -> None:
    """Flushes a folder's entries (names, renames) to disk."""
    fsync_file(path)


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting (briefly process-wide)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it is synced and renamed onto it.

    For writers that want a file name (``onnx.save_model``, ``Figure.savefig``, PyAV). On an
    exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would not
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Writes UTF-8 ``text`` to ``path`` atomically; returns ``path``."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path | str, content: Any, *, indent: int | None = 2) -> Path:
    """Writes ``content`` as JSON (NaN refused, trailing newline) atomically; returns ``path``."""
    return write_text_atomic(path, json.dumps(content, indent=indent, allow_nan=False) + "\n")


def make_temp_dir(path: Path | str) -> Path:
    """A new empty folder beside ``path`` to build its replacement in (see :func:`replace_dir`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{TMP_INFIX}", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a plain mkdir would not
    return tmp


def replace_dir(tmp: Path | str, path: Path | str) -> Path:
    """Moves the finished folder ``tmp`` to ``path``, replacing what was there.

    Every file in ``tmp`` is synced first. A kill between the two renames leaves the old
    folder in ``.<name>.old-XXXX/<name>`` and no ``path``; :func:`recover_dir` puts it back.

    Returns:
        ``path``.
    """
    tmp, path = Path(tmp), Path(path)
    for child in tmp.rglob("*"):
        if child.is_file():
            fsync_file(child)
    fsync_dir(tmp)
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}{OLD_INFIX}", dir=path.parent))
        os.rename(path, old / path.name)
    try:
        os.rename(tmp, path)
    except BaseException:
        if old is not None and not path.exists():  # put the old folder back before raising
            os.rename(old / path.name, path)
        raise
    fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old)
    return path


def parked_copies(path: Path | str) -> list[Path]:
    """Old copies of ``path`` parked by interrupted :func:`replace_dir` calls, oldest first.

    Ordered by when they were parked (the parking folder's modification time).
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = f"{glob.escape('.' + path.name)}{OLD_INFIX}*"
    parking = [d for d in path.parent.glob(pattern) if (d / path.name).is_dir()]
    parking.sort(key=lambda d: (d.stat().st_mtime_ns, d.name))
    return [d / path.name for d in parking]


def recover_dir(path: Path | str) -> bool:
    """Finishes or undoes an interrupted :func:`replace_dir` of ``path``.

    If ``path`` is missing and a parked old copy exists, the newest parked copy is moved back
    to ``path``. Parked copies and unfinished temporary folders that are no longer needed are
    removed.

    Returns:
        True when a parked copy was moved back to ``path``.
    """
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        return False
    parked = parked_copies(path)
    restored = False
    if not path.exists() and parked:
        os.rename(parked.pop(), path)
        fsync_dir(parent)
        restored = True
    name = glob.escape("." + path.name)
    for leftover in [*parent.glob(f"{name}{OLD_INFIX}*"), *parent.glob(f"{name}{TMP_INFIX}*")]:
        shutil.rmtree(leftover, ignore_errors=True)
    return restored

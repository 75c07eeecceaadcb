"""The lock that marks an ``episode_N.partial`` folder as being written by a live process.

The writer holds an exclusive ``flock`` on ``<episode>/.lock`` from before the folder gets its
name until the folder is finished, and the kernel releases it when the process exits or is
killed, so "is anyone still writing this episode?" has an answer that survives crashes:
:func:`try_lock` succeeds only on a folder whose writer is gone. The file holds the writer's
process id and host for the error message; its content is never trusted for the answer.

``flock`` locks belong to an open file (not to a process), so two opens in one process
exclude each other too, and a lock follows its folder through a rename.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from driving.data.errors import LiveEpisodeError

LOCK_FILE = ".lock"
"""Name of the lock file inside an episode folder that is being written."""


class EpisodeLock:
    """An exclusive lock on one episode folder's lock file (release with :meth:`release`)."""

    def __init__(self, fd: int, folder: Path) -> None:
        self._fd: int | None = fd
        self.folder = folder

    @classmethod
    def create(cls, folder: Path) -> EpisodeLock:
        """Creates ``folder/.lock`` and locks it (for a new folder nobody else knows yet)."""
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        except OSError:
            os.close(fd)
            raise
        return cls(fd, folder)

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def moved_to(self, folder: Path) -> None:
        """Records that the locked folder was renamed to ``folder``."""
        self.folder = folder

    def __del__(self) -> None:
        self.release()  # a writer dropped without close() unlocks its folder

    def release(self, remove: bool = False) -> None:
        """Releases the lock; ``remove`` deletes the lock file first (a finished episode)."""
        if self._fd is None:
            return
        if remove:
            (self.folder / LOCK_FILE).unlink(missing_ok=True)
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = None


def try_lock(folder: Path) -> EpisodeLock | None:
    """Locks the partial episode ``folder`` for a salvage.

    Returns:
        The held lock, or None for a folder that has no lock file (written by an older
        version of the writer, or an id just reserved by a writer that has not moved in yet).

    Raises:
        LiveEpisodeError: If a live process holds the lock (the message names it), or the
            folder was finished or moved while we looked.
    """
    lock = folder / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDWR)  # never create: a reserved empty folder stays empty
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise LiveEpisodeError(
            f"{folder}: being written by a live process ({holder} holds {LOCK_FILE}); "
            "refusing to touch it. Stop the recorder first, then salvage (a killed "
            "recorder's lock is released by the system)."
        ) from None
    except OSError:
        os.close(fd)
        raise
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(lock))
    except FileNotFoundError:
        same = False
    if not same:  # finished (renamed, lock removed) between our open and our lock
        os.close(fd)
        raise LiveEpisodeError(f"{folder}: its writer finished or moved it while we looked")
    return EpisodeLock(fd, folder)

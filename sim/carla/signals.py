"""Process signals while a CARLA server holds our state: deferred, and SIGTERM as an exit.

A ``KeyboardInterrupt`` (SIGINT) or a SIGTERM that lands in the middle of a cleanup would
abandon it half-way, and one that lands just after ``spawn_actor`` returned would lose the
handle of an actor the server has already created. :func:`deferred_signals` holds both
signals for the duration of such a block and delivers them, to the handlers that were
installed, as soon as it ends. :func:`install_sigterm_exit` turns SIGTERM into
``SystemExit`` so that ``finally`` blocks, finalisers and ``atexit`` cleanup run.

Python lets only the main thread change signal handlers; elsewhere (a finaliser run by the
garbage collector on another thread) the blocks simply run, and the signals go to the main
thread as usual.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger(__name__)

DEFERRED_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
"""The signals held back during a cleanup or a spawn."""

_holding = False
"""True while a :func:`deferred_signals` block runs (nested blocks hold nothing extra)."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Holds SIGINT and SIGTERM until the block ends, then delivers each one received.

    The signals are raised again (:func:`signal.raise_signal`, in the order they first
    arrived) after the previous handlers are back, so a Ctrl-C still ends in
    ``KeyboardInterrupt``, only after the block. Re-entrant; a no-op off the main thread.
    """
    global _holding
    if _holding or not _main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        if signum not in received:
            received.append(signum)

    previous: dict[int, Any] = {}
    _holding = True
    try:
        for sig in DEFERRED_SIGNALS:
            if signal.getsignal(sig) is not None:  # None: a handler not set from Python
                previous[sig] = signal.signal(sig, hold)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _holding = False
        for sig in received:
            logger.warning(
                "delivering %s, held until the CARLA calls ended", signal.Signals(sig).name
            )
            signal.raise_signal(sig)


def sigterm_to_exit(signum: int, frame: Any) -> None:
    """SIGTERM -> ``SystemExit(128 + signum)``, so ``finally`` blocks and ``atexit`` run."""
    raise SystemExit(128 + signum)


def install_sigterm_exit() -> Callable[[], None] | None:
    """Installs :func:`sigterm_to_exit` if SIGTERM still has its default action.

    Returns:
        A function that puts the default back (only if nobody replaced our handler since),
        or None when nothing was installed (not the main thread, or SIGTERM already handled,
        e.g. by a tool's clean stop).
    """
    if not _main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    signal.signal(signal.SIGTERM, sigterm_to_exit)

    def restore() -> None:
        if _main_thread() and signal.getsignal(signal.SIGTERM) is sigterm_to_exit:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return restore

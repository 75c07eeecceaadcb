"""Helpers for tests that start a tool as a subprocess and check what it leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def start_tool(name: str, *args: str) -> subprocess.Popen:
    """Starts ``python tools/<name>.py ARGS`` in its own session (so a group signal is Ctrl-C)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / f"{name}.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=ROOT,
    )


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen, timeout_s: float = 120.0):
    """Waits until ``predicate()``; fails if ``proc`` exits first or time runs out."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the tool exited early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out waiting: {proc.communicate()}")


def wait_gone(pids: list[int], timeout_s: float = 15.0) -> list[int]:
    """Waits for processes to end; returns the ones still alive after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and any(alive(p) for p in pids):
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    for p in left:  # do not leak them into the rest of the test run
        os.kill(p, 9)
    return left

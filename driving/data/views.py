"""Recovery views in the episode format: extra frames per step with their pose offset and label.

An episode recorded with ``K`` recovery views (``tools/record.py --recovery-views K``, the
builtin simulator's ``sim.spec.RECOVERY_*``) adds to the ordinary layout::

    episode_000042/
        frames/000000.jpg ...             view 0: the car's own camera (as always)
        views/1/000000.jpg ...            view 1 (k = 1..K): the camera from a shifted pose
        views/2/000000.jpg ...
        steps.csv                         + per view k the columns view{k}_lateral_offset_m,
                                            view{k}_yaw_offset_rad, view{k}_curvature_expert
        episode.json                      + "recovery": {"views": K, "max_lateral_m": ...}

Row ``i`` of view ``k`` is frame ``views/k/%06d.jpg``, seen from the car's pose of row ``i``
shifted by the offsets in that row, and its label is the expert's command at that pose. Every
other column (time, speed, ...) is the car's. An episode without the ``recovery`` entry has no
views, so datasets recorded before views existed read unchanged (the format version is the
same: the extension is additive, and the per-view columns are ordinary declared extra
columns).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from driving.data.errors import EpisodeFormatError
from driving.data.format import CURVATURE_EXPERT, EPISODE_FILE, frame_name

RECOVERY_KEY = "recovery"
"""Key of ``episode.json`` holding the recovery-view settings (with ``views``: K)."""
VIEWS_DIR = "views"
"""Folder of the views' frame folders (``views/1``, ``views/2`` ...)."""
MAX_VIEWS = 64
"""Most views an episode may declare (a sanity bound of the reader)."""


def lateral_column(view: int) -> str:
    """Column of view ``view``'s lateral offset from the car, m (+ = left)."""
    return f"view{view}_lateral_offset_m"


def yaw_column(view: int) -> str:
    """Column of view ``view``'s yaw offset from the car, rad (+ = left)."""
    return f"view{view}_yaw_offset_rad"


def label_column(view: int, label: str = CURVATURE_EXPERT) -> str:
    """Column of view ``view``'s label (the expert's curvature at its pose, 1/m).

    View 0 is the car's own camera: its label is ``label`` itself.
    """
    if view == 0:
        return label
    if label != CURVATURE_EXPERT:
        raise ValueError(f"recovery views carry only the {CURVATURE_EXPERT!r} label, not {label!r}")
    return f"view{view}_{CURVATURE_EXPERT}"


def view_columns(views: int) -> dict[str, str]:
    """The extra columns of ``views`` views, ``{name: unit}`` (for ``EpisodeWriter``)."""
    out: dict[str, str] = {}
    for k in range(1, views + 1):
        out |= {lateral_column(k): "m", yaw_column(k): "rad", label_column(k): "1/m"}
    return out


def view_dir(episode: Path, view: int) -> Path:
    """Frame folder of view ``view`` (``frames`` for view 0, else ``views/<view>``)."""
    if view == 0:
        return episode / "frames"
    return episode / VIEWS_DIR / str(view)


def views_of(meta: Mapping[str, Any], where: Path | str = EPISODE_FILE) -> int:
    """Number of recovery views an episode declares (0 without a ``recovery`` entry).

    Raises:
        EpisodeFormatError: If the entry is not an object with an integer ``views`` in
            ``[0, MAX_VIEWS]``, naming ``where``.
    """
    entry = meta.get(RECOVERY_KEY)
    if entry is None:
        return 0
    k = entry.get("views") if isinstance(entry, dict) else None
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= MAX_VIEWS:
        raise EpisodeFormatError(
            f"{where}: {RECOVERY_KEY!r} must be an object with an integer 'views' in "
            f"[0, {MAX_VIEWS}], got {entry!r}"
        )
    return k


def check_views(episode: Path, meta: Mapping[str, Any], header: list[str], rows: int) -> int:
    """Checks a finished episode's views: their columns and one frame per row each.

    Returns:
        The number of views K.

    Raises:
        EpisodeFormatError: For a missing column, a missing or extra frame, naming the file.
    """
    k = views_of(meta, episode / EPISODE_FILE)
    missing = [c for c in view_columns(k) if c not in header]
    if missing:
        raise EpisodeFormatError(f"{episode}: {k} recovery views but no columns {missing}")
    expected = [frame_name(i) for i in range(rows)]
    for view in range(1, k + 1):
        folder = view_dir(episode, view)
        names = sorted(os.listdir(folder)) if folder.is_dir() else []
        if names != expected:
            raise EpisodeFormatError(
                f"{folder}: {len(names)} frames of recovery view {view} for {rows} rows"
            )
    return k


def drop_stray_view_frames(episode: Path, meta: Mapping[str, Any], rows: int) -> None:
    """Removes view frames beyond the first ``rows`` (salvage of an interrupted episode)."""
    for view in range(1, views_of(meta, episode / EPISODE_FILE) + 1):
        folder = view_dir(episode, view)
        if not folder.is_dir():
            continue
        for name in os.listdir(folder):
            if not (name.endswith(".jpg") and name[:-4].isdigit() and int(name[:-4]) < rows):
                (folder / name).unlink()


def check_writer_views(
    views: int, metadata: Mapping[str, Any] | None, extra_columns: Mapping[str, str]
) -> int:
    """Checks an ``EpisodeWriter``'s view count against its metadata and columns; returns it.

    Raises:
        ValueError: If the metadata's ``recovery.views`` differs or a view column is missing.
    """
    declared = views_of(metadata or {}, "episode metadata")
    if declared != views:
        raise ValueError(f"writer views={views} but the metadata's recovery says {declared}")
    missing = [c for c in view_columns(views) if c not in extra_columns]
    if missing:
        raise ValueError(f"{views} recovery views need the extra columns {missing}")
    return views


def add_recovery_windows(
    episodes: Sequence[Any], index: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Adds windows of recovery views so that they make ``share`` of all windows.

    Every window of the car's camera stays; ``round(share / (1 - share) * N)`` more are drawn
    (reproducibly for ``seed``) among the windows of episodes that have views, each with one
    of its episode's views 1..K for the whole window.

    Args:
        episodes: The episodes (each with ``views``).
        index: int (N, 2) (episode, first step) of the car's windows.
        share: Share of recovery windows in [0, 1).
        seed: Seed of the draw.

    Returns:
        (index (N + M, 2), view (N + M,)): the car's windows (view 0) then the recovery ones.

    Raises:
        ValueError: If ``share > 0`` and no window's episode has recovery views.
    """
    n = len(index)
    view = np.zeros(n, np.int64)
    if share <= 0 or n == 0:
        return index, view
    counts = np.array([episodes[int(k)].views for k in index[:, 0]], np.int64)  # (N,)
    candidates = np.flatnonzero(counts > 0)
    if candidates.size == 0:
        names = sorted({str(episodes[int(k)].path.parent.parent) for k in index[:, 0]})
        raise ValueError(
            f"recovery_share={share} but no episode of {names} has recovery views "
            "(record them with tools/record.py --recovery-views K)"
        )
    m = round(share / (1.0 - share) * n)
    rng = np.random.default_rng([int(seed), 0x5EC0])
    pick = candidates[rng.integers(0, candidates.size, size=m)]
    views = 1 + (rng.random(m) * counts[pick]).astype(np.int64)  # uniform in 1..K
    return np.concatenate([index, index[pick]]), np.concatenate([view, views])

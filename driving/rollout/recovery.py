"""Recording the builtin simulator's recovery views (``--recovery-views K``).

The env renders them (``sim/builtin/recovery.py``) and hands them over in its info
(``sim.spec.RECOVERY_*``); here they become per-step columns and frames of the episode
format (:mod:`driving.data.views`). Only the builtin simulator has them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from driving.data.views import RECOVERY_KEY, label_column, lateral_column, view_columns, yaw_column
from liquid_drive.errors import LiquidDriveError
from sim import spec


class RecoveryViewsError(LiquidDriveError, ValueError):
    """Recovery views asked of a simulator or env that does not provide them."""


def recovery_options(views: int, max_lateral_m: float, max_yaw_deg: float) -> dict[str, Any]:
    """The builtin env's ``recovery`` option (the fields of ``RecoveryViews``) as plain data."""
    return {"views": int(views), "max_lateral_m": max_lateral_m, "max_yaw_deg": max_yaw_deg}


def recovery_metadata(env: Any) -> dict[str, Any]:
    """``{"recovery": settings}`` of an env whose recovery views are on, for episode.json."""
    config = getattr(env.unwrapped, "config", None)
    recovery = getattr(config, "recovery", None)
    if recovery is None or not getattr(recovery, "views", 0):
        raise RecoveryViewsError(f"{type(env.unwrapped).__name__} renders no recovery views")
    return {RECOVERY_KEY: recovery.to_dict()}


class ViewColumns:
    """Turns an observation's info into the views' row values and frames (``run_episode``).

    Args:
        views: K, the number of views the env renders.
    """

    def __init__(self, views: int) -> None:
        self.views = views
        self.columns = view_columns(views)
        """The extra columns, ``{name: unit}``."""

    def __call__(self, info: Mapping[str, Any]) -> tuple[dict[str, float], np.ndarray]:
        """``({column: value}, uint8 (K, H, W, 3))`` of one observation."""
        try:
            images = info[spec.RECOVERY_IMAGES]  # (K, H, W, 3)
            offsets = np.asarray(info[spec.RECOVERY_OFFSETS], dtype=np.float64)  # (K, 2)
            labels = np.asarray(info[spec.RECOVERY_LABELS], dtype=np.float64)  # (K,)
        except KeyError as e:
            raise RecoveryViewsError(f"the env's info lacks the recovery views' {e}") from None
        if offsets.shape != (self.views, 2) or labels.shape != (self.views,):
            raise RecoveryViewsError(
                f"expected {self.views} recovery views, got offsets {offsets.shape} and "
                f"labels {labels.shape}"
            )
        row: dict[str, float] = {}
        for k in range(self.views):
            row[lateral_column(k + 1)] = float(offsets[k, 0])
            row[yaw_column(k + 1)] = float(offsets[k, 1])
            # float32 like the drivers' actions: a zero-offset view gets the car's label exactly
            row[label_column(k + 1)] = float(np.float32(labels[k]))
        if not all(math.isfinite(v) for v in row.values()):
            raise RecoveryViewsError(f"non-finite recovery view values {row}")
        return row, images

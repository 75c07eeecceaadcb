"""The per-step signals of one rollout as plain arrays, and reading them from disk.

A :class:`RolloutTrack` is what every panel draws: time, predicted and expert command, the
pose, interventions, the route's command (``sim.spec.Command``; follow-lane when the rollout
has none) and (when known) the neuron states and sensory features.
:func:`track_from_episode` builds one from an episode folder in the ``driving.data.episodes``
format (an evaluation's rollout or a recorded demonstration).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from driving.data import episodes as E
from driving.data.format import COMMAND
from driving.viz.layout import VisualizeError

logger = logging.getLogger(__name__)


@dataclass
class RolloutTrack:
    """The per-step signals of one rollout (T steps), as plain arrays."""

    t_s: np.ndarray
    """Simulation time of each step, s, (T,)."""
    curvature_pred: np.ndarray
    """Command the policy output, 1/m, (T,)."""
    curvature_expert: np.ndarray
    """The expert's command on the same observation, 1/m, (T,); NaN where unknown."""
    x_m: np.ndarray
    """Vehicle x in the world frame, m, (T,)."""
    y_m: np.ndarray
    """Vehicle y in the world frame, m, (T,)."""
    yaw_rad: np.ndarray
    """Vehicle yaw, rad, counter-clockwise positive, (T,)."""
    intervention: np.ndarray
    """True on steps where a lane departure was counted and the car was reset, (T,)."""
    states: np.ndarray | None = None
    """Neuron states (T, N) in state order; None for a stateless model."""
    sensory: np.ndarray | None = None
    """Sensory features fed to the core (T, S), if computed; colours the wiring's inputs."""
    title: str = ""
    """Shown on top of the summary figure."""
    command: np.ndarray | None = None
    """The route's command the car saw per step, ``sim.spec.Command`` values, (T,); None
    (a rollout without the column) is follow-lane throughout."""

    def __post_init__(self) -> None:
        self.t_s = np.asarray(self.t_s, dtype=np.float64)
        if self.t_s.ndim != 1 or len(self.t_s) < 1:
            raise VisualizeError(f"t_s must be (T,) with T >= 1, got shape {self.t_s.shape}")
        n = len(self.t_s)
        for name in ("curvature_pred", "curvature_expert", "x_m", "y_m", "yaw_rad"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (n,):
                raise VisualizeError(f"{name} must have shape ({n},), got {arr.shape}")
            setattr(self, name, arr)
        self.command = (
            np.zeros(n, dtype=np.int64)
            if self.command is None
            else np.asarray(self.command).astype(np.int64)
        )
        if self.command.shape != (n,):
            raise VisualizeError(f"command must be ({n},), got {self.command.shape}")
        self.intervention = np.asarray(self.intervention).astype(bool)
        if self.intervention.shape != (n,):
            raise VisualizeError(f"intervention must be ({n},), got {self.intervention.shape}")
        for name in ("states", "sensory"):
            arr = getattr(self, name)
            if arr is None:
                continue
            arr = np.asarray(arr, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] != n:
                raise VisualizeError(f"{name} must be ({n}, units), got {arr.shape}")
            setattr(self, name, arr)

    def __len__(self) -> int:
        return len(self.t_s)

    @property
    def time_s(self) -> np.ndarray:
        """Time since the first step, s."""
        return self.t_s - self.t_s[0]

    def first(self, n: int) -> RolloutTrack:
        """The first ``n`` steps (the track itself when it has no more)."""
        if n >= len(self):
            return self
        cut = {
            f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[:n]
            for f in fields(self)
            if f.name != "title"
        }
        return RolloutTrack(**cut, title=f"{self.title} (first {n} steps)")


def resolve_episode(path: Path, episode: int | None = None) -> Path:
    """The episode folder meant by ``path``: an episode folder, or a dataset/rollout folder.

    Args:
        path: ``<root>/episodes/episode_N``, or ``<root>`` (a dataset or an evaluation's
            rollout folder holding ``meta/info.json``).
        episode: Episode id to take from ``<root>``; None: the first one. Must be None when
            ``path`` is already an episode folder.

    Raises:
        VisualizeError: If nothing there is an episode (the message says what was found).
    """
    path = Path(path)
    if E.EPISODE_NAME_RE.match(path.name) and path.is_dir():
        if episode is not None and int(E.EPISODE_NAME_RE.match(path.name).group(1)) != episode:
            raise VisualizeError(f"{path} is an episode folder itself; drop --episode {episode}")
        return path
    try:
        found = E.list_episodes(path)
    except E.EpisodeFormatError as e:
        raise VisualizeError(f"--rollout {path}: {e}") from e
    if not found:
        raise VisualizeError(f"--rollout {path}: the dataset has no finished episode")
    if episode is None:
        return found[0]
    chosen = E.episode_dir(path, episode)
    if chosen not in found:
        ids = [p.name for p in found[:5]]
        raise VisualizeError(f"--rollout {path}: no episode {episode} (first ones: {ids})")
    return chosen


def neuron_columns(columns: dict[str, np.ndarray]) -> list[str]:
    """Names of the neuron-state columns of a rollout, in state order (``neuron_000`` ...)."""
    names = sorted(c for c in columns if c.startswith(E.NEURON_PREFIX))
    expected = [E.neuron_column(i) for i in range(len(names))]
    if names != expected:
        raise VisualizeError(f"neuron columns are not numbered 0..{len(names) - 1}: {names[:5]}")
    return names


def track_from_episode(episode: Any) -> RolloutTrack:
    """The per-step signals of a ``driving.data.episodes.Episode`` (a rollout or a recording).

    A rollout has ``curvature_pred`` and neuron columns; for a recorded demonstration (no
    prediction) the executed ``curvature_applied`` is drawn as the driver's command and there
    are no states.
    """
    cols = episode.columns
    pred = cols.get(E.CURVATURE_PRED)
    if pred is None:
        logger.info(
            "%s has no %s column: drawing %s", episode.path, E.CURVATURE_PRED, E.CURVATURE_APPLIED
        )
        pred = cols[E.CURVATURE_APPLIED]
    names = neuron_columns(cols)
    states = np.stack([cols[n] for n in names], axis=1) if names else None
    return RolloutTrack(
        t_s=cols[E.T_S],
        curvature_pred=pred,
        curvature_expert=cols[E.CURVATURE_EXPERT],
        x_m=cols[E.X_M],
        y_m=cols[E.Y_M],
        yaw_rad=cols[E.YAW_RAD],
        intervention=cols[E.INTERVENTION],
        states=states,
        command=cols.get(COMMAND),
        title=(
            f"{episode.path.name}: town {episode.town}, weather {episode.weather}, "
            f"{len(episode)} steps, {int(cols[E.INTERVENTION].sum())} interventions"
        ),
    )

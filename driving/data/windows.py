"""Training windows over recorded episodes: a torch ``Dataset``, balanced sampling and splits.

A window is ``T`` consecutive steps of one episode (windows never cross episode boundaries):
its frames, the real timestamps and the time elapsed before each step, the labels and speeds.
The recurrent core integrates over the real elapsed time, so nothing assumes a fixed rate.

Curvature-balanced sampling (most driving is straight): the NCP paper weighted the squared
error by ``w = exp(alpha * |y|)`` normalised by the sum of the weights (the 2020 code used
``alpha = 0.1`` on curvature scaled by 1000, i.e. ``alpha = 100 m`` on curvature in 1/m).
:class:`WindowDataset` returns these per-step weights when ``weight_alpha_m`` is set; the
alternative, :class:`BalancedWindowSampler`, draws windows with probability proportional to
their mean weight (rejection sampling or ``torch.multinomial``) so the loss stays unweighted.

Splits are by episode or by town/weather, never inside an episode (adjacent frames are
nearly identical, so a step-level split would leak).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from driving.data.episodes import (
    COMMAND,
    COMMAND_VALUES,
    CURVATURE_EXPERT,
    INTERVENTION,
    SPEED_MPS,
    STEPS_FILE,
    T_S,
    Episode,
    InvalidDataError,
    load_episodes,
)
from driving.data.views import add_recovery_windows, label_column

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowConfig:
    """How episodes are cut into training windows."""

    window_steps: int = 16
    """T, consecutive steps per window (the NCP paper trained on 16-step subsequences)."""
    stride_steps: int = 8
    """Steps between the starts of consecutive windows of an episode (T = no overlap)."""
    label: str = CURVATURE_EXPERT
    """Column used as the target, normally the expert's clean curvature in 1/m."""
    weight_alpha_m: float | None = None
    """If set, each item carries per-step loss weights exp(alpha * |label|), alpha in m."""
    step_skip_max: int = 1
    """Each step of a window advances 1 to this many recorded steps, drawn per step from torch's
    global generator, so the windows sample the recording at irregular, longer periods (the
    ``rate`` suite's lower rates and jittered frames); 1 = consecutive steps, nothing drawn."""
    recovery_share: float = 0.0
    """Share of the windows taken from a recovery view (:mod:`driving.data.views`), in [0, 1):
    the whole window from one view, its frames and labels; 0 = the car's camera only."""
    recovery_seed: int = 0
    """Seed of the choice of the recovery windows and their views."""
    command_balance: bool = False
    """Multiply each step's weight by the inverse frequency of its route command among the
    dataset's steps (normalised to mean 1 over the steps), so the rare junction commands weigh
    as much in the loss as follow-lane (CIL balanced its branches); off = unchanged weights."""

    def __post_init__(self) -> None:
        if self.window_steps < 1:
            raise ValueError(f"window_steps must be >= 1, got {self.window_steps}")
        if self.stride_steps < 1:
            raise ValueError(f"stride_steps must be >= 1, got {self.stride_steps}")
        if self.step_skip_max < 1:
            raise ValueError(f"step_skip_max must be >= 1, got {self.step_skip_max}")
        if self.weight_alpha_m is not None and not (
            math.isfinite(self.weight_alpha_m) and self.weight_alpha_m >= 0
        ):
            raise ValueError(f"weight_alpha_m must be >= 0 or None, got {self.weight_alpha_m}")
        if not 0.0 <= self.recovery_share < 1.0:
            raise ValueError(f"recovery_share must be in [0, 1), got {self.recovery_share}")


class WindowDataset(Dataset):
    """Windows of ``T`` consecutive steps of recorded episodes.

    Each item is a dict of tensors:

    * ``frames``: uint8 (T, H, W, 3) RGB, the layout of the simulator's ``image``;
    * ``t_s``: float64 (T,) simulation time of each step, s;
    * ``dt_s``: float32 (T,) time elapsed since the previous step, s (for the first step of
      an episode, the episode's first interval);
    * ``label``: float32 (T,) the target column (curvature in 1/m by default);
    * ``speed_mps``: float32 (T,);
    * ``weight``: float32 (T,) ``exp(alpha * |label|)``, or ones without ``weight_alpha_m``,
      times the command's balance weight with ``command_balance``;
    * ``command``: int64 (T,) the route command (``sim.spec.Command``) of each step (a
      recovery view's window takes the car's commands: the route is the same);
    * ``episode``: int64 () index into :attr:`episodes`; ``start``: int64 () first step.

    The dataset holds only the per-step columns in memory and decodes the JPEG frames on
    access, so it pickles cheaply to ``DataLoader`` workers.

    Args:
        episodes: Episodes to cut (from :func:`driving.data.episodes.load_episodes`).
        config: Window length, stride, label column and weighting.
    """

    def __init__(self, episodes: Sequence[Episode], config: WindowConfig | None = None) -> None:
        self.config = config or WindowConfig()
        self.episodes = list(episodes)
        T, stride = self.config.window_steps, self.config.stride_steps
        span = (T - 1) * self.config.step_skip_max + 1  # recorded steps a window may cover
        starts = []
        for k, e in enumerate(self.episodes):
            if self.config.label not in e.columns:
                raise KeyError(f"{e.path}: no column {self.config.label!r} to use as label")
            n = len(e)
            if n < span:
                logger.info("%s: %d steps, shorter than a window of %d: unused", e.path, n, span)
                continue
            s = np.arange(0, n - span + 1, stride)
            s = s[~_crosses_reset(e, s, span)]
            starts.append(np.stack([np.full_like(s, k), s], axis=1))
        self.index = np.concatenate(starts) if starts else np.zeros((0, 2), np.int64)  # (N, 2)
        self.view = np.zeros(len(self.index), np.int64)  # (N,) 0 = the car's own camera
        if self.config.recovery_share > 0:
            self.index, self.view = add_recovery_windows(
                self.episodes, self.index, self.config.recovery_share, self.config.recovery_seed
            )
        shapes = {e.image_shape for e in self.episodes}
        if len(shapes) > 1:
            raise ValueError(f"episodes have different frame shapes: {sorted(shapes)}")
        # Per-episode arrays prepared once: elapsed time with a sensible first value.
        self._dt = []
        for e in self.episodes:
            t = e.columns[T_S]
            dt = np.diff(t, prepend=t[0] - (t[1] - t[0] if len(t) > 1 else 0.0))
            if len(t) > 1 and np.any(dt <= 0):
                bad = int(np.flatnonzero(dt <= 0)[0])
                raise InvalidDataError(e.path / STEPS_FILE, "does not increase", T_S, bad)
            self._dt.append(dt.astype(np.float32))
        self.command_weights = np.ones(len(COMMAND_VALUES))
        """Loss weight of each command value (ones without ``command_balance``)."""
        if self.config.command_balance and self.episodes:
            counts = np.bincount(
                np.concatenate([e.columns[COMMAND] for e in self.episodes]),
                minlength=len(COMMAND_VALUES),
            ).astype(np.float64)
            present = counts > 0
            self.command_weights[present] = counts[present].sum() / (
                present.sum() * counts[present]
            )
            logger.info(
                "command balance: steps per command %s, weights %s",
                counts.astype(int).tolist(),
                np.round(self.command_weights, 3).tolist(),
            )

    @classmethod
    def from_roots(
        cls,
        roots: Path | str | Sequence[Path | str],
        config: WindowConfig | None = None,
        skip_bad: bool = False,
    ) -> WindowDataset:
        """Windows over every finished episode of one or more datasets."""
        return cls(load_episodes(roots, skip_bad=skip_bad), config)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k, s = (int(v) for v in self.index[i])
        e, view = self.episodes[k], int(self.view[i])
        T, skip_max = self.config.window_steps, self.config.step_skip_max
        if skip_max == 1:
            steps = np.arange(s, s + T)  # (T,) recorded step of each window step
            frames = e.view_frames(view, s, s + T) if view else e.frames(s, s + T)
        else:
            skips = torch.randint(1, skip_max + 1, (T - 1,)).numpy()
            steps = s + np.concatenate([[0], np.cumsum(skips)])
            stop = int(steps[-1]) + 1
            frames = (e.view_frames(view, s, stop) if view else e.frames(s, stop))[steps - s]
        t = e.columns[T_S][steps]
        dt = np.concatenate([self._dt[k][s : s + 1], np.diff(t).astype(np.float32)])
        label_name = label_column(view, self.config.label)
        label = e.columns[label_name][steps].astype(np.float32)
        alpha = self.config.weight_alpha_m
        weight = np.exp(alpha * np.abs(label)) if alpha else np.ones_like(label)
        command = e.columns[COMMAND][steps].astype(np.int64)
        weight = weight * self.command_weights[command]
        return {
            "frames": torch.from_numpy(frames),  # (T, H, W, 3) uint8
            "t_s": torch.from_numpy(t),  # (T,) float64
            "dt_s": torch.from_numpy(dt),  # (T,) float32
            "label": torch.from_numpy(label),  # (T,)
            "speed_mps": torch.from_numpy(e.columns[SPEED_MPS][steps].astype(np.float32)),
            "weight": torch.from_numpy(weight.astype(np.float32)),  # (T,)
            "command": torch.from_numpy(command),  # (T,) int64
            "episode": torch.tensor(k, dtype=torch.int64),
            "start": torch.tensor(s, dtype=torch.int64),
        }

    def window_weights(self, alpha_m: float) -> np.ndarray:
        """Mean of ``exp(alpha * |label|)`` over each window: (len(self),) float64."""
        T = self.config.window_steps
        out = np.empty(len(self))
        for j, (k, s) in enumerate(self.index):
            name = label_column(int(self.view[j]), self.config.label)
            y = self.episodes[k].columns[name][s : s + T]
            out[j] = np.exp(alpha_m * np.abs(y)).mean()
        return out


class BalancedWindowSampler(Sampler[int]):
    """Draws window indices with probability proportional to their curvature weight.

    ``method="rejection"`` draws a window uniformly and keeps it with probability
    ``w / max(w)``; ``method="multinomial"`` draws directly from the normalised weights. Both
    sample with replacement and give the same distribution. Each pass (epoch) uses a new
    stream derived from ``seed`` and the pass number.

    Args:
        dataset: The windows to draw from.
        alpha_m: Weight exponent in m (``w = mean exp(alpha * |label|)`` over the window).
        num_samples: Windows per pass (default: ``len(dataset)``).
        seed: Seed of the draws.
        method: ``"rejection"`` or ``"multinomial"``.
    """

    def __init__(
        self,
        dataset: WindowDataset,
        alpha_m: float,
        num_samples: int | None = None,
        seed: int = 0,
        method: str = "rejection",
    ) -> None:
        if method not in ("rejection", "multinomial"):
            raise ValueError(f"method must be 'rejection' or 'multinomial', got {method!r}")
        if len(dataset) == 0:
            raise ValueError("cannot sample from a dataset without windows")
        self.weights = dataset.window_weights(alpha_m)
        self.num_samples = len(dataset) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        self.seed, self.method, self._pass = seed, method, 0

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self._pass])
        self._pass += 1
        if self.method == "multinomial":
            p = self.weights / self.weights.sum()
            yield from (int(i) for i in rng.choice(len(p), size=self.num_samples, p=p))
            return
        accept = self.weights / self.weights.max()
        produced = 0
        while produced < self.num_samples:
            cand = rng.integers(0, len(accept), size=2 * (self.num_samples - produced) + 16)
            keep = cand[rng.random(cand.shape[0]) < accept[cand]]
            for i in keep[: self.num_samples - produced]:
                yield int(i)
            produced += min(len(keep), self.num_samples - produced)


# ---------------------------------------------------------------------------------------------
# Splits


def _crosses_reset(episode: Episode, starts: np.ndarray, span: int) -> np.ndarray:
    """(N,) bool: which windows of ``span`` steps from ``starts`` hold an intervention row.

    At an intervention the car is put back on the lane centre (on-policy recordings, DAgger):
    the frames jump, so no window spans one. Expert recordings have none: nothing is dropped.
    """
    flags = episode.columns.get(INTERVENTION)
    if flags is None or not np.any(flags):
        return np.zeros(len(starts), bool)
    c = np.concatenate([[0], np.cumsum(np.asarray(flags) != 0)])  # (n + 1,) running count
    return c[starts + span] - c[starts] > 0


def split_by_episode(
    episodes: Sequence[Episode], val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Episode], list[Episode]]:
    """Splits whole episodes into (train, validation), reproducibly for a seed.

    Args:
        episodes: Episodes to split.
        val_fraction: Share of episodes for validation in [0, 1); at least one episode goes
            to validation when the share is positive and there are two or more episodes.
        seed: Seed of the shuffle.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(episodes)
    n_val = round(val_fraction * n)
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    val_ids = set(order[:n_val].tolist())
    train = [e for i, e in enumerate(episodes) if i not in val_ids]
    val = [e for i, e in enumerate(episodes) if i in val_ids]
    return train, val


def _split_by(
    episodes: Sequence[Episode], attr: str, held_out: Sequence[str]
) -> tuple[list[Episode], list[Episode]]:
    held = set(held_out)
    present = {getattr(e, attr) for e in episodes}
    absent = sorted(held - present)
    if absent:
        logger.warning("no episode has %s %s (present: %s)", attr, absent, sorted(present))
    train = [e for e in episodes if getattr(e, attr) not in held]
    val = [e for e in episodes if getattr(e, attr) in held]
    return train, val


def split_by_town(
    episodes: Sequence[Episode], held_out_towns: Sequence[str]
) -> tuple[list[Episode], list[Episode]]:
    """(episodes of other towns, episodes of ``held_out_towns``)."""
    return _split_by(episodes, "town", held_out_towns)


def split_by_weather(
    episodes: Sequence[Episode], held_out_weathers: Sequence[str]
) -> tuple[list[Episode], list[Episode]]:
    """(episodes of other weathers, episodes of ``held_out_weathers``)."""
    return _split_by(episodes, "weather", held_out_weathers)

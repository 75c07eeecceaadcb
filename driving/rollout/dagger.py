"""On-policy recording (DAgger): a learned policy drives while the expert labels every frame.

DAgger (Ross et al. 2011) and LBC's on-policy stage (Chen et al. 2019) record the states the
*learner* visits, labelled by the expert, so the next policy learns to recover from its own
mistakes. Here ``tools/record.py --driver CHECKPOINT`` does that:

* The policy's command steers the car, except where the expert was chosen to drive by the
  mixing probability ``beta`` (:class:`MixedDriver`): per ``episode`` (one draw per episode),
  per ``step`` (one draw per control step: the classic DAgger mixture) or per ``event``
  (the expert takes over for stretches of mean length ``beta_event_s``; the share of steps
  it drives is ``beta``). The draws come from their own stream seeded by the recording seed
  and the episode's seed; ``beta`` 0 or 1 draws nothing.
* The label ``curvature_expert`` of every frame is the expert's command at the car's actual
  pose, whoever drives; ``curvature_pred`` holds the policy's command (also where the expert
  drove) and ``policy_drove`` (0/1) who drove the step.
* The env runs in intervention mode: a departure is counted (``intervention``) and the car is
  put back on the lane centre, the route continuing, as in evaluation.
* Steering noise is off by default (the policy's own mistakes move the car off the centre);
  ``--driver-noise`` adds it.

``episode.json`` gets ``driver`` (``expert``, ``policy`` or ``mixed``: who drove the episode by
design), ``dagger`` (checkpoint folder, SHA-256 of its ``model.safetensors``, the mixing
settings) and, at the end, ``policy_steps`` and ``expert_steps``. Every check of the driver
(:func:`check_driver`: it loads strictly, its camera is the recording camera, its first-step
interval matches the control rate) runs before anything is written.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from driving.data.format import CURVATURE_PRED, POLICY_DROVE
from driving.data.writer import EpisodeWriter
from driving.rollout.episode import EpisodeLog, run_episode
from driving.rollout.recovery import ViewColumns
from liquid_drive.errors import LiquidDriveError
from sim.spec import CameraSpec, Driver

if TYPE_CHECKING:  # torch is imported only when a policy drives (expert recording stays light)
    from driving.rollout.policies import LoadedPolicy

BETA_MODES = ("episode", "step", "event")
"""How ``beta`` hands the wheel to the expert: per episode, per control step, in stretches."""
SEED_SALT = 0xDA66E
"""Mixes into the mixing stream's seed, so it is independent of every other draw."""
EXTRA_COLUMNS = {CURVATURE_PRED: "1/m", POLICY_DROVE: "bool"}
"""The per-step columns a DAgger episode adds to the base ones."""


class DaggerError(LiquidDriveError, ValueError):
    """A learned driver that cannot record into this dataset (names the file and values)."""


@dataclass(frozen=True)
class Mixing:
    """How the policy and the expert share the wheel (plain data, picklable)."""

    beta: float = 0.0
    """Probability the expert drives instead of the policy, in [0, 1]."""
    per: str = "episode"
    """One of :data:`BETA_MODES`."""
    event_s: float = 1.0
    """``event`` mode: mean length of an expert stretch, s."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.beta) and 0.0 <= self.beta <= 1.0):
            raise DaggerError(f"beta must be in [0, 1], got {self.beta}")
        if self.per not in BETA_MODES:
            raise DaggerError(f"beta_per must be one of {BETA_MODES}, got {self.per!r}")
        if not (math.isfinite(self.event_s) and self.event_s > 0):
            raise DaggerError(f"beta_event_s must be positive, got {self.event_s}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for ``episode.json``."""
        return {"beta": self.beta, "beta_per": self.per, "beta_event_s": self.event_s}


@dataclass(frozen=True)
class MixedState:
    """The state of a :class:`MixedDriver` after a step."""

    policy: Any
    """The policy's own recurrent state (advanced on every step, whoever drove)."""
    expert: Any
    """The expert's state."""
    expert_drives: bool
    """The expert's command was applied on the last step."""
    policy_command: float
    """The policy's command on the last step, 1/m."""
    expert_command: float
    """The expert's command on the last step (the label), 1/m."""


class MixedDriver:
    """A policy and the expert behind one ``Driver``; both act on every observation.

    The policy runs on every frame (so its recurrent state is current when it takes the wheel
    back) and the expert too (its command is the label). :meth:`label_driver` returns a
    ``Driver`` that hands ``run_episode`` the expert's command of the same observation, so a
    stateful expert is queried once per step.

    Args:
        policy: The learned driver.
        expert: The privileged expert of the env.
        mixing: ``beta`` and its mode.
        dt_s: The control period, s (``event`` mode turns ``event_s`` into steps).
        rng: The mixing stream (drawn only for ``step`` and ``event`` with 0 < beta < 1).
        expert_episode: ``episode`` mode: the expert drives this whole episode.
    """

    def __init__(
        self,
        policy: Driver,
        expert: Driver,
        mixing: Mixing,
        dt_s: float,
        rng: np.random.Generator,
        expert_episode: bool = False,
    ) -> None:
        self.policy, self.expert, self.mixing, self.rng = policy, expert, mixing, rng
        self.expert_episode = expert_episode
        beta = mixing.beta
        # event mode: a two-state Markov chain whose stationary expert share is beta
        self._p_leave = min(1.0, dt_s / mixing.event_s)  # expert -> policy per step
        self._p_enter = min(1.0, self._p_leave * beta / (1.0 - beta)) if beta < 1 else 1.0
        self._last: MixedState | None = None

    def reset(self) -> MixedState:
        """Both drivers' initial states; nobody has driven yet."""
        self._last = None
        return MixedState(self.policy.reset(), self.expert.reset(), False, 0.0, 0.0)

    def _expert_drives(self, previous: bool) -> bool:
        beta, per = self.mixing.beta, self.mixing.per
        if per == "episode":
            return self.expert_episode
        if beta <= 0.0 or beta >= 1.0:
            return beta >= 1.0
        if per == "step":
            return bool(self.rng.random() < beta)
        p = (1.0 - self._p_leave) if previous else self._p_enter
        return bool(self.rng.random() < p)

    def act(self, obs: Any, state: MixedState) -> tuple[np.ndarray, MixedState]:
        """Both drivers act on ``obs``; returns the command of the one that drives."""
        policy_action, policy_state = self.policy.act(obs, state.policy)
        expert_action, expert_state = self.expert.act(obs, state.expert)
        expert_drives = self._expert_drives(state.expert_drives)
        p = float(np.asarray(policy_action, dtype=np.float32).reshape(-1)[0])
        e = float(np.asarray(expert_action, dtype=np.float32).reshape(-1)[0])
        new = MixedState(policy_state, expert_state, expert_drives, p, e)
        self._last = new
        action = np.array([e if expert_drives else p], dtype=np.float32)
        return action, new

    def label_driver(self) -> Driver:
        """A ``Driver`` returning the expert's command of the observation just acted on."""
        return _LabelTap(self)

    @staticmethod
    def step_columns(state: MixedState) -> dict[str, float]:
        """The extra columns of a step: the policy's command and who drove."""
        return {CURVATURE_PRED: state.policy_command, POLICY_DROVE: float(not state.expert_drives)}


class _LabelTap:
    """The label driver of a :class:`MixedDriver` (``run_episode`` calls it after ``act``)."""

    def __init__(self, mixed: MixedDriver) -> None:
        self.mixed = mixed

    def reset(self) -> None:
        return None

    def act(self, obs: Any, state: None) -> tuple[np.ndarray, None]:
        last = self.mixed._last
        if last is None:
            raise RuntimeError("the label is read after the mixed driver acted on the frame")
        return np.array([last.expert_command], dtype=np.float32), None


class _CountingWriter(EpisodeWriter):
    """An :class:`EpisodeWriter` that adds ``policy_steps`` and ``expert_steps`` at the end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy_steps = 0

    def write_step(
        self, image: np.ndarray, row: Mapping[str, Any], views: np.ndarray | None = None
    ) -> None:
        super().write_step(image, row, views)
        self.policy_steps += int(bool(row[POLICY_DROVE]))

    def finish(self, summary: Mapping[str, Any] | None = None) -> Path:
        counts = {
            "policy_steps": self.policy_steps,
            "expert_steps": self.num_steps - self.policy_steps,
        }
        return super().finish({**dict(summary or {}), **counts})


# ---------------------------------------------------------------------------------------------
# Checks and loading


def model_sha256(checkpoint: Path) -> str:
    """SHA-256 of a checkpoint folder's ``model.safetensors``."""
    from driving.model.checkpoint import MODEL_FILE

    h = hashlib.sha256()
    with open(Path(checkpoint) / MODEL_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_driver(
    driver: Path, camera: CameraSpec, control_rate_hz: float, dataset: Path
) -> LoadedPolicy:
    """Loads the driver's checkpoint strictly and checks it suits the recording.

    Args:
        driver: A checkpoint folder or a training run folder (its ``best/``).
        camera: The recording camera (the probe env's).
        control_rate_hz: The recording control rate, Hz.
        dataset: The dataset folder (named in the messages).

    Returns:
        The loaded policy.

    Raises:
        DaggerError: If the checkpoint does not load, records another camera, or assumes
            another first-step interval than ``1 / control_rate_hz``.
    """
    from driving.rollout.policies import CameraMismatchError, check_camera, load_driving_policy

    try:
        loaded = load_driving_policy(driver)
    except LiquidDriveError as e:
        raise DaggerError(f"--driver {driver}: {e}") from e
    try:
        check_camera(loaded, camera, warn=True)
    except CameraMismatchError as e:
        raise DaggerError(
            f"--driver {loaded.checkpoint} was trained with the camera "
            f"{None if loaded.camera is None else loaded.camera.to_dict()}, but {dataset} is "
            f"recorded with the camera {camera.to_dict()}: record with the driver's camera "
            f"({e})"
        ) from e
    dt_s = loaded.policy.config.first_step_dt_s
    if not math.isclose(dt_s, 1.0 / control_rate_hz, rel_tol=1e-6):
        raise DaggerError(
            f"--driver {loaded.checkpoint} assumes {dt_s} s before an episode's first frame "
            f"(policy.first_step_dt_s), but the recording runs at {control_rate_hz} Hz "
            f"({1.0 / control_rate_hz:.6g} s): record at the driver's control rate"
        )
    return loaded


def load_driver(driver: Path) -> LoadedPolicy:
    """Loads the driving policy in a recording process, with one torch thread.

    One intra-op thread, as evaluation workers use: a single frame's inference gains nothing
    from more, and on a loaded machine several threads ran the recording three times slower.
    """
    import torch

    from driving.rollout.policies import load_driving_policy

    torch.set_num_threads(1)
    return load_driving_policy(driver)


def driver_meta(loaded: LoadedPolicy, mixing: Mixing, noise: bool) -> dict[str, Any]:
    """The ``dagger`` entry of ``episode.json``."""
    return {
        "checkpoint": str(Path(loaded.checkpoint).resolve()),
        "model_sha256": model_sha256(loaded.checkpoint),
        **mixing.to_dict(),
        "noise": noise,
    }


# ---------------------------------------------------------------------------------------------
# One episode


def record_driven_episode(
    env: Any,
    expert: Driver,
    policy: Driver,
    *,
    root: Path,
    meta: Mapping[str, Any],
    mixing: Mixing,
    mixing_seed: tuple[int, int],
    seed: int,
    options: Mapping[str, Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    views: ViewColumns | None = None,
) -> EpisodeLog:
    """Drives one episode with the policy (mixed with the expert) and writes it into ``root``.

    Args:
        env: The env (in intervention mode for recovery at a departure).
        expert: The env's privileged expert (labels every frame).
        policy: The learned driver.
        root: The dataset folder.
        meta: ``episode.json`` facts; ``driver`` is set here (``expert``, ``policy`` or
            ``mixed``, by design of the mixing).
        mixing: ``beta`` and its mode.
        mixing_seed: Seeds the mixing stream (recording seed, episode seed).
        seed: The env reset seed.
        options: The env reset options (start offsets).
        should_stop: Polled every step (outcome ``stopped``).
        on_step: Progress callback of ``run_episode``.
        views: The recovery views of each observation (the env renders them around the pose
            the policy drove to, each labelled with the expert's command at its own pose),
            None for none.

    Returns:
        The episode's log (``path`` is the finished folder).
    """
    import torch

    rng = np.random.default_rng([*mixing_seed, SEED_SALT])
    expert_episode = False
    if mixing.per == "episode":
        expert_episode = mixing.beta >= 1.0 or (mixing.beta > 0.0 and rng.random() < mixing.beta)
    if expert_episode or mixing.beta >= 1.0:
        who = "expert"
    else:
        who = "policy" if mixing.beta <= 0.0 or mixing.per == "episode" else "mixed"
    dt_s = 1.0 / float(env.unwrapped.control_rate_hz)
    mixed = MixedDriver(policy, expert, mixing, dt_s, rng, expert_episode=expert_episode)
    extra = EXTRA_COLUMNS | (views.columns if views is not None else {})
    writer = _CountingWriter(
        root, {**dict(meta), "driver": who}, extra_columns=extra, views=views.views if views else 0
    )
    with writer, torch.inference_mode():
        return run_episode(
            env,
            mixed,
            seed=seed,
            options=options,
            writer=writer,
            label_driver=mixed.label_driver(),
            step_columns=MixedDriver.step_columns,
            should_stop=should_stop,
            on_step=on_step,
            step_views=views,
        )

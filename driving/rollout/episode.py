"""One closed-loop episode, shared by recording and evaluation.

A driver is the contract's ``sim.spec.Driver``: ``reset() -> state`` and ``act(obs, state) ->
(action, state)``, with the recurrent state passed explicitly, so neuron traces are simply the
returned states. The expert, ``SteeringPolicy`` and ``OnnxPolicy`` all satisfy it.

:func:`run_episode` drives one episode with a driver, for recording and evaluation alike, and
returns an :class:`EpisodeLog`; given an :class:`~driving.data.episodes.EpisodeWriter` it also
writes the episode in the dataset format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from driving.data.episodes import (
    COLLISION,
    COMMAND,
    CURVATURE_APPLIED,
    CURVATURE_EXPERT,
    CURVATURE_PRED,
    HEADING_ERROR_RAD,
    INTERVENTION,
    JUNCTION,
    LANE_HALF_WIDTH_M,
    LATERAL_OFFSET_M,
    NOISE_ACTIVE,
    PROGRESS_M,
    ROAD_CURVATURE,
    SPEED_MPS,
    T_S,
    X_M,
    Y_M,
    YAW_RAD,
    EpisodeWriter,
)
from liquid_drive.errors import LiquidDriveError
from sim import spec
from sim.spec import Driver, Observation

ROUTE_END_TOLERANCE_M = 1.0
"""A truncated episode within this distance of the route end counts as ``route_complete``, m."""

OUTCOMES = ("route_complete", "time_limit", "lane_departure", "collision", "max_steps", "stopped")
"""Possible :attr:`EpisodeLog.outcome` values."""


class RolloutError(LiquidDriveError, RuntimeError):
    """An env or driver that breaks the contract during an episode (names what was wrong)."""


@dataclass
class EpisodeLog:
    """What happened in one episode: per-step columns (no frames) and a summary."""

    columns: dict[str, np.ndarray]
    """Per-step columns (names from ``driving.data.episodes``), each (N,)."""
    outcome: str
    """One of :data:`OUTCOMES`."""
    terminated: bool
    """The env ended the episode by a lane departure or collision."""
    truncated: bool
    """The env ended the episode at the route end or time limit."""
    num_steps: int
    """Number of control steps N."""
    duration_s: float
    """Simulation time from the first observation to the one after the last step, s."""
    distance_m: float
    """Route arc length covered (progress after the last step), m."""
    route_length_m: float
    """Length of the route the episode was asked to drive, m."""
    interventions: int
    """Steps whose intervention flag was set (intervention mode)."""
    collisions: int
    """Steps with a collision."""
    noise_steps: int
    """Steps during which injected steering noise was active."""
    town: str
    """Town name from the env info."""
    weather: str
    """Weather name from the env info."""
    seed: int
    """The reset seed."""
    target_speed_mps: float | None = None
    """Cruise speed of the episode, m/s, when the env reports it (info ``target_speed_mps``)."""
    path: Path | None = None
    """The finished episode folder when a writer was given."""
    world_factors: dict[str, Any] | None = None
    """The randomised world's drawn factors (reset info ``world_factors``), None when off."""
    route_commands: tuple[int, ...] = ()
    """The route's junction commands in order (reset info ``route_commands``, ``sim.spec.Command``
    values; empty for a route without junctions); the ``junction`` column indexes it."""

    def summary(self) -> dict[str, Any]:
        """Plain-JSON summary (everything except the columns and path)."""
        return {
            "outcome": self.outcome,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "num_steps": self.num_steps,
            "duration_s": self.duration_s,
            "distance_m": self.distance_m,
            "route_length_m": self.route_length_m,
            "interventions": self.interventions,
            "collisions": self.collisions,
            "noise_steps": self.noise_steps,
            "town": self.town,
            "weather": self.weather,
            "seed": self.seed,
            "target_speed_mps": self.target_speed_mps,
            "route_commands": list(self.route_commands),
        } | ({"world_factors": self.world_factors} if self.world_factors is not None else {})


def _scalar(value: Any, what: str) -> float:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size != 1 or not np.isfinite(arr[0]):
        raise RolloutError(f"{what} must be one finite number, got {value!r}")
    return float(arr[0])


def _info(info: Mapping[str, Any], key: str) -> Any:
    try:
        return info[key]
    except KeyError:
        raise RolloutError(
            f"env info lacks {key!r} (the sim contract requires every INFO_* key on every "
            f"step); it has {sorted(info)}"
        ) from None


def _command(obs: Mapping[str, Any]) -> spec.Command:
    if spec.COMMAND not in obs:
        raise RolloutError(f"observation lacks {spec.COMMAND!r}; it has {sorted(obs)}")
    try:
        return spec.parse_command(obs[spec.COMMAND])
    except spec.ContractError as e:
        raise RolloutError(f"observation {spec.COMMAND!r}: {e}") from e


def _route_commands(value: Any) -> tuple[int, ...]:
    try:
        return tuple(int(spec.parse_command(c)) for c in value)
    except (TypeError, spec.ContractError) as e:
        raise RolloutError(
            f"reset info {spec.RESET_INFO_ROUTE_COMMANDS!r} must be a sequence of commands, "
            f"got {value!r} ({e})"
        ) from e


def _junction(info: Mapping[str, Any], num_junctions: int) -> int:
    value = _info(info, spec.INFO_JUNCTION)
    junction = int(_scalar(value, f"info {spec.INFO_JUNCTION!r}"))
    if junction != value or not -1 <= junction < num_junctions:
        raise RolloutError(
            f"info {spec.INFO_JUNCTION!r} is {value!r}: not -1 or an index of the route's "
            f"{num_junctions} junctions"
        )
    return junction


def run_episode(
    env: Any,
    driver: Driver,
    *,
    seed: int,
    options: Mapping[str, Any] | None = None,
    max_steps: int | None = None,
    writer: EpisodeWriter | None = None,
    label_driver: Driver | None = None,
    step_columns: Callable[[Any], Mapping[str, float]] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    step_views: Callable[[Mapping[str, Any]], tuple[Mapping[str, float], np.ndarray]] | None = None,
) -> EpisodeLog:
    """Drives one episode with ``driver`` and logs (and optionally writes) every step.

    Row ``i`` holds observation ``i`` (time, speed, frame), the ground truth at that moment
    (offset, heading error, road curvature, pose, progress), the commands decided on it and
    what happened during the step (executed curvature, noise, intervention, collision).

    Args:
        env: A gymnasium env following ``sim/spec.py`` (possibly noise-wrapped).
        driver: Steers the car (the expert when recording, a policy when evaluating).
        seed: Passed to ``env.reset(seed=...)``.
        options: Passed to ``env.reset(options=...)`` (start offset, heading).
        max_steps: Stop after this many steps (outcome ``max_steps``); None = env decides.
        writer: If given, each step's frame and row go to it and it is finished at the end.
            It must be created with the extra columns this call produces: ``curvature_pred``
            (1/m) when ``label_driver`` is given, plus the keys of ``step_columns``.
        label_driver: Queried on every observation for the label ``curvature_expert`` while
            ``driver`` steers; ``driver``'s command then goes to ``curvature_pred``. Without
            it the label is ``driver``'s own (clean) command.
        step_columns: ``f(driver_state) -> {column: value}`` called after each ``act`` with
            the new state (neuron states for rollouts).
        should_stop: Polled every step; True ends the episode cleanly (outcome ``stopped``).
        on_step: ``f(steps_done, progress_m)`` called after every step (progress bars).
        step_views: ``f(info) -> ({column: value}, uint8 (K, H, W, 3) frames)``, the
            recovery views of each observation's info (:mod:`driving.rollout.recovery`):
            their columns join the row and their frames go to ``writer.write_step``.

    Returns:
        The :class:`EpisodeLog`; ``path`` is the finished folder when ``writer`` was given.

    Raises:
        RolloutError: If the env's info lacks a contract key or an action is not a number.
            The writer's folder then stays ``.partial``.
    """
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    obs, info = env.reset(seed=seed, options=dict(options) if options else None)
    target_speed = info.get(spec.INFO_TARGET_SPEED_MPS)
    world_factors = info.get(spec.RESET_INFO_WORLD_FACTORS)
    route_commands = _route_commands(info.get(spec.RESET_INFO_ROUTE_COMMANDS, ()))
    state = driver.reset()
    label_state = label_driver.reset() if label_driver is not None else None
    rows: list[dict[str, float]] = []
    t0 = _scalar(obs["t_s"], "obs['t_s']")
    terminated = truncated = stopped = False
    try:
        while True:
            action, state = driver.act(obs, state)
            command = _scalar(action, "the driver's action")
            if label_driver is not None:
                label_action, label_state = label_driver.act(obs, label_state)
                label = _scalar(label_action, "the label driver's action")
            else:
                label = command
            x_m, y_m, yaw_rad = (float(v) for v in _info(info, spec.INFO_POSE))
            row = {
                T_S: _scalar(obs["t_s"], "obs['t_s']"),
                SPEED_MPS: _scalar(obs["speed_mps"], "obs['speed_mps']"),
                CURVATURE_EXPERT: label,
                ROAD_CURVATURE: float(_info(info, spec.INFO_ROAD_CURVATURE)),
                LATERAL_OFFSET_M: float(_info(info, spec.INFO_LATERAL_OFFSET_M)),
                HEADING_ERROR_RAD: float(_info(info, spec.INFO_HEADING_ERROR_RAD)),
                LANE_HALF_WIDTH_M: float(_info(info, spec.INFO_LANE_HALF_WIDTH_M)),
                X_M: x_m,
                Y_M: y_m,
                YAW_RAD: yaw_rad,
                PROGRESS_M: float(_info(info, spec.INFO_PROGRESS_M)),
                COMMAND: int(_command(obs)),
                JUNCTION: _junction(info, len(route_commands)),
            }
            if label_driver is not None:
                row[CURVATURE_PRED] = command
            if step_columns is not None:
                row.update({k: float(v) for k, v in step_columns(state).items()})
            image = obs["image"]
            views = step_views(info) if step_views is not None else None
            if views is not None:
                row.update(views[0])
            step_action = np.asarray([command], dtype=np.float32)
            obs, _reward, terminated, truncated, info = env.step(step_action)
            row[CURVATURE_APPLIED] = float(_info(info, spec.INFO_CURVATURE_APPLIED))
            row[NOISE_ACTIVE] = bool(_info(info, spec.INFO_NOISE_ACTIVE))
            row[INTERVENTION] = bool(_info(info, spec.INFO_INTERVENTION))
            row[COLLISION] = bool(_info(info, spec.INFO_COLLISION))
            rows.append(row)
            if writer is not None and views is not None:
                writer.write_step(image, row, views[1])
            elif writer is not None:
                writer.write_step(image, row)
            if on_step is not None:
                on_step(len(rows), float(_info(info, spec.INFO_PROGRESS_M)))
            if terminated or truncated:
                break
            if max_steps is not None and len(rows) >= max_steps:
                break
            if should_stop is not None and should_stop():
                stopped = True
                break
    except BaseException:
        if writer is not None:
            writer.close()  # stays .partial: salvageable, never read as finished
        raise

    n = len(rows)
    columns = {name: np.array([r[name] for r in rows]) for name in rows[0]}
    for name in (NOISE_ACTIVE, INTERVENTION, COLLISION):
        columns[name] = columns[name].astype(bool)
    distance_m = float(_info(info, spec.INFO_PROGRESS_M))
    route_length_m = float(_info(info, spec.INFO_ROUTE_LENGTH_M))
    if terminated:
        outcome = "collision" if bool(_info(info, spec.INFO_COLLISION)) else "lane_departure"
    elif truncated:
        near_end = distance_m >= route_length_m - ROUTE_END_TOLERANCE_M
        outcome = "route_complete" if near_end else "time_limit"
    else:
        outcome = "stopped" if stopped else "max_steps"
    log = EpisodeLog(
        columns=columns,
        outcome=outcome,
        terminated=bool(terminated),
        truncated=bool(truncated),
        num_steps=n,
        duration_s=_scalar(obs["t_s"], "obs['t_s']") - t0,
        distance_m=distance_m,
        route_length_m=route_length_m,
        interventions=int(columns[INTERVENTION].sum()),
        collisions=int(columns[COLLISION].sum()),
        noise_steps=int(columns[NOISE_ACTIVE].sum()),
        town=str(_info(info, spec.INFO_TOWN)),
        weather=str(_info(info, spec.INFO_WEATHER)),
        seed=int(seed),
        target_speed_mps=None if target_speed is None else float(target_speed),
        world_factors=world_factors,
        route_commands=route_commands,
    )
    if writer is not None:
        log.path = writer.finish(log.summary())
    return log


__all__ = ["OUTCOMES", "Driver", "EpisodeLog", "Observation", "RolloutError", "run_episode"]

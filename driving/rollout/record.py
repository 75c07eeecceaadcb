"""Recording expert demonstrations into an episode dataset (``driving/data/episodes.py``).

The privileged expert drives; by default steering noise is injected for a share of the time
(CIL practice): the car executes the noisy command, so the data shows recoveries, while the
label ``curvature_expert`` stays the expert's clean command (``curvature_applied`` holds what
the car did). Towns and weathers default to the simulator's training split
(``sim.split(sim)``); every episode gets a fresh road (seed), target speed, start offset and
heading offset.

:func:`record` validates the whole request first (options, town and weather names, the
environment options through a probe env, an existing dataset's format, simulator, camera and
control rate) and writes nothing until all of it passed. An existing dataset is appended to
with new episode ids. Each episode is written step by step into ``episode_N.partial/`` and
renamed when done. The episodes run through :mod:`driving.rollout.runner` (here or in
``workers`` processes that die with this one): Ctrl-C or SIGTERM ends the episodes in progress
cleanly (outcome ``stopped``); a hard kill leaves them ``.partial`` (never read; see
``tools/inspect_dataset.py --salvage``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import sim
from driving.data import episodes as ep
from driving.data.format import POLICY_DROVE
from driving.rollout.dagger import (
    DaggerError,
    check_driver,
    driver_meta,
    load_driver,
    record_driven_episode,
)
from driving.rollout.episode import run_episode
from driving.rollout.randomize import randomize_option
from driving.rollout.record_config import (
    RecordConfig,
    RecordError,
    RecordJob,
    RecordSummary,
    check_timing,
)
from driving.rollout.recovery import ViewColumns, recovery_metadata, recovery_options
from driving.rollout.runner import RunnerConfig, TaskContext, run_tasks
from sim.spec import CameraSpec
from sim.wrappers import NoiseInjection

if TYPE_CHECKING:
    from driving.rollout.policies import LoadedPolicy

logger = logging.getLogger(__name__)

PROGRESS_EVERY_STEPS = 50
"""Workers report progress to the parent every this many steps."""
RATE_STREAM = 1
"""Third word of the seed of the per-episode control-rate draws (a stream of their own, so
the episode plan's draws are the same with and without ``control_rate_range_hz``)."""


# ---------------------------------------------------------------------------------------------
# The simulator side


def resolve_names(cfg: RecordConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The towns and weathers to cycle through (default: the simulator's training split).

    Raises:
        sim.spec.ContractError: For a name the simulator does not have.
    """
    split = sim.split(cfg.sim)
    towns = tuple(cfg.towns or split.train_towns)
    weathers = tuple(cfg.weathers or split.train_weathers)
    split.check(towns, weathers)  # CARLA accepts any map/preset name; the server checks them
    return towns, weathers


def make_env(
    cfg: RecordConfig, town: str, weather: str, control_rate_hz: float | None = None
) -> Any:
    """The env of one (town, weather) and rate (default ``cfg``'s), noise-wrapped if ``noise``."""
    kwargs: dict[str, Any] = {
        "town": town,
        "weather": weather,
        "camera": cfg.camera,
        "control_rate_hz": cfg.control_rate_hz if control_rate_hz is None else control_rate_hz,
        "max_time_s": cfg.episode_s,
    }
    if cfg.frame_time_jitter > 0:
        kwargs["frame_time_jitter"] = cfg.frame_time_jitter
    if cfg.target_speed_range_mps is not None:
        kwargs["target_speed_range_mps"] = tuple(cfg.target_speed_range_mps)
    if cfg.driver is not None:
        kwargs["intervention_mode"] = True  # a departure: counted, the car put back on the lane
    if cfg.randomize:
        kwargs["randomize"] = randomize_option(cfg.randomize_groups, cfg.randomize_camera_range)
    if cfg.sim == "carla":
        kwargs |= {"host": cfg.host, "port": cfg.port}  # CARLA plans its own route length
    else:
        # The route outlasts the episode, so episodes end at the time limit, not the route end.
        hi = cfg.target_speed_range_mps[1] if cfg.target_speed_range_mps else 25.0
        kwargs["route_length_m"] = float(min(max(100.0, 1.1 * hi * cfg.episode_s + 50), 1e5))
    if cfg.recovery_views:
        kwargs["recovery"] = recovery_options(
            cfg.recovery_views, cfg.recovery_max_lateral_m, cfg.recovery_max_yaw_deg
        )
    env = sim.make_env(cfg.sim, **kwargs)
    noise = cfg.noise and (cfg.driver is None or cfg.driver_noise)
    if noise and cfg.noise_share > 0 and cfg.noise_amplitude_per_m > 0:
        try:
            env = NoiseInjection(
                env,
                share=cfg.noise_share,
                amplitude_per_m=cfg.noise_amplitude_per_m,
                kind=cfg.noise_kind,
            )
        except BaseException:
            env.close()
            raise
    return env


class _EnvCache:
    """Keeps the few most recent (town, weather) envs of a worker alive."""

    def __init__(self, cfg: RecordConfig) -> None:
        # One CARLA server serves one client at a time: keep a single env there.
        self.cfg, self.size, self.envs = cfg, (1 if cfg.sim == "carla" else 2), {}

    def get(self, town: str, weather: str, control_rate_hz: float | None = None) -> Any:
        key = (town, weather, control_rate_hz)
        if key not in self.envs:
            if len(self.envs) >= self.size:
                oldest = next(iter(self.envs))
                self.envs.pop(oldest).close()
            self.envs[key] = make_env(self.cfg, town, weather, control_rate_hz)
        else:
            self.envs[key] = self.envs.pop(key)  # most recent last
        return self.envs[key]

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
        self.envs.clear()


def record_episode(
    cfg: RecordConfig,
    job: RecordJob,
    env: Any,
    should_stop: Any = None,
    on_step: Any = None,
    policy: LoadedPolicy | None = None,
) -> dict[str, Any]:
    """Drives one planned episode with the expert (or ``policy``) and writes it."""
    expert = sim.make_expert(env)
    meta = {
        "sim": cfg.sim,
        "town": job.town,
        "weather": job.weather,
        "seed": job.seed,
        "start_offset_m": job.start_offset_m,
        "start_heading_rad": job.start_heading_rad,
        "target_speed_range_mps": cfg.target_speed_range_mps,
        "episode_s": cfg.episode_s,
        "noise": {
            "enabled": cfg.noise and (cfg.driver is None or cfg.driver_noise),
            "share": cfg.noise_share,
            "amplitude_per_m": cfg.noise_amplitude_per_m,
            "kind": cfg.noise_kind,
        },
        "driver": "expert",
        "record_seed": cfg.seed,
    }
    if cfg.varies_time:  # only then, so that default episodes stay byte-identical
        meta["control_rate_hz"] = env.unwrapped.control_rate_hz
        meta["control_rate_range_hz"] = cfg.control_rate_range_hz
        meta["frame_time_jitter"] = cfg.frame_time_jitter
    if cfg.randomize:
        meta["randomize_groups"] = list(cfg.randomize_groups)
        if cfg.randomize_camera_range is not None:
            meta["randomize_camera_range"] = list(cfg.randomize_camera_range)
    options = {"start_offset_m": job.start_offset_m, "start_heading_rad": job.start_heading_rad}
    views = ViewColumns(cfg.recovery_views) if cfg.recovery_views else None
    if views is not None:
        meta |= recovery_metadata(env)
    if policy is not None:  # DAgger: driving/rollout/dagger.py
        meta["dagger"] = driver_meta(policy, cfg.mixing, cfg.driver_noise)
        log = record_driven_episode(
            env, expert, policy.policy, root=cfg.out, meta=meta, mixing=cfg.mixing,
            mixing_seed=(cfg.seed, job.seed), seed=job.seed, options=options,
            should_stop=should_stop, on_step=on_step, views=views,
        )  # fmt: skip
    else:
        with ep.EpisodeWriter(
            cfg.out, meta, views.columns if views else None, views=cfg.recovery_views
        ) as writer:
            log = run_episode(
                env,
                expert,
                seed=job.seed,
                options=options,
                writer=writer,
                should_stop=should_stop,
                on_step=on_step,
                step_views=views,
            )
    t = log.columns[ep.T_S]
    return {
        "path": str(log.path),
        "num_steps": log.num_steps,
        "sim_s": log.duration_s if log.duration_s > 0 else float(t[-1] - t[0]),
        "distance_m": log.distance_m,
        "noise_steps": log.noise_steps,
        "town": job.town,
        "weather": job.weather,
        "outcome": log.outcome,
        "policy_steps": int(log.columns[POLICY_DROVE].sum()) if policy is not None else 0,
    }


# ---------------------------------------------------------------------------------------------
# Planning and the worker


def plan(cfg: RecordConfig, first_id: int) -> Any:
    """An endless stream of episode jobs, reproducible for (seed, first free episode id)."""
    towns, weathers = resolve_names(cfg)
    combos = [(t, w) for w in weathers for t in towns]
    rng = np.random.default_rng([cfg.seed, first_id])
    rates = cfg.control_rate_range_hz
    rate_rng = np.random.default_rng([cfg.seed, first_id, RATE_STREAM])
    number = 0
    while True:
        order = rng.permutation(len(combos))  # every combination once per round
        for k in order:
            town, weather = combos[k]
            rate = None if rates is None else float(rate_rng.uniform(*rates))
            yield RecordJob(
                number=number,
                town=town,
                weather=weather,
                seed=int(rng.integers(0, 2**31 - 1)),
                start_offset_m=float(rng.uniform(-1, 1) * cfg.start_offset_max_m),
                start_heading_rad=float(rng.uniform(-1, 1) * cfg.start_heading_max_rad),
                control_rate_hz=rate,
            )
            number += 1


class RecordWorker:
    """Records jobs in one process, keeping its recent envs between episodes."""

    def __init__(self, cfg: RecordConfig) -> None:
        self.cfg, self.envs = cfg, _EnvCache(cfg)
        self.policy: LoadedPolicy | None = None  # --driver: loaded once per process

    def run(self, job: RecordJob, context: TaskContext) -> dict[str, Any]:
        """Records one episode; reports ``(frames, metres)`` every few steps and at the end."""
        sent = [0, 0.0]

        def on_step(k: int, progress_m: float) -> None:
            if k % PROGRESS_EVERY_STEPS == 0:
                context.report((k - sent[0], progress_m - sent[1]))
                sent[:] = [k, progress_m]

        env = self.envs.get(job.town, job.weather, job.control_rate_hz)
        if self.cfg.driver is not None and self.policy is None:
            self.policy = load_driver(self.cfg.driver)  # torch: imported only for --driver
        result = record_episode(self.cfg, job, env, context.should_stop, on_step, self.policy)
        context.report((result["num_steps"] - sent[0], result["distance_m"] - sent[1]))
        return result

    def close(self) -> None:
        """Closes the envs."""
        self.envs.close()


@dataclass(frozen=True)
class RecordWorkerFactory:
    """Builds a :class:`RecordWorker` in each process (picklable)."""

    cfg: RecordConfig

    def __call__(self) -> RecordWorker:
        """A new worker (called once in each process)."""
        return RecordWorker(self.cfg)


def _dataset_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


def dataset_info(cfg: RecordConfig) -> ep.DatasetInfo:
    """Validates the environment options with a probe env and returns the dataset's info.

    The probe is the env of the first town and weather, built with every option (and closed
    at once), so a bad option fails here, before anything is written. The camera and control
    rate come from its contract properties.
    """
    towns, weathers = resolve_names(cfg)
    for town in towns[1:] if cfg.recovery_views else ():  # the views' lane check is per town
        make_env(cfg, town, weathers[0]).close()
    env = make_env(cfg, towns[0], weathers[0])
    try:
        camera, rate_hz = env.unwrapped.camera, env.unwrapped.control_rate_hz
    finally:
        env.close()
    try:
        return ep.DatasetInfo(
            sim=cfg.sim,
            camera=camera.to_dict(),
            control_rate_hz=rate_hz,
            jpeg_quality=cfg.jpeg_quality,
        )
    except ValueError as e:
        raise RecordError(str(e)) from e


def record(cfg: RecordConfig) -> RecordSummary:
    """Records expert episodes into ``cfg.out`` (created or appended to).

    Returns:
        The :class:`RecordSummary` of this run (plus the dataset's totals).

    Raises:
        RecordError: For a control rate outside the simulator's range or a bad frame-time
            jitter (nothing written).
        sim.spec.ContractError: For an unknown town or weather (nothing written).
        liquid_drive.errors.LiquidDriveError: For an environment option the simulator refuses
            (nothing written).
        driving.data.episodes.DatasetMismatchError: If ``cfg.out`` holds a dataset of another
            format, simulator, camera or control rate.
        driving.data.episodes.NotADatasetError: If ``cfg.out`` is a non-empty non-dataset folder.
        driving.rollout.runner.RunnerError: If recording an episode failed (with the
            worker's traceback).
    """
    check_timing(cfg)
    info = dataset_info(cfg)
    if cfg.driver is not None:
        try:
            check_driver(
                cfg.driver, CameraSpec.from_dict(info.camera), info.control_rate_hz, cfg.out
            )
        except DaggerError as e:
            raise RecordError(str(e)) from e
    ep.create_or_open_dataset(cfg.out, info)
    jobs = plan(cfg, ep.next_episode_index(cfg.out))
    mean_hz = (
        cfg.control_rate_hz
        if cfg.control_rate_range_hz is None
        else sum(cfg.control_rate_range_hz) / 2
    )  # the progress bar's estimate
    target_steps = (
        cfg.episodes * cfg.episode_s * mean_hz
        if cfg.episodes is not None
        else cfg.minutes * 60.0 * mean_hz
    )
    summary = RecordSummary(out=str(cfg.out))
    submitted = [0]
    km_done = [0.0]

    def next_job(in_flight: int) -> RecordJob | None:
        if cfg.episodes is not None:
            wanted = submitted[0] < cfg.episodes
        else:
            wanted = summary.sim_s + in_flight * cfg.episode_s < cfg.minutes * 60.0 - 1e-6
        if not wanted:
            return None
        submitted[0] += 1
        return next(jobs)

    def on_progress(payload: tuple[int, float]) -> float:
        frames, metres = payload
        km_done[0] += metres / 1000.0
        return frames

    def on_result(_job: RecordJob, result: dict[str, Any]) -> float:
        summary.add(result)
        return 0.0

    try:
        report = run_tasks(
            next_job,
            RecordWorkerFactory(cfg),
            RunnerConfig(workers=cfg.workers, progress=cfg.progress),
            on_result=on_result,
            on_progress=on_progress,
            total=round(target_steps),
            unit="frame",
            postfix=lambda: f"{km_done[0]:.1f} km, {summary.episodes} episodes",
        )
        summary.wall_s, summary.stopped = report.wall_s, report.stopped
    finally:
        summary.dataset_episodes = len(ep.list_episodes(cfg.out))
        summary.dataset_bytes = _dataset_size(cfg.out)
    return summary

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
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

import sim
from driving.data import episodes as ep
from driving.rollout.episode import run_episode
from driving.rollout.recovery import ViewColumns, recovery_metadata, recovery_options
from driving.rollout.runner import RunnerConfig, TaskContext, run_tasks
from liquid_drive.errors import LiquidDriveError
from sim.spec import CameraSpec
from sim.wrappers import NoiseInjection

logger = logging.getLogger(__name__)

PROGRESS_EVERY_STEPS = 50
"""Workers report progress to the parent every this many steps."""


class RecordError(LiquidDriveError, ValueError):
    """An invalid recording request (the message shows the bad value)."""


@dataclass(frozen=True)
class RecordConfig:
    """What to record and where."""

    out: Path
    """Dataset folder: created, or appended to if it holds a dataset of the same kind."""
    sim: Literal["builtin", "carla"] = "builtin"
    """Simulator backend."""
    towns: tuple[str, ...] | None = None
    """Towns to drive in (cycled); None = the simulator's training towns."""
    weathers: tuple[str, ...] | None = None
    """Weathers (cycled with the towns); None = the simulator's training weathers."""
    minutes: float = 10.0
    """Simulated driving time to record, minutes (ignored when ``episodes`` is set)."""
    episodes: int | None = None
    """Number of episodes to record instead of ``minutes``."""
    episode_s: float = 60.0
    """Simulated length of each episode, s (an episode may end earlier on a departure)."""
    target_speed_range_mps: tuple[float, float] | None = None
    """Cruise speed range, m/s, drawn per episode; None = each town's own range."""
    noise: bool = True
    """Inject steering noise (the label stays the expert's clean command)."""
    noise_share: float = 0.2
    """Share of the time with noise active, in [0, 1) (CIL: about 20 % of the data noisy)."""
    noise_amplitude_per_m: float = 0.04
    """Peak curvature added by a noise event, 1/m."""
    noise_kind: Literal["triangular", "ou"] = "triangular"
    """Shape of a noise event: CIL's triangular pulse or an Ornstein-Uhlenbeck excursion."""
    start_offset_max_m: float = 0.5
    """Start offsets from the lane centre are drawn uniformly in +-this, m."""
    start_heading_max_rad: float = 0.05
    """Start heading offsets are drawn uniformly in +-this, rad."""
    seed: int = 0
    """Seed of the episode plan (roads, speeds, offsets, noise); appending draws new ones."""
    workers: int = 1
    """Parallel recording processes (each its own episodes); 1 = in this process."""
    camera: CameraSpec = field(default_factory=CameraSpec)
    """The forward camera (must match an existing dataset's)."""
    control_rate_hz: float = 20.0
    """Control steps per simulated second, Hz (must match an existing dataset's)."""
    jpeg_quality: int = 95
    """JPEG quality of the frames, 1-100 (a new dataset only)."""
    host: str = "127.0.0.1"
    """CARLA server host (``--sim carla``)."""
    port: int = 2000
    """CARLA server port (``--sim carla``)."""
    progress: bool = True
    """Show a progress bar (only on a terminal)."""
    recovery_views: int = 0
    """Extra camera views recorded per step from poses beside the car's, each labelled with
    the expert's command at its pose (builtin only; 0 = off)."""
    recovery_max_lateral_m: float = 1.0
    """Largest sideways offset of a recovery view from the car, m (within the lane)."""
    recovery_max_yaw_deg: float = 6.0
    """Largest yaw offset of a recovery view from the car, degrees."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if not (math.isfinite(self.minutes) and self.minutes > 0):
            raise RecordError(f"minutes must be positive, got {self.minutes}")
        if self.episodes is not None and self.episodes < 1:
            raise RecordError(f"episodes must be >= 1 or None, got {self.episodes}")
        if not (math.isfinite(self.episode_s) and self.episode_s >= 1.0):
            raise RecordError(f"episode_s must be >= 1 s, got {self.episode_s}")
        if self.target_speed_range_mps is not None:
            lo, hi = self.target_speed_range_mps
            if not 0 < lo <= hi:
                raise RecordError(f"target_speed_range_mps must be 0 < lo <= hi, got {(lo, hi)}")
        if not 0.0 <= self.noise_share < 1.0:
            raise RecordError(f"noise_share must be in [0, 1), got {self.noise_share}")
        if not (math.isfinite(self.noise_amplitude_per_m) and self.noise_amplitude_per_m >= 0):
            raise RecordError(
                f"noise_amplitude_per_m must be >= 0, got {self.noise_amplitude_per_m}"
            )
        if self.start_offset_max_m < 0 or self.start_heading_max_rad < 0:
            raise RecordError(
                "start offsets must be >= 0, got "
                f"{self.start_offset_max_m} m and {self.start_heading_max_rad} rad"
            )
        if self.workers < 1:
            raise RecordError(f"workers must be >= 1, got {self.workers}")
        if self.sim == "carla" and self.workers != 1:
            raise RecordError(
                f"--sim carla drives one car per server: workers must be 1, got {self.workers}"
            )
        if not (math.isfinite(self.control_rate_hz) and self.control_rate_hz > 0):
            raise RecordError(f"control_rate_hz must be positive, got {self.control_rate_hz}")
        if not 1 <= self.jpeg_quality <= 100:
            raise RecordError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if self.recovery_views < 0:
            raise RecordError(f"recovery_views must be >= 0, got {self.recovery_views}")
        if self.recovery_views and self.sim != "builtin":
            raise RecordError(
                f"--recovery-views {self.recovery_views}: recovery views are rendered by the "
                f"builtin simulator only, not by --sim {self.sim}"
            )


@dataclass(frozen=True)
class RecordJob:
    """One planned episode (plain data, sent to a worker)."""

    number: int
    """Position in this run's plan."""
    town: str
    weather: str
    seed: int
    """Reset seed: picks the road within the town (and the noise stream)."""
    start_offset_m: float
    start_heading_rad: float


@dataclass
class RecordSummary:
    """What a recording run produced."""

    out: str
    episodes: int = 0
    steps: int = 0
    sim_s: float = 0.0
    km: float = 0.0
    noise_steps: int = 0
    by_town: dict[str, dict[str, float]] = field(default_factory=dict)
    by_weather: dict[str, dict[str, float]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    stopped: bool = False
    dataset_episodes: int = 0
    dataset_bytes: int = 0
    paths: list[str] = field(default_factory=list)

    def add(self, result: dict[str, Any]) -> None:
        """Accounts one finished episode (a worker's result)."""
        h, km = result["sim_s"] / 3600.0, result["distance_m"] / 1000.0
        self.episodes += 1
        self.steps += result["num_steps"]
        self.sim_s += result["sim_s"]
        self.km += km
        self.noise_steps += result["noise_steps"]
        for table, key in ((self.by_town, result["town"]), (self.by_weather, result["weather"])):
            row = table.setdefault(key, {"episodes": 0, "hours": 0.0, "km": 0.0})
            row["episodes"] += 1
            row["hours"] += h
            row["km"] += km
        self.outcomes = dict(Counter(self.outcomes) + Counter({result["outcome"]: 1}))
        self.paths.append(result["path"])

    def format(self) -> str:
        """One screen of text."""
        fps = self.steps / self.wall_s if self.wall_s > 0 else 0.0
        lines = [
            f"recorded {self.episodes} episodes into {self.out}"
            + (" (stopped early)" if self.stopped else ""),
            f"  {self.steps} frames, {self.sim_s / 3600:.2f} h simulated, {self.km:.1f} km, "
            f"noise active {100 * self.noise_steps / max(self.steps, 1):.0f}% of steps",
            f"  wall {self.wall_s:.1f} s, {fps:.0f} frames/s, "
            f"{self.sim_s / max(self.wall_s, 1e-9):.1f}x real time",
            f"  dataset now: {self.dataset_episodes} episodes, {self.dataset_bytes / 1e6:.1f} MB",
        ]
        for name, table in (("town", self.by_town), ("weather", self.by_weather)):
            lines.append(f"  {name:<14} {'episodes':>8} {'hours':>7} {'km':>7}")
            for key, row in sorted(table.items()):
                lines.append(
                    f"  {key:<14} {row['episodes']:>8} {row['hours']:>7.2f} {row['km']:>7.1f}"
                )
        lines.append(
            "  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        )
        return "\n".join(lines)


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


def make_env(cfg: RecordConfig, town: str, weather: str) -> Any:
    """The env of one (town, weather), noise-wrapped when ``cfg.noise``."""
    kwargs: dict[str, Any] = {
        "town": town,
        "weather": weather,
        "camera": cfg.camera,
        "control_rate_hz": cfg.control_rate_hz,
        "max_time_s": cfg.episode_s,
    }
    if cfg.target_speed_range_mps is not None:
        kwargs["target_speed_range_mps"] = tuple(cfg.target_speed_range_mps)
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
    if cfg.noise and cfg.noise_share > 0 and cfg.noise_amplitude_per_m > 0:
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

    def get(self, town: str, weather: str) -> Any:
        key = (town, weather)
        if key not in self.envs:
            if len(self.envs) >= self.size:
                oldest = next(iter(self.envs))
                self.envs.pop(oldest).close()
            self.envs[key] = make_env(self.cfg, town, weather)
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
) -> dict[str, Any]:
    """Drives one planned episode with the expert and writes it; returns its summary."""
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
            "enabled": cfg.noise,
            "share": cfg.noise_share,
            "amplitude_per_m": cfg.noise_amplitude_per_m,
            "kind": cfg.noise_kind,
        },
        "driver": "expert",
        "record_seed": cfg.seed,
    }
    views = ViewColumns(cfg.recovery_views) if cfg.recovery_views else None
    if views is not None:
        meta |= recovery_metadata(env)
    with ep.EpisodeWriter(
        cfg.out, meta, views.columns if views else None, views=cfg.recovery_views
    ) as writer:
        log = run_episode(
            env,
            expert,
            seed=job.seed,
            options={
                "start_offset_m": job.start_offset_m,
                "start_heading_rad": job.start_heading_rad,
            },
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
    }


# ---------------------------------------------------------------------------------------------
# Planning and the worker


def plan(cfg: RecordConfig, first_id: int) -> Any:
    """An endless stream of episode jobs, reproducible for (seed, first free episode id)."""
    towns, weathers = resolve_names(cfg)
    combos = [(t, w) for w in weathers for t in towns]
    rng = np.random.default_rng([cfg.seed, first_id])
    number = 0
    while True:
        order = rng.permutation(len(combos))  # every combination once per round
        for k in order:
            town, weather = combos[k]
            yield RecordJob(
                number=number,
                town=town,
                weather=weather,
                seed=int(rng.integers(0, 2**31 - 1)),
                start_offset_m=float(rng.uniform(-1, 1) * cfg.start_offset_max_m),
                start_heading_rad=float(rng.uniform(-1, 1) * cfg.start_heading_max_rad),
            )
            number += 1


class RecordWorker:
    """Records jobs in one process, keeping its recent envs between episodes."""

    def __init__(self, cfg: RecordConfig) -> None:
        self.cfg, self.envs = cfg, _EnvCache(cfg)

    def run(self, job: RecordJob, context: TaskContext) -> dict[str, Any]:
        """Records one episode; reports ``(frames, metres)`` every few steps and at the end."""
        sent = [0, 0.0]

        def on_step(k: int, progress_m: float) -> None:
            if k % PROGRESS_EVERY_STEPS == 0:
                context.report((k - sent[0], progress_m - sent[1]))
                sent[:] = [k, progress_m]

        env = self.envs.get(job.town, job.weather)
        result = record_episode(self.cfg, job, env, context.should_stop, on_step)
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
        sim.spec.ContractError: For an unknown town or weather (nothing written).
        liquid_drive.errors.LiquidDriveError: For an environment option the simulator refuses
            (nothing written).
        driving.data.episodes.DatasetMismatchError: If ``cfg.out`` holds a dataset of another
            format, simulator, camera or control rate.
        driving.data.episodes.NotADatasetError: If ``cfg.out`` is a non-empty non-dataset folder.
        driving.rollout.runner.RunnerError: If recording an episode failed (with the
            worker's traceback).
    """
    ep.create_or_open_dataset(cfg.out, dataset_info(cfg))
    jobs = plan(cfg, ep.next_episode_index(cfg.out))
    target_steps = (
        cfg.episodes * cfg.episode_s * cfg.control_rate_hz
        if cfg.episodes is not None
        else cfg.minutes * 60.0 * cfg.control_rate_hz
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

"""Record expert demonstrations into an episode dataset (``driving/data/episodes.py`` format).

Usage::

    python tools/record.py --out /tmp/data30 --minutes 30 --workers 2
    python tools/record.py --out /tmp/data30 --episodes 4 --towns countryside --weathers fog
    python tools/record.py --out /tmp/carla --sim carla --host 127.0.0.1 --port 2000 --minutes 10

The privileged expert drives; by default steering noise is injected for a share of the time
(CIL practice): the car executes the noisy command, so the data shows recoveries, while the
label ``curvature_expert`` stays the expert's clean command (``curvature_applied`` holds what
the car did). Towns and weathers default to the simulator's training split; every episode
gets a fresh road (seed), target speed, start offset and heading offset.

An existing dataset is appended to with new episode ids (refused, with a clear message, if its
format, simulator, camera or control rate differ). Each episode is written step by step into
``episode_N.partial/`` and renamed when done; Ctrl-C or SIGTERM ends the episodes in progress
cleanly (outcome ``stopped``), a hard kill leaves them ``.partial`` (never read; see
``tools/inspect.py --salvage``). ``--workers K`` runs K processes, each its own episodes.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import sim
from driving.data import episodes as ep
from driving.rollout.episode import run_episode
from sim.spec import CameraSpec
from sim.wrappers import NoiseInjection

logger = logging.getLogger("tools.record")

PROGRESS_EVERY_STEPS = 50
"""Workers report progress to the parent every this many steps."""


@dataclass
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

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if not (math.isfinite(self.minutes) and self.minutes > 0):
            raise ValueError(f"minutes must be positive, got {self.minutes}")
        if self.episodes is not None and self.episodes < 1:
            raise ValueError(f"episodes must be >= 1 or None, got {self.episodes}")
        if not (math.isfinite(self.episode_s) and self.episode_s >= 1.0):
            raise ValueError(f"episode_s must be >= 1 s, got {self.episode_s}")
        if self.target_speed_range_mps is not None:
            lo, hi = self.target_speed_range_mps
            if not 0 < lo <= hi:
                raise ValueError(f"target_speed_range_mps must be 0 < lo <= hi, got {(lo, hi)}")
        if not 0.0 <= self.noise_share < 1.0:
            raise ValueError(f"noise_share must be in [0, 1), got {self.noise_share}")
        if not (math.isfinite(self.noise_amplitude_per_m) and self.noise_amplitude_per_m >= 0):
            raise ValueError(
                f"noise_amplitude_per_m must be >= 0, got {self.noise_amplitude_per_m}"
            )
        if self.start_offset_max_m < 0 or self.start_heading_max_rad < 0:
            raise ValueError(
                "start offsets must be >= 0, got "
                f"{self.start_offset_max_m} m and {self.start_heading_max_rad} rad"
            )
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.sim == "carla" and self.workers != 1:
            raise ValueError(
                f"--sim carla drives one car per server: workers must be 1, got {self.workers}"
            )
        if not (math.isfinite(self.control_rate_hz) and self.control_rate_hz > 0):
            raise ValueError(f"control_rate_hz must be positive, got {self.control_rate_hz}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")


@dataclass(frozen=True)
class EpisodeJob:
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


def _split_names(
    sim: str,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(all towns, training towns, all weathers, training weathers) of a simulator."""
    if sim == "builtin":
        from sim.builtin import towns, weather

        return towns.TOWNS, towns.TRAIN_TOWNS, weather.WEATHERS, weather.TRAIN_WEATHERS
    from sim.carla import suites

    towns_all = (*suites.TRAIN_TOWNS, *suites.UNSEEN_TOWNS)
    weathers_all = (*suites.TRAIN_WEATHERS, *suites.UNSEEN_WEATHERS)
    return towns_all, suites.TRAIN_TOWNS, weathers_all, suites.TRAIN_WEATHERS


def _resolve_names(cfg: RecordConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    all_towns, train_towns, all_weathers, train_weathers = _split_names(cfg.sim)
    towns = cfg.towns or train_towns
    weathers = cfg.weathers or train_weathers
    if cfg.sim == "builtin":  # CARLA accepts any map/preset name; the server checks them
        bad = [t for t in towns if t not in all_towns]
        if bad:
            raise ValueError(f"unknown town(s) {bad}; valid: {', '.join(all_towns)}")
        bad = [w for w in weathers if w not in all_weathers]
        if bad:
            raise ValueError(f"unknown weather(s) {bad}; valid: {', '.join(all_weathers)}")
    return tuple(towns), tuple(weathers)


def _make_env(cfg: RecordConfig, town: str, weather: str) -> Any:
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
    env = sim.make_env(cfg.sim, **kwargs)
    if cfg.noise and cfg.noise_share > 0 and cfg.noise_amplitude_per_m > 0:
        env = NoiseInjection(
            env,
            share=cfg.noise_share,
            amplitude_per_m=cfg.noise_amplitude_per_m,
            kind=cfg.noise_kind,
        )
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
            self.envs[key] = _make_env(self.cfg, town, weather)
        else:
            self.envs[key] = self.envs.pop(key)  # most recent last
        return self.envs[key]

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
        self.envs.clear()


def record_episode(
    cfg: RecordConfig,
    job: EpisodeJob,
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
    with ep.EpisodeWriter(cfg.out, meta) as writer:
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
# Planning and the worker processes


def _plan(cfg: RecordConfig, first_id: int) -> Any:
    """An endless stream of episode jobs, reproducible for (seed, first free episode id)."""
    towns, weathers = _resolve_names(cfg)
    combos = [(t, w) for w in weathers for t in towns]
    rng = np.random.default_rng([cfg.seed, first_id])
    number = 0
    while True:
        order = rng.permutation(len(combos))  # every combination once per round
        for k in order:
            town, weather = combos[k]
            yield EpisodeJob(
                number=number,
                town=town,
                weather=weather,
                seed=int(rng.integers(0, 2**31 - 1)),
                start_offset_m=float(rng.uniform(-1, 1) * cfg.start_offset_max_m),
                start_heading_rad=float(rng.uniform(-1, 1) * cfg.start_heading_max_rad),
            )
            number += 1


def _worker(cfg: RecordConfig, jobs: Any, results: Any, stop: Any, parent_pid: int) -> None:
    """Worker process: records jobs until it receives None or a stop is requested."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into `stop`
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    cache = _EnvCache(cfg)

    def should_stop() -> bool:
        return stop.is_set() or os.getppid() != parent_pid  # parent gone: finish and exit

    try:
        while not should_stop():
            try:
                job = jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            if job is None:
                break
            report = _Reporter(lambda f, m, n=job.number: results.put(("progress", n, (f, m))))
            try:
                env = cache.get(job.town, job.weather)
                result = record_episode(cfg, job, env, should_stop, report.on_step)
            except Exception:
                results.put(("error", job.number, traceback.format_exc()))
                break
            report.flush(result)
            results.put(("done", job.number, result))
    finally:
        cache.close()
        results.put(("exit", os.getpid(), None))


class _Reporter:
    """Batches per-step progress into (frames, metres) reports every few steps."""

    def __init__(self, send: Any) -> None:
        self.send, self.steps, self.metres = send, 0, 0.0

    def on_step(self, k: int, progress_m: float) -> None:
        if k % PROGRESS_EVERY_STEPS == 0:
            self.send(k - self.steps, progress_m - self.metres)
            self.steps, self.metres = k, progress_m

    def flush(self, result: dict[str, Any]) -> None:
        """Reports what is left after the episode ended."""
        self.send(result["num_steps"] - self.steps, result["distance_m"] - self.metres)


def _dataset_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


def record(cfg: RecordConfig) -> RecordSummary:
    """Records expert episodes into ``cfg.out`` (created or appended to).

    Returns:
        The :class:`RecordSummary` of this run (plus the dataset's totals).

    Raises:
        driving.data.episodes.DatasetMismatchError: If ``cfg.out`` holds a dataset of another
            format, simulator, camera or control rate.
        driving.data.episodes.NotADatasetError: If ``cfg.out`` is a non-empty non-dataset folder.
        RuntimeError: If recording an episode failed (the worker's traceback is included).
    """
    from tqdm import tqdm

    _resolve_names(cfg)  # unknown names fail before anything is written
    info = ep.DatasetInfo(
        sim=cfg.sim,
        camera=cfg.camera.to_dict(),
        control_rate_hz=cfg.control_rate_hz,
        jpeg_quality=cfg.jpeg_quality,
    )
    ep.create_or_open_dataset(cfg.out, info)
    plan = _plan(cfg, ep.next_episode_index(cfg.out))
    target_steps = (
        cfg.episodes * cfg.episode_s * cfg.control_rate_hz
        if cfg.episodes is not None
        else cfg.minutes * 60.0 * cfg.control_rate_hz
    )
    summary = RecordSummary(out=str(cfg.out))
    bar = tqdm(
        total=round(target_steps),
        unit="frame",
        disable=None if cfg.progress else True,
        dynamic_ncols=True,
        smoothing=0.1,
    )
    km_done = [0.0]

    def progress(frames: int, meters: float) -> None:
        km_done[0] += meters / 1000.0
        bar.update(frames)
        bar.set_postfix_str(f"{km_done[0]:.1f} km, {summary.episodes} episodes", refresh=False)

    def more_wanted(submitted: int, in_flight_s: float) -> bool:
        if cfg.episodes is not None:
            return submitted < cfg.episodes
        return summary.sim_s + in_flight_s < cfg.minutes * 60.0 - 1e-6

    stop = mp.get_context("spawn").Event() if cfg.workers > 1 else _LocalFlag()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    signalled = []

    def request_stop(signum: int, _frame: Any) -> None:
        if signalled:  # a second signal: stop now, leaving .partial episodes
            raise KeyboardInterrupt
        logger.warning("signal %d: finishing the episodes in progress, then stopping", signum)
        signalled.append(signum)
        stop.set()

    start = time.perf_counter()
    for s in previous:
        signal.signal(s, request_stop)
    try:
        if cfg.workers == 1:
            _record_here(cfg, plan, summary, stop, progress, more_wanted)
        else:
            _record_in_workers(cfg, plan, summary, stop, progress, more_wanted)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        bar.close()
        summary.wall_s = time.perf_counter() - start
        summary.stopped = bool(signalled)
        summary.dataset_episodes = len(ep.list_episodes(cfg.out))
        summary.dataset_bytes = _dataset_size(cfg.out)
    return summary


class _LocalFlag:
    """A stop flag for the single-process case (same API as ``multiprocessing.Event``)."""

    def __init__(self) -> None:
        self.flag = False

    def set(self) -> None:
        self.flag = True

    def is_set(self) -> bool:
        return self.flag


def _record_here(cfg, plan, summary, stop, progress, more_wanted) -> None:
    cache = _EnvCache(cfg)
    try:
        submitted = 0
        while not stop.is_set() and more_wanted(submitted, 0.0):
            job = next(plan)
            submitted += 1
            report = _Reporter(progress)
            env = cache.get(job.town, job.weather)
            result = record_episode(cfg, job, env, stop.is_set, report.on_step)
            summary.add(result)
            report.flush(result)
    finally:
        cache.close()


def _record_in_workers(cfg, plan, summary, stop, progress, more_wanted) -> None:
    ctx = mp.get_context("spawn")
    jobs, results = ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(cfg, jobs, results, stop, os.getpid()), daemon=True)
        for _ in range(cfg.workers)
    ]
    for p in procs:
        p.start()
    in_flight: dict[int, EpisodeJob] = {}
    submitted, alive, error, closing = 0, len(procs), None, False
    try:
        while alive:
            # Keep each worker busy with one job and one queued, while more is wanted.
            while (
                not closing
                and not stop.is_set()
                and len(in_flight) < 2 * cfg.workers
                and more_wanted(submitted, len(in_flight) * cfg.episode_s)
            ):
                job = next(plan)
                in_flight[job.number] = job
                jobs.put(job)
                submitted += 1
            if not closing and (not in_flight or stop.is_set()):
                closing = True
                for _ in procs:
                    jobs.put(None)
            try:
                kind, key, payload = results.get(timeout=0.5)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break
                continue
            if kind == "progress":
                progress(*payload)
            elif kind == "done":
                in_flight.pop(key, None)
                summary.add(payload)
                progress(0, 0.0)  # refresh the episode count
            elif kind == "error":
                in_flight.pop(key, None)
                error = payload
                stop.set()
            elif kind == "exit":
                alive -= 1
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, episodes in progress stay .partial
        for p in procs:
            p.kill()
        raise
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    if error is not None:
        raise RuntimeError(f"recording an episode failed in a worker:\n{error}")


def main() -> int:
    """Command line entry point; returns the exit status."""
    import tyro

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        cfg = tyro.cli(RecordConfig)
        _resolve_names(cfg)
    except ValueError as e:  # a bad option value
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        summary = record(cfg)
    except ep.EpisodeFormatError as e:  # the output folder holds something else
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ImportError, ConnectionError) as e:  # e.g. no carla client installed
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: episodes in progress were left .partial", file=sys.stderr)
        return 130
    except RuntimeError as e:
        if cfg.sim == "carla" and type(e).__name__.startswith("Carla"):  # no server, busy ...
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())

r"""Closed-loop evaluation of steering checkpoints on named suites, the expert as reference row.

Usage::

    python tools/evaluate.py --checkpoint checkpoints/cfc-ncp --suite all --out outputs/eval
    python tools/evaluate.py --checkpoint runs/cfc runs/lstm --suite unseen-towns \
        --routes 1 --route-km 0.3 --workers 2 --out outputs/eval-quick
    python tools/evaluate.py --checkpoint runs/cfc --suite carla-train --sim carla \
        --host localhost --port 2000 --out outputs/eval-carla
    python tools/evaluate.py --suite train-towns --out outputs/eval-expert   # expert only

Each checkpoint (and always the privileged expert, model name ``expert``) drives every
episode of the suite closed loop (``driving.evaluate.suites``). In intervention mode (the default) a
lane departure is counted and the car is put back on the lane centre, the route continuing
(the NCP / VISTA real-car protocol); in termination mode a departure ends the episode. While a
policy drives, the expert is queried on every step for the label ``curvature_expert``.

Output folder: ``metrics.json`` (schema: ``driving/evaluate/report.py``), ``report.md`` with the
comparison tables, PNG plots (a bar chart per suite; bird's-eye trajectories with the
departures marked) and ``rollouts/<model>/<suite>/<condition>/`` in the episode format, with
``curvature_pred`` and every neuron's state per step (``neuron_000`` ...) for policies.

Episodes run in this process (``--workers 1``), in a process pool (``--workers K``) or as
tasks on a Ray cluster (``--ray ADDRESS``, ``--ray local`` starts a local one; needs the
``ray`` extra, and every node must have the project installed and see the output folder).
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from liquid_drive.errors import LiquidDriveError

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import tyro
from tqdm import tqdm

from driving.data.episodes import (
    CURVATURE_PRED,
    DatasetInfo,
    EpisodeWriter,
    create_or_open_dataset,
    neuron_column,
)
from driving.evaluate.metrics import metrics_from_columns
from driving.evaluate.report import (
    EXPERT,
    EpisodeResult,
    TrajectoryTrace,
    build_document,
    write_metrics,
    write_report,
)
from driving.evaluate.suites import (
    CARLA_SUITES,
    SUITES,
    EpisodeSpec,
    SuiteName,
    TownWeatherSplit,
    build_suite,
)
from driving.rollout.episode import run_episode

log = logging.getLogger("evaluate")

MIN_SPEED_MPS = 2.0
"""CARLA episodes are limited to their route length at this speed (a stalled car ends), m/s."""
MAX_TRACE_POINTS = 2000
"""Trajectories kept for the bird's-eye plots are thinned to about this many points."""


class EvalError(LiquidDriveError, ValueError):
    """A bad evaluation request (unknown suite, missing checkpoint, bad option)."""


@dataclass
class EvalConfig:
    """Closed-loop evaluation of checkpoints on a suite (the expert is always included)."""

    checkpoint: tuple[Path, ...] = ()
    """Checkpoint folders to evaluate; none = the expert alone."""
    suite: SuiteName = "train-towns"
    """Suite to drive (towns, weathers, routes and conditions: driving/evaluate/suites.py)."""
    out: Path = Path("outputs/eval")
    """Output folder for metrics.json, report.md, the plots and the rollouts."""
    mode: Literal["intervention", "termination"] = "intervention"
    """intervention: count a departure, put the car back on the lane centre; termination: stop."""
    routes: int | None = None
    """Routes per town (default 3); fewer for a quick run."""
    route_km: float | None = None
    """Route length in km (default 2); shorter for a quick run."""
    sim: Literal["builtin", "carla"] = "builtin"
    """Simulator backend; the carla-* suites need carla."""
    host: str = "localhost"
    """CARLA server host (sim carla)."""
    port: int = 2000
    """CARLA server port (sim carla)."""
    workers: int = 1
    """Parallel worker processes (1 = run in this process)."""
    ray: str | None = None
    """Ray cluster address to run episodes as Ray tasks ("local" starts a local instance)."""
    rollouts: Literal["all", "first", "none"] = "first"
    """Rollouts to write: every episode, the first of each model, suite and condition, or none."""
    plots: bool = True
    """Write report.md and the PNG plots (metrics.json is always written)."""
    torch_threads: int = 1
    """torch intra-op threads per worker."""

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise EvalError(f"unknown suite {self.suite!r}; choose one of {', '.join(SUITES)}")
        if (self.suite in CARLA_SUITES) != (self.sim == "carla"):
            raise EvalError(
                f"suite {self.suite!r} does not run on sim {self.sim!r}: the carla-* suites "
                "need --sim carla and the others --sim builtin"
            )
        if self.workers < 1:
            raise EvalError(f"workers must be >= 1, got {self.workers}")
        if self.sim == "carla" and (self.workers != 1 or self.ray is not None):
            raise EvalError(
                "sim carla drives one server from one process: use --workers 1 and no --ray"
            )
        if self.ray is not None and self.workers != 1:
            raise EvalError("--ray and --workers are alternatives; give one of them")
        if self.torch_threads < 1:
            raise EvalError(f"torch_threads must be >= 1, got {self.torch_threads}")
        for ck in self.checkpoint:
            if not Path(ck).is_dir():
                raise EvalError(f"checkpoint {ck} is not a folder")


@dataclass(frozen=True)
class EpisodeJob:
    """One model driving one episode spec; everything a worker needs (picklable)."""

    model: str
    """Model name (``expert`` or a checkpoint's name)."""
    checkpoint: str | None
    """Checkpoint folder, None for the expert."""
    spec: EpisodeSpec
    """The episode."""
    sim: str
    """Simulator backend."""
    sim_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``sim.make_env`` arguments (CARLA host and port)."""
    intervention_mode: bool = True
    """Count departures and reset instead of terminating."""
    rollout_root: str | None = None
    """Dataset folder to write the rollout into, None for no rollout."""
    torch_threads: int = 1
    """torch intra-op threads."""


@dataclass(frozen=True)
class JobOutput:
    """What a worker sends back: the result and a thinned bird's-eye trajectory."""

    result: EpisodeResult
    trace: TrajectoryTrace
    wall_s: float
    """Wall-clock seconds the episode took."""


# ---------------------------------------------------------------------------------------------
# Planning


def builtin_split() -> TownWeatherSplit:
    """The builtin simulator's town and weather split (``sim.builtin``)."""
    from sim.builtin import towns, weather

    return TownWeatherSplit(
        train_towns=tuple(towns.TRAIN_TOWNS),
        unseen_towns=tuple(towns.UNSEEN_TOWNS),
        train_weathers=tuple(weather.TRAIN_WEATHERS),
        unseen_weathers=tuple(weather.UNSEEN_WEATHERS),
    )


def model_names(checkpoints: Sequence[Path]) -> list[str]:
    """Unique model names from checkpoint folder names (``name``, ``name-2`` ...).

    A training run's ``RUN/best`` is named ``RUN`` and ``RUN/last`` ``RUN-last``.
    """
    names: list[str] = []
    for ck in checkpoints:
        folder = Path(ck).resolve()
        base = folder.name
        if base in ("best", "last"):  # a training run's checkpoint: name it after the run
            base = folder.parent.name + ("-last" if base == "last" else "")
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", base) or "model"
        name, i = base, 2
        while name in names or name == EXPERT:
            name, i = f"{base}-{i}", i + 1
        names.append(name)
    return names


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def rollout_root(out: Path, model: str, spec: EpisodeSpec) -> Path:
    """The rollout dataset of a model, suite and condition (one control rate per dataset)."""
    return out / "rollouts" / model / spec.suite / _slug(spec.condition)


def plan_jobs(cfg: EvalConfig) -> tuple[list[EpisodeJob], list[dict[str, Any]]]:
    """The jobs of an evaluation (expert first) and the ``models`` list of ``metrics.json``."""
    split = builtin_split() if cfg.sim == "builtin" else None
    specs = build_suite(cfg.suite, split, routes=cfg.routes, route_km=cfg.route_km)
    names = model_names(cfg.checkpoint)
    models = [{"name": EXPERT, "checkpoint": None}] + [
        {"name": n, "checkpoint": str(Path(c).resolve())}
        for n, c in zip(names, cfg.checkpoint, strict=True)
    ]
    sim_kwargs = {"host": cfg.host, "port": cfg.port} if cfg.sim == "carla" else {}
    jobs = []
    for m in models:
        seen: set[tuple[str, str]] = set()
        for spec in specs:
            first = (spec.suite, spec.condition) not in seen
            seen.add((spec.suite, spec.condition))
            write = cfg.rollouts == "all" or (cfg.rollouts == "first" and first)
            root = rollout_root(cfg.out, m["name"], spec) if write else None
            jobs.append(
                EpisodeJob(
                    model=m["name"],
                    checkpoint=m["checkpoint"],
                    spec=spec,
                    sim=cfg.sim,
                    sim_kwargs=sim_kwargs,
                    intervention_mode=cfg.mode == "intervention",
                    rollout_root=None if root is None else str(root.resolve()),
                    torch_threads=cfg.torch_threads,
                )
            )
    return jobs, models


# ---------------------------------------------------------------------------------------------
# Running one episode (in any process)

_POLICIES: dict[str, Any] = {}
"""Policies loaded in this process, by checkpoint folder."""


def _policy(checkpoint: str) -> Any:
    if checkpoint not in _POLICIES:
        from driving.model.checkpoint import load_policy

        policy = load_policy(checkpoint)
        policy.eval()
        _POLICIES[checkpoint] = policy
    return _POLICIES[checkpoint]


def neuron_step_columns(policy: Any) -> tuple[dict[str, str], Callable[[Any], dict[str, float]]]:
    """The neuron-state extra columns of a policy and the function filling them per step.

    Returns:
        ``({"neuron_000": unit, ...}, f(state) -> {"neuron_000": value, ...})``; the column
        index is the neuron's index in the policy's state order.
    """
    import torch

    n = int(policy.state_size)
    names = [neuron_column(i) for i in range(n)]

    def columns(state: Any) -> dict[str, float]:
        h = policy.neuron_states(state)
        values = h.detach().reshape(-1).cpu().numpy() if isinstance(h, torch.Tensor) else h
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape[0] != n:
            raise RuntimeError(f"policy state has {values.shape[0]} neurons, expected {n}")
        return dict(zip(names, values.tolist(), strict=True))

    return dict.fromkeys(names, "1"), columns


def _thin(n: int) -> np.ndarray:
    """About MAX_TRACE_POINTS step indices of n, the first and the last included."""
    return np.unique(np.append(np.arange(0, n, max(1, math.ceil(n / MAX_TRACE_POINTS))), n - 1))


def run_job(job: EpisodeJob) -> JobOutput:
    """Builds the env, drives one episode, scores it and writes its rollout if asked.

    Imports ``sim`` here so that ``driving`` stays free of it and a Ray or pool worker needs
    only the job.
    """
    import torch

    import sim
    from driving.data.episodes import INTERVENTION, X_M, Y_M

    torch.set_num_threads(job.torch_threads)
    start = time.perf_counter()
    # the builtin env derives its time limit from the route and speed; CARLA's default is short
    time_limit = (
        {"max_time_s": job.spec.route_length_m / MIN_SPEED_MPS} if job.sim == "carla" else {}
    )
    env = sim.make_env(
        job.sim,
        **job.sim_kwargs,
        **job.spec.env_kwargs(),
        intervention_mode=job.intervention_mode,
        **time_limit,
    )
    writer = None
    try:
        expert = sim.make_expert(env)
        if job.checkpoint is None:
            driver, label_driver, extra, step_columns = expert, None, {}, None
        else:
            driver, label_driver = _policy(job.checkpoint), expert
            extra, step_columns = neuron_step_columns(driver)
            extra = {CURVATURE_PRED: "1/m", **extra}
        if job.rollout_root is not None:
            info = DatasetInfo(
                sim=job.sim,
                camera=env.unwrapped.config.camera.to_dict(),
                control_rate_hz=job.spec.control_rate_hz,
            )
            create_or_open_dataset(job.rollout_root, info)
            meta = {"model": job.model, "checkpoint": job.checkpoint, **job.spec.to_dict()}
            writer = EpisodeWriter(job.rollout_root, meta, extra_columns=extra)
        with torch.inference_mode():
            ep = run_episode(
                env,
                driver,
                seed=job.spec.seed,
                writer=writer,
                label_driver=label_driver,
                step_columns=step_columns,
            )
    finally:
        env.close()
    metrics = metrics_from_columns(
        ep.columns,
        route_length_m=ep.route_length_m,
        terminated=ep.terminated,
        distance_m=ep.distance_m,
    )
    rollout = None
    if ep.path is not None:
        rollout = os.path.relpath(ep.path, Path(job.rollout_root).parents[3])
    keep = _thin(ep.num_steps)
    departures = np.flatnonzero(ep.columns[INTERVENTION])
    if ep.terminated:
        departures = np.append(departures, ep.num_steps - 1)
    x, y = ep.columns[X_M], ep.columns[Y_M]
    trace = TrajectoryTrace(
        job.model,
        job.spec,
        x[keep],
        y[keep],
        departures_xy_m=np.stack([x[departures], y[departures]], axis=1),
    )
    result = EpisodeResult(job.model, job.spec, metrics, rollout)
    return JobOutput(result, trace, time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------
# Executors


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_jobs(
    jobs: Sequence[EpisodeJob], *, workers: int = 1, ray_address: str | None = None
) -> list[JobOutput]:
    """Runs the jobs here, in a process pool or on Ray; outputs come back in job order."""
    bar = tqdm(total=len(jobs), desc="episodes", unit="ep", disable=None)
    try:
        if ray_address is not None:
            return _run_ray(jobs, ray_address, bar)
        if workers == 1:
            outputs = []
            for job in jobs:
                outputs.append(run_job(job))
                bar.update()
            return outputs
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # torch and fork do not mix
        threads = jobs[0].torch_threads if jobs else 1
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_worker_init, initargs=(threads,)
        ) as pool:
            futures = {pool.submit(run_job, job): i for i, job in enumerate(jobs)}
            done: dict[int, JobOutput] = {}
            for fut in as_completed(futures):
                done[futures[fut]] = fut.result()
                bar.update()
        return [done[i] for i in range(len(jobs))]
    finally:
        bar.close()


def _run_ray(jobs: Sequence[EpisodeJob], address: str, bar: tqdm) -> list[JobOutput]:
    try:
        import ray
    except ImportError as e:
        raise EvalError("--ray needs the optional Ray extra: pip install -e '.[ray]'") from e
    started = not ray.is_initialized()
    if started:
        local = {"include_dashboard": False} if address == "local" else {}
        ray.init(address=address, log_to_driver=False, **local)
    try:
        remote = ray.remote(num_cpus=1)(run_job)
        refs = [remote.remote(job) for job in jobs]
        index = {ref: i for i, ref in enumerate(refs)}
        done: dict[int, JobOutput] = {}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                done[index[ref]] = ray.get(ref)
                bar.update()
        return [done[i] for i in range(len(jobs))]
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------
# The whole evaluation


def evaluate(cfg: EvalConfig) -> Path:
    """Runs an evaluation and writes its output folder.

    Returns:
        The path of ``metrics.json``.
    """
    cfg.out.mkdir(parents=True, exist_ok=True)
    jobs, models = plan_jobs(cfg)
    log.info(
        "%d episodes: %d models x %d specs of suite %s (%s mode, sim %s)",
        len(jobs),
        len(models),
        len(jobs) // len(models),
        cfg.suite,
        cfg.mode,
        cfg.sim,
    )
    start = time.perf_counter()
    outputs = run_jobs(jobs, workers=cfg.workers, ray_address=cfg.ray)
    wall = time.perf_counter() - start
    km = sum(o.result.metrics.distance_km for o in outputs)
    log.info("drove %.2f km in %.1f s (%.2f sim km per wall minute)", km, wall, km / wall * 60)
    doc = build_document(
        [o.result for o in outputs], models=models, sim=cfg.sim, mode=cfg.mode, suite=cfg.suite
    )
    path = write_metrics(doc, cfg.out / "metrics.json")
    if cfg.plots:
        write_report(doc, cfg.out, [o.trace for o in outputs])
    log.info("wrote %s", path)
    return path


def main() -> None:
    """Command-line entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    evaluate(tyro.cli(EvalConfig))


if __name__ == "__main__":
    main()

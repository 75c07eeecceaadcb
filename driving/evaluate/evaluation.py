"""Closed-loop evaluation of checkpoints on named suites, with the expert as reference row.

Each checkpoint (and always the privileged expert, model name ``expert``) drives every
episode of the suite closed loop (:mod:`driving.evaluate.suites`). In intervention mode (the
default) a lane departure is counted and the car is put back on the lane centre, the route
continuing (the NCP / VISTA real-car protocol); in termination mode a departure ends the
episode. While a policy drives, the expert is queried on every step for the label
``curvature_expert``.

:func:`evaluate` first checks the whole request and writes nothing until it passed: the
options, the suite, every checkpoint (loaded once here) and its training camera against the
env's (a probe env), and the output folder (:mod:`driving.evaluate.run_folder`: a folder of
another run is refused unless ``overwrite``; the same run is resumed). The episodes then run
through :mod:`driving.rollout.runner` (here, in worker processes that die with this one, or on
Ray; ``runtime`` onnx / onnx-int8 drives the checkpoints' ONNX exports through onnxruntime,
:mod:`driving.evaluate.runtime`); each finished episode is kept at once, and ``metrics.json``
(schema: :mod:`driving.evaluate.report`), ``report.md`` and the plots are built from what
finished, also after Ctrl-C or SIGTERM (which let the episodes in flight finish).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sim
from driving.evaluate.analysis_report import ANALYSES_FILE, include_in_report
from driving.evaluate.commands import check_command_inputs
from driving.evaluate.jobs import EpisodeJob, EvalWorkerFactory, JobOutput
from driving.evaluate.report import EXPERT, build_document, write_metrics
from driving.evaluate.report_plots import write_report
from driving.evaluate.run_folder import (
    METRICS_FILE,
    RunFolder,
    checkpoint_digest,
    rollout_root,
)
from driving.evaluate.runtime import (
    HEAD_PRECISION,
    PRECISION,
    RUNTIMES,
    Runtime,
    onnx_file,
    staged_exports,
)
from driving.evaluate.suites import CARLA_SUITES, SUITES, SuiteName, build_suite
from driving.rollout.policies import check_camera, load_driving_policy
from driving.rollout.runner import RunnerConfig, RunReport, import_ray, run_tasks
from liquid_drive.errors import LiquidDriveError

log = logging.getLogger(__name__)


class EvalError(LiquidDriveError, ValueError):
    """A bad evaluation request (unknown suite, missing checkpoint, bad option)."""


@dataclass(frozen=True)
class EvalConfig:
    """Closed-loop evaluation of checkpoints on a suite (the expert is always included)."""

    checkpoint: tuple[Path, ...] = ()
    """Checkpoint folders to evaluate; none = the expert alone."""
    suite: SuiteName = "train-towns"
    """Suite to drive (towns, weathers, routes and conditions: driving/evaluate/suites.py)."""
    out: Path = Path("outputs/eval")
    """Output folder for metrics.json, report.md, the plots, the rollouts and the finished
    episodes (a rerun of the same evaluation resumes it)."""
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
    overwrite: bool = False
    """Delete the outputs of an earlier run in ``out`` and start afresh (otherwise a folder of
    another evaluation is refused, and one of the same evaluation is resumed)."""
    progress: bool = True
    """Show a progress bar (only on a terminal)."""
    route_set: Literal["test", "dev"] = "test"
    """test: the reported route seeds (7001, ...); dev: the same suite on development roads
    (9001, ...) for choosing a recipe; metrics.json, run.json and the report say which."""
    runtime: Runtime = "torch"
    """What drives the checkpoints: eager torch (torch-bf16: the conv head's convolutions in
    bfloat16), or their ONNX export through onnxruntime (onnx: float32; onnx-int8: the conv
    head in int8), exported and checked against torch once into ``out/onnx/`` before any
    episode runs (driving/evaluate/runtime.py)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoint", tuple(Path(c) for c in self.checkpoint))
        object.__setattr__(self, "out", Path(self.out))
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
        if self.runtime not in RUNTIMES:
            raise EvalError(
                f"unknown runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}"
            )
        if self.torch_threads < 1:
            raise EvalError(f"torch_threads must be >= 1, got {self.torch_threads}")
        for ck in self.checkpoint:
            if not ck.is_dir():
                raise EvalError(f"checkpoint {ck} is not a folder")

    @property
    def runner(self) -> RunnerConfig:
        """Where the episodes run."""
        return RunnerConfig(workers=self.workers, ray=self.ray, progress=self.progress)


@dataclass(frozen=True)
class EvalSummary:
    """What an evaluation run did."""

    metrics_path: Path | None
    """``metrics.json`` (None when no episode has finished yet)."""
    planned: int
    """Episodes of the whole evaluation."""
    finished: int
    """Episodes finished so far (this run and earlier ones of the same run)."""
    resumed: int
    """Episodes that had finished before this run (kept, not driven again)."""
    stopped: bool
    """A signal stopped this run before every episode was driven."""
    wall_s: float
    """Wall-clock time of this run's driving, s."""
    km: float
    """Simulated km driven in this run."""

    def format(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"{self.finished} of {self.planned} episodes finished"
            + (f" ({self.resumed} kept from an earlier run)" if self.resumed else "")
            + f"; drove {self.km:.2f} km in {self.wall_s:.1f} s",
        ]
        if self.metrics_path is not None:
            lines.append(f"wrote {self.metrics_path}")
        if self.finished < self.planned:
            lines.append(
                "stopped early: metrics.json holds the finished episodes; run the same command "
                "again to drive the rest"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Planning


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


def plan_jobs(cfg: EvalConfig) -> tuple[list[EpisodeJob], list[dict[str, Any]]]:
    """The jobs of an evaluation (expert first) and the ``models`` list of ``metrics.json``."""
    specs = build_suite(
        cfg.suite,
        sim.split(cfg.sim),
        routes=cfg.routes,
        route_km=cfg.route_km,
        route_set=cfg.route_set,
    )
    names = model_names(cfg.checkpoint)
    models = [{"name": EXPERT, "checkpoint": None}] + [
        {"name": n, "checkpoint": str(Path(c).resolve()), "runtime": cfg.runtime}
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
            onnx = m["checkpoint"] is not None and cfg.runtime in PRECISION
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
                    head_precision=HEAD_PRECISION.get(cfg.runtime, "fp32"),
                    policy_file=(
                        str(onnx_file(cfg.out, m["name"], cfg.runtime).resolve()) if onnx else None
                    ),
                )
            )
    return jobs, models


def check_inputs(jobs: Sequence[EpisodeJob]) -> None:
    """Loads every checkpoint of the jobs once and checks its command input and camera.

    A checkpoint without a command input is refused on towns with junctions
    (:mod:`driving.evaluate.commands`). The env is a probe built from the first job (and
    closed at once): it also checks the simulator options (and, for CARLA, that the server
    answers).

    Raises:
        driving.model.checkpoint.CheckpointError: For a missing or broken checkpoint.
        driving.model.command.CommandInputError: For a checkpoint without a command input
            asked to drive junction towns.
        driving.rollout.policies.CameraMismatchError: For a camera the policy was not
            trained with.
    """
    checkpoints = list(dict.fromkeys(j.checkpoint for j in jobs if j.checkpoint is not None))
    loaded = [load_driving_policy(c) for c in checkpoints]
    if not jobs:
        return
    check_command_inputs(
        [(p.checkpoint, p.policy.config) for p in loaded],
        [j.spec.town for j in jobs],
        sim.split(jobs[0].sim),
        jobs[0].spec.suite,
    )
    env = jobs[0].make_env()
    try:
        camera = env.unwrapped.camera
    finally:
        env.close()
    for policy in loaded:
        check_camera(policy, camera)


def run_record(cfg: EvalConfig, jobs: Sequence[EpisodeJob]) -> dict[str, Any]:
    """What identifies an evaluation run (see :mod:`driving.evaluate.run_folder`)."""
    digests: dict[str, str] = {}
    for job in jobs:
        if job.checkpoint is not None and job.model not in digests:
            digests[job.model] = checkpoint_digest(job.checkpoint)
    record = {
        "sim": cfg.sim,
        "suite": cfg.suite,
        "mode": cfg.mode,
        "routes": cfg.routes,
        "route_km": cfg.route_km,
        "rollouts": cfg.rollouts,
        "models": {EXPERT: None, **digests},
        "episodes": [j.spec.to_dict() for j in jobs if j.model == EXPERT],
        # absent for torch, so the run records of evaluations before runtimes still match
        **({"runtime": cfg.runtime} if cfg.runtime != "torch" else {}),
    }
    if cfg.route_set != "test":  # absent = test, so earlier test runs keep their fingerprint
        record["route_set"] = cfg.route_set
    return record


# ---------------------------------------------------------------------------------------------
# Running


def run_jobs(
    jobs: Sequence[EpisodeJob],
    runner: RunnerConfig | None = None,
    *,
    on_output: Callable[[EpisodeJob, JobOutput], Any] | None = None,
) -> tuple[list[JobOutput | None], RunReport]:
    """Runs the jobs; returns their outputs in job order (None: not driven) and the report.

    Args:
        jobs: The episodes.
        runner: Where they run (default: here).
        on_output: Optional ``f(job, output)`` called here as each one finishes.
    """
    outputs: list[JobOutput | None] = [None] * len(jobs)
    position = {id(job): i for i, job in enumerate(jobs)}

    def on_result(job: EpisodeJob, output: JobOutput) -> float:
        outputs[position[id(job)]] = output
        if on_output is not None:
            on_output(job, output)
        return 1.0

    threads = jobs[0].torch_threads if jobs else 1
    report = run_tasks(
        jobs,
        EvalWorkerFactory(threads),
        runner or RunnerConfig(),
        on_result=on_result,
        total=len(jobs),
        unit="ep",
    )
    return outputs, report


def evaluate(cfg: EvalConfig) -> EvalSummary:
    """Runs (or resumes) an evaluation and writes its output folder.

    Returns:
        The :class:`EvalSummary`.

    Raises:
        EvalError, driving.evaluate.suites.SuiteError: For a bad request.
        driving.model.checkpoint.CheckpointError: For a broken checkpoint (nothing written).
        driving.model.command.CommandInputError: For a checkpoint without a command input
            asked to drive junction towns (nothing written).
        driving.rollout.policies.CameraMismatchError: For a camera the policy was not trained
            with (nothing written).
        driving.evaluate.run_folder.RunFolderError: If ``cfg.out`` holds another run
            (nothing written).
        driving.rollout.runner.RayNotInstalledError: For ``ray`` without the extra.
        driving.evaluate.runtime.RuntimeExportError: For an ONNX runtime whose export or its
            check fails, or without onnxruntime (nothing written).
        KeyboardInterrupt: On a second Ctrl-C (the finished episodes stay kept).
    """
    jobs, models = plan_jobs(cfg)
    if cfg.ray is not None:
        import_ray()  # a missing extra is named before anything is written
    check_inputs(jobs)
    folder = RunFolder(cfg.out, run_record(cfg, jobs), overwrite=cfg.overwrite)
    folder.check()  # another run is refused before the exports take their time
    with staged_exports(jobs, cfg.runtime) as exports:  # checked before anything is written
        finished = folder.prepare(jobs)
        exports.install()
    for m in models:
        if m["name"] in exports.checks:
            m["export"] = exports.checks[m["name"]]
    resumed = len(finished)
    todo = [j for j in jobs if folder.episode_file(j) not in finished]
    log.info(
        "%d episodes: %d models x %d specs of suite %s (%s mode, sim %s, %s routes)%s",
        len(jobs),
        len(models),
        len(jobs) // len(models),
        cfg.suite,
        cfg.mode,
        cfg.sim,
        cfg.route_set,
        f"; resuming: {resumed} finished, driving the other {len(todo)}" if resumed else "",
    )
    outputs, report = run_jobs(todo, cfg.runner, on_output=folder.save)
    new = [o for o in outputs if o is not None]
    finished.update((folder.episode_file(j), o) for j, o in zip(todo, outputs, strict=True) if o)
    results = [finished[f] for j in jobs if (f := folder.episode_file(j)) in finished]
    km = sum(o.result.metrics.distance_km for o in new)
    wall = report.wall_s
    rate = km / max(wall, 1e-9) * 60.0
    log.info("drove %.2f km in %.1f s (%.2f sim km per wall minute)", km, wall, rate)
    path = None
    if results:
        doc = build_document(
            [o.result for o in results],
            models=models,
            sim=cfg.sim,
            mode=cfg.mode,
            suite=cfg.suite,
            route_set=cfg.route_set,
        )
        path = write_metrics(doc, cfg.out / METRICS_FILE)
        if cfg.plots:
            write_report(doc, cfg.out, [o.trace for o in results])
            if (cfg.out / ANALYSES_FILE).is_file():  # tools/analyze.py wrote into this folder
                include_in_report(cfg.out / ANALYSES_FILE, cfg.out / "report.md")
        log.info("wrote %s", path)
    return EvalSummary(path, len(jobs), len(results), resumed, report.stopped, wall, km)

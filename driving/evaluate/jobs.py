"""One evaluation episode: a model driving one episode spec, in any process.

An :class:`EpisodeJob` is plain data (picklable for worker processes and Ray).
:func:`run_job` builds the env, drives the episode (a policy steers while the expert labels
every step; or the expert alone), scores it and writes its rollout when asked: the episode
format with ``curvature_pred`` and every neuron's state per step (``neuron_000`` ...).
:class:`EvalWorker` runs jobs in one process of :mod:`driving.rollout.runner`, loading each
checkpoint once and keeping it for every episode it drives (and, for a job with a
``policy_file``, the onnxruntime session that drives instead of torch).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import sim
from driving.data.episodes import (
    CURVATURE_PRED,
    INTERVENTION,
    X_M,
    Y_M,
    DatasetInfo,
    EpisodeWriter,
    create_or_open_dataset,
)
from driving.evaluate.junction_metrics import junction_metrics
from driving.evaluate.metrics import EpisodeMetrics, metrics_from_columns
from driving.evaluate.report import EpisodeResult, TrajectoryTrace
from driving.evaluate.suites import EpisodeSpec
from driving.model.export import OnnxPolicy
from driving.rollout.episode import run_episode
from driving.rollout.policies import (
    LoadedPolicy,
    check_camera,
    load_driving_policy,
    neuron_step_columns,
)
from driving.rollout.runner import TaskContext

MIN_SPEED_MPS = 2.0
"""CARLA episodes are limited to their route length at this speed (a stalled car ends), m/s."""
MAX_TRACE_POINTS = 2000
"""Trajectories kept for the bird's-eye plots are thinned to about this many points."""


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
    """torch intra-op threads (also onnxruntime's, when the policy drives from ONNX)."""
    policy_file: str | None = None
    """ONNX graph the policy drives from through onnxruntime (``--runtime onnx`` or
    ``onnx-int8``); None: the checkpoint's policy in eager torch."""
    head_precision: str = "fp32"
    """Arithmetic of the eager policy's conv head: fp32, or bf16 (``--runtime torch-bf16``)."""

    def make_env(self) -> Any:
        """The env of this job's spec (the caller closes it)."""
        # the builtin env derives its time limit from the route and speed; CARLA's is short
        time_limit = (
            {"max_time_s": self.spec.route_length_m / MIN_SPEED_MPS} if self.sim == "carla" else {}
        )
        return sim.make_env(
            self.sim,
            **self.sim_kwargs,
            **self.spec.env_kwargs(),
            intervention_mode=self.intervention_mode,
            **time_limit,
        )


@dataclass(frozen=True)
class JobOutput:
    """What a worker sends back: the result and a thinned bird's-eye trajectory."""

    result: EpisodeResult
    trace: TrajectoryTrace
    wall_s: float
    """Wall-clock seconds the episode took."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (exact: floats survive a JSON round trip)."""
        return {
            **self.result.to_dict(),
            "trace": {
                "x_m": self.trace.x_m.tolist(),
                "y_m": self.trace.y_m.tolist(),
                "departures_xy_m": self.trace.departures_xy_m.tolist(),
            },
            "wall_s": self.wall_s,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobOutput:
        """Inverse of :meth:`to_dict`."""
        result = EpisodeResult.from_dict(d)
        t = d["trace"]
        departures = np.asarray(t["departures_xy_m"], dtype=np.float64).reshape(-1, 2)
        trace = TrajectoryTrace(
            result.model,
            result.spec,
            np.asarray(t["x_m"], dtype=np.float64),
            np.asarray(t["y_m"], dtype=np.float64),
            departures_xy_m=departures,
        )
        return cls(result, trace, float(d["wall_s"]))


def _thin(n: int) -> np.ndarray:
    """About MAX_TRACE_POINTS step indices of n, the first and the last included."""
    return np.unique(np.append(np.arange(0, n, max(1, math.ceil(n / MAX_TRACE_POINTS))), n - 1))


def _open_writer(job: EpisodeJob, env: Any, extra: dict[str, str]) -> EpisodeWriter:
    info = DatasetInfo(
        sim=job.sim,
        camera=env.unwrapped.camera.to_dict(),
        control_rate_hz=env.unwrapped.control_rate_hz,
    )
    create_or_open_dataset(job.rollout_root, info)
    meta = {"model": job.model, "checkpoint": job.checkpoint, **job.spec.to_dict()}
    return EpisodeWriter(job.rollout_root, meta, extra_columns=extra)


def load_job_policy(job: EpisodeJob) -> LoadedPolicy:
    """The job's checkpoint, loaded, its conv head in the job's precision."""
    loaded = load_driving_policy(job.checkpoint)
    loaded.policy.head.set_precision(job.head_precision)  # type: ignore[arg-type]
    return loaded


def run_job(
    job: EpisodeJob, loaded: LoadedPolicy | None = None, driver: OnnxPolicy | None = None
) -> JobOutput:
    """Builds the env, drives one episode, scores it (and its junctions) and writes its rollout.

    Args:
        job: The episode.
        loaded: The job's policy, already loaded (None: loaded here for a policy's job).
        driver: The onnxruntime driver of ``job.policy_file``, already loaded (None: loaded
            here when the job names one); it steers instead of ``loaded.policy``, which then
            only gives the training camera to check.

    Raises:
        driving.rollout.policies.CameraMismatchError: If the env's camera is not the one the
            checkpoint was trained with.
    """
    import torch

    torch.set_num_threads(job.torch_threads)
    start = time.perf_counter()
    if job.checkpoint is not None and loaded is None:
        loaded = load_job_policy(job)
    if job.policy_file is not None and driver is None:
        driver = OnnxPolicy(job.policy_file, threads=job.torch_threads)
    env = job.make_env()
    writer = None
    try:
        expert = sim.make_expert(env)
        if loaded is None:
            driver, label_driver, extra, step_columns = expert, None, {}, None
        else:
            check_camera(loaded, env.unwrapped.camera, warn=False)
            driver, label_driver = (loaded.policy if driver is None else driver), expert
            extra, step_columns = neuron_step_columns(driver)
            extra = {CURVATURE_PRED: "1/m", **extra}
        if job.rollout_root is not None:
            writer = _open_writer(job, env, extra)
        with torch.inference_mode():
            log = run_episode(
                env,
                driver,
                seed=job.spec.seed,
                writer=writer,
                label_driver=label_driver,
                step_columns=step_columns,
            )
    finally:
        env.close()
    metrics: EpisodeMetrics = metrics_from_columns(
        log.columns,
        route_length_m=log.route_length_m,
        terminated=log.terminated,
        distance_m=log.distance_m,
    )
    rollout = None
    if log.path is not None:
        rollout = os.path.relpath(log.path, Path(job.rollout_root).parents[3])
    keep = _thin(log.num_steps)
    departures = np.flatnonzero(log.columns[INTERVENTION])
    if log.terminated:
        departures = np.append(departures, log.num_steps - 1)
    x, y = log.columns[X_M], log.columns[Y_M]
    trace = TrajectoryTrace(
        job.model,
        job.spec,
        x[keep],
        y[keep],
        departures_xy_m=np.stack([x[departures], y[departures]], axis=1),
    )
    # an EpisodeLog of a simulator without route commands has no route_commands: none
    junctions = junction_metrics(
        log.columns,
        route_commands=getattr(log, "route_commands", ()),
        route_completed=log.outcome == "route_complete",
    )
    result = EpisodeResult(job.model, job.spec, metrics, rollout, junctions)
    return JobOutput(result, trace, time.perf_counter() - start)


class EvalWorker:
    """Runs evaluation jobs in one process; each checkpoint is loaded once and kept."""

    def __init__(self, torch_threads: int = 1) -> None:
        import torch

        torch.set_num_threads(torch_threads)
        self.policies: dict[tuple[str, str], LoadedPolicy] = {}  # (checkpoint, precision)
        self.threads = torch_threads
        self.drivers: dict[str, OnnxPolicy] = {}

    def run(self, job: EpisodeJob, context: TaskContext | None = None) -> JobOutput:
        """Drives one job (an evaluation episode runs to its end: the context is not polled)."""
        loaded = None
        if job.checkpoint is not None:
            key = (job.checkpoint, job.head_precision)
            if key not in self.policies:
                self.policies[key] = load_job_policy(job)
            loaded = self.policies[key]
        driver = None
        if job.policy_file is not None:  # onnxruntime is loaded only here, for a policy
            if job.policy_file not in self.drivers:
                self.drivers[job.policy_file] = OnnxPolicy(job.policy_file, threads=self.threads)
            driver = self.drivers[job.policy_file]
        return run_job(job, loaded, driver)

    def close(self) -> None:
        """Drops the loaded policies and onnxruntime sessions."""
        self.policies.clear()
        self.drivers.clear()


@dataclass(frozen=True)
class EvalWorkerFactory:
    """Builds an :class:`EvalWorker` in each process (picklable)."""

    torch_threads: int = 1
    """torch intra-op threads per worker."""

    def __call__(self) -> EvalWorker:
        """A new worker (called once in each process)."""
        return EvalWorker(self.torch_threads)

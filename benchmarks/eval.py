"""Closed-loop evaluation speed: simulated km per wall-clock minute for a cfc-ncp policy.

Usage::

    python benchmarks/eval.py                       # one core, then 2 worker processes
    python benchmarks/eval.py --workers 2 --route-km 1.0
    python benchmarks/eval.py --checkpoint runs/cfc/best

The policy drives the builtin ``train-towns`` suite (one route per town, ``--route-km`` long,
no rollouts written) in intervention mode while the expert labels every step, exactly as
``tools/evaluate.py`` runs it (``driving.evaluate.evaluation.run_jobs``); the expert
reference row is not driven. Without
``--checkpoint`` the policy is an untrained cfc-ncp (``PolicyConfig()`` defaults, weights
from ``torch.manual_seed(0)``): the speed does not depend on the weights, since the car's
speed is held by the simulator's cruise control and departures are reset in place.
Wall time includes starting the worker processes; ``cpu_s`` is the CPU time of this process
and its workers, so ``sim_km_per_cpu_min`` is less sensitive to other load on a shared
machine. Prints one JSON object.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# benchmarks/ holds a script called sim.py: drop this folder from the import path so that
# ``import sim`` finds the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import torch  # noqa: E402
import tyro  # noqa: E402

from driving.evaluate.evaluation import EvalConfig, plan_jobs, run_jobs  # noqa: E402
from driving.rollout.runner import RunnerConfig  # noqa: E402


@dataclass(frozen=True)
class BenchConfig:
    """Evaluation speed benchmark."""

    checkpoint: Path | None = None
    """Checkpoint to drive; None = an untrained cfc-ncp built with the policy API."""
    workers: tuple[int, ...] = (1, 2)
    """Worker-process counts to measure (1 = in this process, one core)."""
    route_km: float = 0.5
    """Route length per episode, km."""
    routes: int = 1
    """Routes per town of the train-towns suite."""


def untrained_checkpoint(folder: Path) -> Path:
    """Saves a randomly initialised cfc-ncp policy (default config) as a checkpoint."""
    from driving.model.checkpoint import save_checkpoint
    from driving.model.policy import PolicyConfig, SteeringPolicy

    torch.manual_seed(0)
    policy = SteeringPolicy(PolicyConfig(core="cfc-ncp"))
    return save_checkpoint(folder / "cfc-ncp-untrained", policy, training={"note": "untrained"})


def _cpu_s() -> float:
    """CPU seconds used by this process and its finished children (the pool's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(cfg: BenchConfig, checkpoint: Path, workers: int) -> dict[str, float | int]:
    """Drives the policy's episodes with ``workers`` processes and returns the speed."""
    with tempfile.TemporaryDirectory() as out:
        ev = EvalConfig(
            checkpoint=(checkpoint,),
            suite="train-towns",
            routes=cfg.routes,
            route_km=cfg.route_km,
            out=Path(out),
            rollouts="none",
            plots=False,
            workers=workers,
        )
        jobs, _ = plan_jobs(ev)
        jobs = [j for j in jobs if j.checkpoint is not None]
        cpu0 = _cpu_s()
        start = time.perf_counter()
        outputs, _ = run_jobs(jobs, RunnerConfig(workers=workers, progress=False))
        wall = time.perf_counter() - start
        cpu = _cpu_s() - cpu0
    km = sum(o.result.metrics.distance_km for o in outputs)
    steps = sum(o.result.metrics.steps for o in outputs)
    return {
        "workers": workers,
        "episodes": len(outputs),
        "sim_km": round(km, 3),
        "steps": steps,
        "wall_s": round(wall, 2),
        "sim_km_per_min": round(km / wall * 60.0, 2),
        "steps_per_s": round(steps / wall, 1),
        "cpu_s": round(cpu, 2),
        "sim_km_per_cpu_min": round(km / cpu * 60.0, 2),
        "interventions": sum(o.result.metrics.interventions for o in outputs),
    }


def main() -> None:
    cfg = tyro.cli(BenchConfig)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = cfg.checkpoint or untrained_checkpoint(Path(tmp))
        runs = [measure(cfg, checkpoint, w) for w in cfg.workers]
    print(
        json.dumps(
            {
                "benchmark": "eval",
                "policy": str(cfg.checkpoint) if cfg.checkpoint else "untrained cfc-ncp",
                "suite": "train-towns",
                "route_km": cfg.route_km,
                "cpu_count": os.cpu_count(),
                "sim_km_per_min": {str(r["workers"]): r["sim_km_per_min"] for r in runs},
                "runs": runs,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Grid scaling: wall and CPU time of one small grid with 1 worker, 2 workers and Ray.

Usage::

    python benchmarks/grid.py                              # 2 models x 2 seeds, 1 / 2 / ray
    python benchmarks/grid.py --executors 1 2 --steps 20 --route-km 0.3
    python benchmarks/grid.py --data data/builtin-30min --steps 50

Runs the same grid (``driving.grid.run.run_grid``, what ``tools/grid.py`` does: every
training, each cell's evaluation, the compare table) once per executor into a fresh folder:
``1`` (in this process), ``2`` (``--workers 2``), ``ray`` (``--ray local``, one task per CPU
of the local instance). Without ``--data`` it first records a small builtin dataset (not
timed). ``wall_s`` is the whole ``run_grid`` call (Ray's start included), ``tasks_cpu_s`` the
CPU time of the trainings and evaluations (summed over the tasks' processes),
``parent_cpu_s`` this process's own CPU time during the call (with the pool's workers while
they ran, for ``2``). ``speedup`` is ``wall_s`` of ``1`` over this executor's, and
``scaling_efficiency`` the speedup over the parallel slots (2 workers, or the Ray CPUs).
``loadavg`` is the machine's 1-minute load before and after each run: on a shared machine
the figures only compare runs made side by side. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# benchmarks/ holds a script called sim.py: drop this folder from the import path so that
# ``import sim`` finds the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import tyro  # noqa: E402

from driving.grid.config import GridConfig, parse_seeds  # noqa: E402
from driving.grid.run import run_grid  # noqa: E402
from driving.rollout.record import RecordConfig, record  # noqa: E402

TINY_TRAIN = (
    "batch_size=4", "window_steps=8", "val_fraction=0.5", "val_every=1000", "save_every=1000",
    "augment.enabled=false", "tensorboard=false",
)  # fmt: skip
"""Small training settings (validation and saving at the last step only)."""


@dataclass(frozen=True)
class BenchConfig:
    """Wall and CPU time of one grid per executor."""

    data: tuple[Path, ...] = ()
    """Datasets to train on (none: record 4 episodes of 3 s into a temporary folder)."""
    models: tuple[str, ...] = ("cfc-ncp", "lstm")
    """Models of the grid."""
    seeds: str = "0-1"
    """Seeds of the grid."""
    steps: int = 4
    """Training steps per cell."""
    suite: str = "unseen-weathers"
    """Evaluation suite."""
    routes: int = 1
    """Routes per town."""
    route_km: float = 0.1
    """Route length, km."""
    executors: tuple[str, ...] = ("1", "2", "ray")
    """Executors: a worker count, or ray (a local Ray instance)."""


def _record(folder: Path) -> Path:
    record(
        RecordConfig(
            out=folder, episodes=4, episode_s=3.0, towns=("countryside", "suburb"),
            weathers=("clear_noon",), progress=False,
        )
    )  # fmt: skip
    return folder


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _run(cfg: BenchConfig, data: tuple[Path, ...], executor: str, root: Path) -> dict[str, Any]:
    ray = executor == "ray"
    grid = GridConfig(
        data=data, out=root / f"grid-{executor}", models=cfg.models, seeds=cfg.seeds,
        suites=(cfg.suite,), train=TINY_TRAIN, steps=cfg.steps, routes=cfg.routes,
        route_km=cfg.route_km, plots=False, progress=False,
        workers=1 if ray else int(executor), ray="local" if ray else None,
    )  # fmt: skip
    load = os.getloadavg()[0]
    cpu, wall = _cpu_s(), time.perf_counter()
    summary = run_grid(grid)
    wall, cpu = time.perf_counter() - wall, _cpu_s() - cpu
    slots = (os.cpu_count() or 1) if ray else grid.workers  # a local instance takes every CPU
    return {
        "executor": "ray local" if ray else f"workers {executor}",
        "slots": slots,
        "tasks": len(summary.results),
        "wall_s": round(wall, 2),
        "tasks_cpu_s": round(summary.cpu_s, 2),
        "parent_cpu_s": round(cpu, 2),
        "loadavg": [round(load, 2), round(os.getloadavg()[0], 2)],
        "table_rows": len(summary.tables[cfg.suite].splitlines()) - 2,
    }


def main(cfg: BenchConfig) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-grid-") as tmp:
        root = Path(tmp)
        data = cfg.data or (_record(root / "data"),)
        runs = [_run(cfg, tuple(data), e, root) for e in cfg.executors]
    base = next((r for r in runs if r["executor"] == "workers 1"), None)
    for r in runs:
        if base is not None:
            r["speedup"] = round(base["wall_s"] / r["wall_s"], 3)
            r["scaling_efficiency"] = round(r["speedup"] / r["slots"], 3)
    cells = len(cfg.models) * len(parse_seeds(cfg.seeds))
    return {
        "grid": {"models": list(cfg.models), "seeds": cfg.seeds, "cells": cells,
                 "steps": cfg.steps, "suite": cfg.suite, "routes": cfg.routes,
                 "route_km": cfg.route_km},
        "cpus": os.cpu_count(),
        "runs": runs,
    }  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(main(tyro.cli(BenchConfig)), indent=2))

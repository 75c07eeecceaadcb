"""Closed-loop evaluation speed per policy runtime: simulated km per wall-clock minute.

Usage::

    python benchmarks/eval.py                                  # unseen-towns, 2 workers
    python benchmarks/eval.py --runtimes torch onnx-int8 --routes 1 --route-km 0.5
    python benchmarks/eval.py --checkpoint runs/cfc/best --repeats 2

Runs the whole evaluation exactly as ``tools/evaluate.py --suite unseen-towns --workers 2``
does (``driving.evaluate.evaluation.evaluate``: the expert reference row and the checkpoint,
the input checks, the ONNX export and its check, the first rollout per condition, metrics.json,
report and plots) once per runtime (``--runtime torch``, ``onnx``, ``onnx-int8``), in one
process so the torch baseline is measured beside the others. ``wall_s`` is the whole
``evaluate`` call (without the interpreter's start and imports, the same for every runtime);
``driving_wall_s`` is the episodes alone. ``cpu_s`` is the CPU time of this process and its
workers. Without ``--checkpoint`` it drives ``checkpoints/cfc-ncp``; with ``--untrained``, a
randomly initialised cfc-ncp (the speed does not depend on the weights: the cruise control
holds the speed and departures are reset in place).

Besides the speed, it compares each ONNX runtime's driving with torch's: per policy episode
the interventions per km and lateral RMS, and per town the pooled interventions per km and the
mean lateral RMS; the expert's episodes must be identical in every run. Prints one JSON object.
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
from typing import Any

# benchmarks/ holds a script called sim.py: drop this folder from the import path so that
# ``import sim`` finds the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import torch  # noqa: E402
import tyro  # noqa: E402

from driving.evaluate.evaluation import EvalConfig, evaluate  # noqa: E402
from driving.evaluate.report import EXPERT, load_metrics  # noqa: E402

REFERENCE_CHECKPOINT = _HERE.parent / "checkpoints" / "cfc-ncp"


@dataclass(frozen=True)
class BenchConfig:
    """Evaluation speed benchmark over policy runtimes."""

    checkpoint: Path = REFERENCE_CHECKPOINT
    """Checkpoint to drive."""
    untrained: bool = False
    """Drive an untrained cfc-ncp built with the policy API instead of ``checkpoint``."""
    suite: str = "unseen-towns"
    """Suite to drive (driving/evaluate/suites.py)."""
    runtimes: tuple[str, ...] = ("torch", "onnx", "onnx-int8")
    """Policy runtimes to measure; torch is always measured first (the baseline)."""
    workers: int = 2
    """Worker processes."""
    routes: int | None = None
    """Routes per town (None: the suite's default, 3)."""
    route_km: float | None = None
    """Route length, km (None: the suite's default, 2)."""
    repeats: int = 1
    """Runs of each runtime, interleaved (the best of them is reported)."""


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


def measure(cfg: BenchConfig, checkpoint: Path, runtime: str) -> tuple[dict[str, Any], dict]:
    """Runs the whole evaluation with one runtime; returns its speed and metrics.json."""
    with tempfile.TemporaryDirectory() as out:
        ev = EvalConfig(
            checkpoint=(checkpoint,),
            suite=cfg.suite,  # type: ignore[arg-type]
            routes=cfg.routes,
            route_km=cfg.route_km,
            out=Path(out) / "eval",
            workers=cfg.workers,
            runtime=runtime,  # type: ignore[arg-type]
            progress=False,
        )
        load = os.getloadavg()[0]
        cpu0 = _cpu_s()
        start = time.perf_counter()
        summary = evaluate(ev)
        wall = time.perf_counter() - start
        cpu = _cpu_s() - cpu0
        doc = load_metrics(summary.metrics_path)
    run = {
        "runtime": runtime,
        "episodes": summary.finished,
        "sim_km": round(summary.km, 3),
        "wall_s": round(wall, 2),
        "sim_km_per_min": round(summary.km / wall * 60.0, 2),
        "driving_wall_s": round(summary.wall_s, 2),
        "driving_sim_km_per_min": round(summary.km / summary.wall_s * 60.0, 2),
        "cpu_s": round(cpu, 2),
        "sim_km_per_cpu_min": round(summary.km / cpu * 60.0, 2),
        "loadavg_1min_before": round(load, 2),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "export": next((m.get("export") for m in doc["models"] if "export" in m), None),
    }
    return run, doc


def _by_episode(doc: dict, expert: bool) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {
        (e["spec"]["condition"], e["spec"]["town"], e["spec"]["route"]): e["metrics"]
        for e in doc["episodes"]
        if (e["model"] == EXPERT) == expert
    }


def compare(torch_doc: dict, doc: dict) -> dict[str, Any]:
    """Per-episode and per-town differences of the policy's metrics from torch's."""
    base, ours = _by_episode(torch_doc, False), _by_episode(doc, False)
    episodes = [
        {
            "town": k[1],
            "route": k[2],
            "interventions": [base[k]["interventions"], ours[k]["interventions"]],
            "interventions_per_km": [
                base[k]["interventions_per_km"],
                ours[k]["interventions_per_km"],
            ],
            "lateral_rms_m": [base[k]["lateral_error_rms_m"], ours[k]["lateral_error_rms_m"]],
        }
        for k in base
    ]

    def towns(d: dict) -> dict[str, tuple[float, float]]:
        return {
            r["key"]: (r["interventions_per_km"], r["stats"]["lateral_error_rms_m"]["mean"])
            for r in d["summary"]
            if r["model"] != EXPERT and r["group"] == "town"
        }

    tb, to = towns(torch_doc), towns(doc)
    return {
        "expert_identical": _by_episode(torch_doc, True) == _by_episode(doc, True),
        "max_abs_lateral_rms_diff_m": max(
            abs(e["lateral_rms_m"][1] - e["lateral_rms_m"][0]) for e in episodes
        ),
        "max_abs_interventions_per_km_diff": max(
            abs(e["interventions_per_km"][1] - e["interventions_per_km"][0]) for e in episodes
        ),
        "towns": {
            t: {
                "interventions_per_km": [tb[t][0], to[t][0]],
                "lateral_rms_m_mean": [tb[t][1], to[t][1]],
            }
            for t in tb
        },
        "episodes": episodes,
    }


def main() -> None:
    cfg = tyro.cli(BenchConfig)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    runtimes = ["torch", *[r for r in cfg.runtimes if r != "torch"]]
    best: dict[str, dict[str, Any]] = {}
    docs: dict[str, dict] = {}
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = untrained_checkpoint(Path(tmp)) if cfg.untrained else cfg.checkpoint
        for _ in range(cfg.repeats):
            for runtime in runtimes:
                run, doc = measure(cfg, checkpoint, runtime)
                runs.append(run)
                docs[runtime] = doc
                if runtime not in best or run["wall_s"] < best[runtime]["wall_s"]:
                    best[runtime] = run
    base = best["torch"]
    print(
        json.dumps(
            {
                "benchmark": "eval",
                "policy": "untrained cfc-ncp" if cfg.untrained else str(cfg.checkpoint),
                "suite": cfg.suite,
                "routes": cfg.routes,
                "route_km": cfg.route_km,
                "workers": cfg.workers,
                "threads_per_worker": 1,
                "cpu_count": os.cpu_count(),
                "sim_km_per_min": {r: best[r]["sim_km_per_min"] for r in runtimes},
                "speedup_vs_torch": {
                    r: round(best[r]["sim_km_per_min"] / base["sim_km_per_min"], 2)
                    for r in runtimes
                },
                "driving_speedup_vs_torch": {
                    r: round(best[r]["driving_sim_km_per_min"] / base["driving_sim_km_per_min"], 2)
                    for r in runtimes
                },
                "loadavg_1min": [r["loadavg_1min_before"] for r in runs]
                + [runs[-1]["loadavg_1min_after"]],
                "runs": runs,
                "vs_torch": {r: compare(docs["torch"], docs[r]) for r in runtimes[1:]},
            }
        )
    )


if __name__ == "__main__":
    main()

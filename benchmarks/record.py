"""Recording speed on one core with recovery views vs without (the baseline in the same run).

Usage::

    python benchmarks/record.py                    # 2 recovery views, 3 repeats of 4 x 10 s
    python benchmarks/record.py --views 4 --repeats 5

Each run is ``driving.rollout.record.record`` in this process (one worker: the expert drives
the builtin simulator, every frame is JPEG-encoded, written and fsynced as in a real
recording) into a fresh temporary dataset, the same episode plan with ``--recovery-views 0``
(baseline) and ``--recovery-views K`` alternating, so both see the same machine load; both
with the default randomised world (``--no-randomize``: the plain training towns).
OpenCV is held to one thread. Figures are medians over the repeats; ``cpu_`` ones divide by
the process's CPU time (on a shared machine the better estimate of one free core).

Prints one JSON object: ``frames_per_s`` counts every recorded frame (the car's and the
views', ``steps * (1 + K)``; target >= 1,000 per core), ``steps_per_s`` the control steps,
for ``views`` and ``baseline``, plus their ratio, the load average and the thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

# benchmarks/sim.py lies beside this file: drop this folder from the import path so that
# ``import sim`` finds the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import cv2  # noqa: E402

from driving.rollout.record import RecordConfig, record  # noqa: E402


def one_run(views: int, episodes: int, episode_s: float, randomize: bool) -> dict[str, float]:
    """Records the plan once; returns steps, frames, wall and CPU seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RecordConfig(
            out=Path(tmp) / "data",
            episodes=episodes,
            episode_s=episode_s,
            progress=False,
            recovery_views=views,
            randomize=randomize,
        )
        w0, c0 = time.perf_counter(), time.process_time()
        summary = record(cfg)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    frames = summary.steps * (1 + views)
    return {"steps": summary.steps, "frames": frames, "wall_s": wall, "cpu_s": cpu}


def main() -> None:
    """Runs the benchmark and prints its JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=2, help="recovery views K")
    ap.add_argument("--episodes", type=int, default=4, help="episodes per run")
    ap.add_argument("--episode-s", type=float, default=10.0, help="simulated s per episode")
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of each")
    ap.add_argument(
        "--randomize", action=argparse.BooleanOptionalAction, default=True,
        help="record the randomised world (the default recipe)",
    )  # fmt: skip
    args = ap.parse_args()
    cv2.setNumThreads(1)
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "views": []}
    one_run(args.views, 1, 1.0, args.randomize)  # warm-up (imports, caches)
    for _ in range(args.repeats):
        runs["baseline"].append(one_run(0, args.episodes, args.episode_s, args.randomize))
        runs["views"].append(one_run(args.views, args.episodes, args.episode_s, args.randomize))

    def median(name: str, num: str, den: str) -> float:
        return statistics.median(r[num] / r[den] for r in runs[name])

    out: dict[str, object] = {"recovery_views": args.views, "randomize": args.randomize}
    for name in ("views", "baseline"):
        out[name] = {
            "frames_per_s": round(median(name, "frames", "wall_s"), 1),
            "steps_per_s": round(median(name, "steps", "wall_s"), 1),
            "cpu_frames_per_s": round(median(name, "frames", "cpu_s"), 1),
            "steps_per_run": runs[name][0]["steps"],
        }
    v, b = out["views"], out["baseline"]
    out["frames_ratio"] = round(v["frames_per_s"] / b["frames_per_s"], 3)
    out["steps_ratio"] = round(v["steps_per_s"] / b["steps_per_s"], 3)
    out["target_frames_per_s"] = 1000
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    out["threads"] = {"cv2": cv2.getNumThreads(), "python": threading.active_count()}
    out["cpu_count"] = os.cpu_count()
    out["repeats"] = args.repeats
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

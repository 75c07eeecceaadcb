"""Builtin simulator speed on one core: full env steps/s with rendering and the expert driving.

Usage::

    python benchmarks/sim.py
    python benchmarks/sim.py --steps 3000 --town suburb --weather heavy_rain

Each step is ``expert.act`` + ``env.step`` (dynamics, lane measurement, camera render, info).
The clock runs over steps only; resets (road generation, the first texture tile) are timed
separately. Texture tiles built while driving are included in the step time. OpenCV is held
to one thread and the process is pinned to one core when the OS allows it.

Prints one JSON object: ``steps_per_s`` (wall clock) at the default 200x78 camera (target
>= 2,000) and ``steps_per_s_400x156`` at 400x156, plus the settings. ``cpu_steps_per_s``
divides by the process's CPU time instead: on a machine shared with other jobs it is the
better estimate of what one free core does (the wall-clock rate then also counts waiting).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

# This file is called sim.py: drop its own folder from the import path so that ``import sim``
# finds the package, not this script.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from sim import spec  # noqa: E402
from sim.builtin.env import BuiltinDrivingEnv  # noqa: E402


def measure(camera: spec.CameraSpec, steps: int, town: str, weather: str, seed: int) -> dict:
    env = BuiltinDrivingEnv(town=town, weather=weather, camera=camera, route_length_m=5000.0)
    t0 = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    reset_s = time.perf_counter() - t0
    expert = env.make_expert()
    done_steps = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    while done_steps < steps:
        action, _ = expert.act(obs, None)
        obs, _, terminated, truncated, _ = env.step(action)
        done_steps += 1
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + done_steps)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {
        "camera": f"{camera.width_px}x{camera.height_px}",
        "steps": done_steps,
        "steps_per_s": round(done_steps / elapsed, 1),
        "ms_per_step": round(1000.0 * elapsed / done_steps, 4),
        "cpu_steps_per_s": round(done_steps / cpu, 1),
        "reset_s": round(reset_s, 4),
        "image_mean": round(float(np.mean(obs[spec.IMAGE])), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--town", default="countryside")
    parser.add_argument("--weather", default="clear_noon")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    pinned = False
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        pinned = True
    default = measure(spec.CameraSpec(), args.steps, args.town, args.weather, args.seed)
    large = measure(
        spec.CameraSpec(width_px=400, height_px=156),
        args.steps // 2,
        args.town,
        args.weather,
        args.seed,
    )
    print(
        json.dumps(
            {
                "benchmark": "builtin simulator env steps with rendering + expert, one core",
                "steps_per_s": default["steps_per_s"],
                "camera": default["camera"],
                "steps_per_s_400x156": large["steps_per_s"],
                "target_steps_per_s": 2000,
                "town": args.town,
                "weather": args.weather,
                "default": default,
                "large": large,
                "pinned_to_one_core": pinned,
                "opencv_threads": cv2.getNumThreads(),
                "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
                "python": platform.python_version(),
                "opencv": cv2.__version__,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Speed of our CfC/LTC cells against the reference ncps 1.0.1, side by side in one process.

Usage:
    python benchmarks/cells.py            # prints one JSON object
    python benchmarks/cells.py --quick    # fewer repetitions (smoke check, noisier)

Single-threaded (``torch.set_num_threads(1)``), CPU, 32 sensory inputs, the default steering
wiring ``NCP(12, 6, 1, 6, 4, 6, 6, seed=20190120)`` (one fresh wiring object per model, as
ncps adds synapses on every build). Per-step latency: batch 1, state carried, autograd off,
median over ``steps`` calls after a warm-up (ours: ``module.step(x, elapsed, h)``; ncps: its
wrapper ``module(x (1, 1, 32), hx)``). Training: batch 32 x 32 steps, MSE on the output
sequence, ``zero_grad + forward + backward`` (no optimiser step), median over ``iters``;
ncps runs without timespans because its wrapper breaks for batched timespans (issue 83),
ours with per-sample elapsed times. The models are timed in interleaved rounds so that load
from other processes hits them alike. Ratios are ncps time / ours (wired CfC, same wiring)
and our LTC time / our wired CfC time.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import ncps
import ncps.torch as ncps_torch
import ncps.wirings as ncps_wirings
import torch
from torch import nn

from driving.model.cfc import CfC, WiredCfC
from driving.model.ltc import LTC
from driving.model.wiring import DEFAULT_STEERING_NCP, NCP

INPUTS = 32
NEURONS = 19


def _ncps_wiring() -> ncps_wirings.NCP:
    return ncps_wirings.NCP(**DEFAULT_STEERING_NCP)


def _our_wiring() -> NCP:
    return NCP(**DEFAULT_STEERING_NCP)


def build_models() -> dict[str, tuple[str, nn.Module]]:
    """Name -> (flavour "ours" | "ncps", module)."""
    return {
        "wired_cfc": ("ours", WiredCfC(INPUTS, _our_wiring())),
        "wired_cfc_ncps_compatible": (
            "ours",
            WiredCfC(INPUTS, _our_wiring(), ncps_compatible=True),
        ),
        "ncps_wired_cfc": ("ncps", ncps_torch.CfC(INPUTS, _ncps_wiring())),
        "ltc": ("ours", LTC(INPUTS, _our_wiring())),
        "ncps_ltc": ("ncps", ncps_torch.LTC(INPUTS, _ncps_wiring())),
        "dense_cfc": ("ours", CfC(INPUTS, NEURONS)),
        "ncps_dense_cfc": ("ncps", ncps_torch.CfC(INPUTS, NEURONS)),
    }


def step_fn(flavour: str, model: nn.Module) -> Callable[[], None]:
    """One closed-loop step at batch 1 with the state carried."""
    x = torch.randn(1, INPUTS)
    elapsed = torch.full((1,), 1.0)
    h = torch.zeros(1, model.state_size)
    state = {"h": h}
    if flavour == "ours":

        def run() -> None:
            _, state["h"] = model.step(x, elapsed, state["h"])

    else:
        x3 = x.unsqueeze(1)  # (1, 1, F)

        def run() -> None:
            _, state["h"] = model(x3, state["h"])

    return run


def train_fn(flavour: str, model: nn.Module) -> Callable[[], None]:
    """zero_grad + forward + backward on a (32, 32, 32) batch."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 32, INPUTS, generator=gen)
    elapsed = torch.rand(32, 32, generator=gen) + 0.5
    params = [p for p in model.parameters() if p.requires_grad]

    def run() -> None:
        for p in params:
            p.grad = None
        y = model(x, elapsed)[0] if flavour == "ours" else model(x)[0]
        (y - 0.1).square().mean().backward()

    return run


def timed_rounds(
    fns: dict[str, Callable[[], None]], repeats: int, rounds: int
) -> dict[str, list[float]]:
    """Interleave: each round runs every fn ``repeats // rounds`` times; seconds per call."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    per_round = max(repeats // rounds, 1)
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return times


def main(quick: bool = False) -> dict:
    """Measure everything and return the JSON-ready result."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    steps, iters = (300, 10) if quick else (2000, 40)
    models = build_models()
    for _, m in models.values():
        m.eval()  # no dropout anywhere; autograd still on for training timing
    step_fns = {k: step_fn(f, m) for k, (f, m) in models.items()}
    train_fns = {k: train_fn(f, m) for k, (f, m) in models.items()}
    with torch.no_grad():
        for fn in step_fns.values():  # warm-up
            for _ in range(200):
                fn()
        step_times = timed_rounds(step_fns, steps, rounds=10)
    for fn in train_fns.values():  # warm-up
        for _ in range(3):
            fn()
    train_times = timed_rounds(train_fns, iters, rounds=5)

    def med(ts: list[float], scale: float) -> float:
        return round(statistics.median(ts) * scale, 3)

    result: dict = {
        "benchmark": "cells",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "ncps": _ncps_version(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus_visible": os.cpu_count(),
        "loadavg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "wiring": {"kind": "NCP", **DEFAULT_STEERING_NCP, "inputs": INPUTS},
        "step_batch": 1,
        "step_samples": len(step_times["wired_cfc"]),
        "train_batch": 32,
        "train_steps": 32,
        "train_samples": len(train_times["wired_cfc"]),
        "step_us": {k: med(v, 1e6) for k, v in step_times.items()},
        "train_fwd_bwd_ms": {k: med(v, 1e3) for k, v in train_times.items()},
        "trainable_params": {
            k: sum(p.numel() for p in m.parameters() if p.requires_grad)
            for k, (_, m) in models.items()
        },
    }
    result["wired_cfc_connected_params"] = models["wired_cfc"][1].masked_parameter_count()
    s, t = result["step_us"], result["train_fwd_bwd_ms"]
    result["step_speedup_vs_ncps"] = round(s["ncps_wired_cfc"] / s["wired_cfc"], 2)
    result["train_speedup_vs_ncps"] = round(t["ncps_wired_cfc"] / t["wired_cfc"], 2)
    result["ncps_compatible_step_speedup_vs_ncps"] = round(
        s["ncps_wired_cfc"] / s["wired_cfc_ncps_compatible"], 2
    )
    result["ncps_compatible_train_speedup_vs_ncps"] = round(
        t["ncps_wired_cfc"] / t["wired_cfc_ncps_compatible"], 2
    )
    result["cfc_vs_ltc_train_speedup"] = round(t["ltc"] / t["wired_cfc"], 2)
    result["cfc_vs_ltc_step_speedup"] = round(s["ltc"] / s["wired_cfc"], 2)
    result["ltc_train_speedup_vs_ncps"] = round(t["ncps_ltc"] / t["ltc"], 2)
    result["dense_cfc_train_speedup_vs_ncps"] = round(t["ncps_dense_cfc"] / t["dense_cfc"], 2)
    result["dense_cfc_step_speedup_vs_ncps"] = round(s["ncps_dense_cfc"] / s["dense_cfc"], 2)
    return result


def _ncps_version() -> str:
    try:
        from importlib.metadata import version

        return version("ncps")
    except Exception:  # pragma: no cover - metadata missing
        return getattr(ncps, "__version__", "unknown")


if __name__ == "__main__":
    print(json.dumps(main(quick="--quick" in sys.argv[1:]), indent=2))

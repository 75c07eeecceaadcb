"""Speed of our CfC/LTC cores against the reference ncps 1.0.1, eager and compiled, in one run.

Usage:
    python benchmarks/cells.py               # prints one JSON object (compiling ncps: minutes)
    python benchmarks/cells.py --quick       # fewer repetitions (smoke check, noisier)
    python benchmarks/cells.py --no-compile  # skip ncps under torch.compile

Single-threaded (``torch.set_num_threads(1)``), CPU, 32 sensory inputs, the default steering
wiring ``NCP(12, 6, 1, 6, 4, 6, 6, seed=20190120)`` (one fresh wiring object per model, as
ncps adds synapses on every build). Per-step latency: batch 1, state carried, autograd off,
median over ``steps`` calls after a warm-up (ours: ``module.step(x, elapsed, h)``; ncps: its
wrapper ``module(x (1, 1, 32), hx)``). Training: batch 32 x 32 steps, MSE on the output
sequence, ``zero_grad + forward + backward`` (no optimiser step), median over ``iters``;
ncps runs without timespans because its wrapper breaks for batched timespans (issue 83),
ours with per-sample elapsed times. ``ncps_compiled`` is ncps's wired CfC under
``torch.compile`` (inductor, default mode, ``dynamic=False``), compiled for training and
for the step each in a fresh process (two compiled modules in one process slow each other
down) and timed there interleaved with our wired CfC; compilation and a warm-up run before
timing and are reported apart (``compile_s``). The models are timed in interleaved rounds
so that load from other processes hits them alike; the load average is read before and
after. Ratios are the other module's time / ours (> 1: ours is faster).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import version

import ncps.torch as ncps_torch
import ncps.wirings as ncps_wirings
import torch
from torch import nn

from driving.model.cfc import CfC, WiredCfC
from driving.model.ltc import LTC
from driving.model.wiring import DEFAULT_STEERING_NCP, NCP

INPUTS = 32
NEURONS = 19
TARGETS = {"train_vs_ncps_compiled": 2.0, "step_vs_ncps_eager": 3.0}
"""Issue 16's targets for the wired CfC (B32 x T32 training; batch-1 step)."""


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
    state = {"h": torch.zeros(1, NEURONS)}
    if flavour == "ours":

        def run() -> None:
            _, state["h"] = model.step(x, elapsed, state["h"])

    else:
        x3 = x.unsqueeze(1)  # (1, 1, F)

        def run() -> None:
            _, state["h"] = model(x3, state["h"])

    return run


def train_fn(flavour: str, model: nn.Module, params: list[nn.Parameter]) -> Callable[[], None]:
    """zero_grad + forward + backward on a (32, 32, 32) batch."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 32, INPUTS, generator=gen)
    elapsed = torch.rand(32, 32, generator=gen) + 0.5

    def run() -> None:
        for p in params:
            p.grad = None
        y = model(x, elapsed)[0] if flavour == "ours" else model(x)[0]
        (y - 0.1).square().mean().backward()

    return run


def compiled_worker(kind: str, quick: bool) -> dict:
    """In a fresh process: ncps's wired CfC compiled for one use, timed beside ours.

    Two compiled ncps modules in one process slow each other down (they share dynamo's
    code cache: 6.7 -> 9.4 ms for training once the step was compiled too, in our runs), so
    each use is compiled alone, in its own process, and our wired CfC is timed there in the
    same interleaved rounds.
    """
    if kind not in ("train", "step"):
        raise SystemExit(f"--compiled-worker takes train or step, got {kind!r}")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ncps_module = ncps_torch.CfC(INPUTS, _ncps_wiring()).eval()
    ours = WiredCfC(INPUTS, _our_wiring()).eval()
    compiled = torch.compile(ncps_module, dynamic=False)
    grad = kind == "train"
    if grad:
        fns = {
            "ncps_compiled_wired_cfc": train_fn("ncps", compiled, list(ncps_module.parameters())),
            "wired_cfc": train_fn("ours", ours, list(ours.parameters())),
        }
        repeats, rounds, warmup = (10, 5, 3) if quick else (40, 5, 3)
    else:
        fns = {
            "ncps_compiled_wired_cfc": step_fn("ncps", compiled),
            "wired_cfc": step_fn("ours", ours),
        }
        repeats, rounds, warmup = (300, 10, 200) if quick else (2000, 10, 200)
    with torch.set_grad_enabled(grad):
        t0 = time.perf_counter()
        fns["ncps_compiled_wired_cfc"]()  # compiles
        compile_s = round(time.perf_counter() - t0, 1)
        for fn in fns.values():
            for _ in range(warmup):
                fn()
        times = timed_rounds(fns, repeats, rounds)
    scale = 1e3 if grad else 1e6
    return {
        "compile_s": compile_s,
        "loadavg_1min": round(os.getloadavg()[0], 2),
        **{k: round(statistics.median(v) * scale, 3) for k, v in times.items()},
    }


def run_compiled_worker(kind: str, quick: bool) -> dict:
    """``compiled_worker(kind)`` in a subprocess (its JSON on stdout)."""
    args = [sys.executable, __file__, "--compiled-worker", kind] + (["--quick"] if quick else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


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


def _ratio(slow: float, fast: float) -> float:
    return round(slow / fast, 2)


def main(quick: bool = False, compile_ncps: bool = True) -> dict:
    """Measure everything and return the JSON-ready result."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    load_before = os.getloadavg()
    steps, iters = (300, 10) if quick else (2000, 40)
    models = build_models()
    for _, m in models.values():
        m.eval()  # no dropout anywhere; autograd still on for training timing
    step_fns = {k: step_fn(f, m) for k, (f, m) in models.items()}
    train_fns = {
        k: train_fn(f, m, [p for p in m.parameters() if p.requires_grad])
        for k, (f, m) in models.items()
    }
    with torch.no_grad():
        for fn in step_fns.values():  # warm-up
            for _ in range(200):
                fn()
        step_times = timed_rounds(step_fns, steps, rounds=10)
    for fn in train_fns.values():  # warm-up
        for _ in range(3):
            fn()
    train_times = timed_rounds(train_fns, iters, rounds=5)
    s = {k: round(statistics.median(v) * 1e6, 3) for k, v in step_times.items()}
    t = {k: round(statistics.median(v) * 1e3, 3) for k, v in train_times.items()}
    result: dict = {
        "benchmark": "cells",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "ncps": version("ncps"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus_visible": os.cpu_count(),
        "loadavg_1_5_15_before": [round(v, 2) for v in load_before],
        "loadavg_1_5_15_after": [round(v, 2) for v in os.getloadavg()],
        "wiring": {"kind": "NCP", **DEFAULT_STEERING_NCP, "inputs": INPUTS},
        "step_batch": 1,
        "step_samples": len(step_times["wired_cfc"]),
        "train_batch": 32,
        "train_steps": 32,
        "train_samples": len(train_times["wired_cfc"]),
        "step_us": s,
        "train_fwd_bwd_ms": t,
        "trainable_params": {
            k: sum(p.numel() for p in m.parameters() if p.requires_grad)
            for k, (_, m) in models.items()
        },
        "wired_cfc_connected_params": models["wired_cfc"][1].masked_parameter_count(),
        "step_speedup_vs_ncps": _ratio(s["ncps_wired_cfc"], s["wired_cfc"]),
        "train_speedup_vs_ncps": _ratio(t["ncps_wired_cfc"], t["wired_cfc"]),
        "ncps_compatible_step_speedup_vs_ncps": _ratio(
            s["ncps_wired_cfc"], s["wired_cfc_ncps_compatible"]
        ),
        "ncps_compatible_train_speedup_vs_ncps": _ratio(
            t["ncps_wired_cfc"], t["wired_cfc_ncps_compatible"]
        ),
        "cfc_vs_ltc_train_speedup": _ratio(t["ltc"], t["wired_cfc"]),
        "cfc_vs_ltc_step_speedup": _ratio(s["ltc"], s["wired_cfc"]),
        "ltc_train_speedup_vs_ncps": _ratio(t["ncps_ltc"], t["ltc"]),
        "dense_cfc_train_speedup_vs_ncps": _ratio(t["ncps_dense_cfc"], t["dense_cfc"]),
        "dense_cfc_step_speedup_vs_ncps": _ratio(s["ncps_dense_cfc"], s["dense_cfc"]),
        "targets": TARGETS,
    }
    if compile_ncps:  # each compiled use in its own process, beside ours
        workers = {kind: run_compiled_worker(kind, quick) for kind in ("train", "step")}
        result["ncps_compiled"] = {
            "train_fwd_bwd_ms": workers["train"],
            "step_us": workers["step"],
            "note": "each compiled in a fresh process, timed interleaved with ours there",
        }
        result["train_speedup_vs_ncps_compiled"] = _ratio(
            workers["train"]["ncps_compiled_wired_cfc"], workers["train"]["wired_cfc"]
        )
        result["step_speedup_vs_ncps_compiled"] = _ratio(
            workers["step"]["ncps_compiled_wired_cfc"], workers["step"]["wired_cfc"]
        )
        result["train_target_met"] = (
            result["train_speedup_vs_ncps_compiled"] >= TARGETS["train_vs_ncps_compiled"]
        )
    result["step_target_met"] = result["step_speedup_vs_ncps"] >= TARGETS["step_vs_ncps_eager"]
    return result


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--compiled-worker" in args:  # a subprocess of main(): never recurses
        kind = args[args.index("--compiled-worker") + 1]
        print(json.dumps(compiled_worker(kind, quick="--quick" in args)))
    else:
        result = main(quick="--quick" in args, compile_ncps="--no-compile" not in args)
        print(json.dumps(result, indent=2))

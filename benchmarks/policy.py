"""Per-frame latency of the full steering policy at batch 1 on one thread: torch eager vs ONNX.

Usage::

    python benchmarks/policy.py                          # every core, 500 frames each
    python benchmarks/policy.py --cores cfc-ncp --frames 2000

"Full policy" = the closed-loop ``Driver`` call from a raw simulator observation (uint8
78x200 RGB frame, ``t_s``) to the float32 curvature command, state carried:

* ``torch_act_ms``: ``SteeringPolicy.act`` in eager torch (``torch.set_num_threads(1)``);
* ``torch_native_conv_act_ms``: the same with PyTorch's own convolution choice
  (``perception.encoder.ONEDNN_INFERENCE = False``: the eager policy before oneDNN was
  called directly), the baseline of ``onednn_speedup``;
* ``torch_bf16_act_ms``: the same with the conv head's convolutions in bfloat16
  (``ConvHead.set_precision("bf16")``, the evaluation's ``--runtime torch-bf16``);
* ``onnxruntime_act_ms``: ``driving.model.export.OnnxPolicy.act`` on the exported batch-1 graph
  (onnxruntime CPU, ``intra_op_num_threads=1``);
* ``torch_step_ms`` / ``onnxruntime_run_ms``: the bare computation, tensors/arrays in and out
  (``step_frames`` under ``inference_mode``; ``InferenceSession.run``), i.e. without the
  observation checks and conversions;
* ``torch_parts_ms``: the eager step split into the policy's two stages, ``encode`` (frame ->
  conv features) and ``decode`` (features -> command and state: core and readout), and
  ``encode``'s two parts, ``preprocess`` (crop, resize, standardisation) and ``conv_head``
  (``conv_head_bf16``: the bf16 head).

Each value is the median over ``--frames`` calls after ``--warmup`` calls; the paths are timed
in interleaved rounds so that load from other processes hits them alike. Weights are a fresh
initialisation (``torch.manual_seed(0)``): the speed does not depend on them.
``onnxruntime_int8_act_ms`` runs the same graph with its conv head quantised to int8
(``driving/model/quantize.py``, calibrated on 64 training-town frames), beside the float32
graph as its baseline (``int8_speedup_over_fp32_onnxruntime``); ``bf16_speedup_over_fp32_torch``
is the bf16 head's ratio to the fp32 eager policy. Targets (issue 16): eager <= 1.3 ms,
onnxruntime <= 1 ms per frame for cfc-ncp. On a shared machine the numbers
are noisy: the JSON carries the 1-minute load average; take the median of several runs.
Prints one JSON object.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Run as a script: make the project importable, and drop benchmarks/ (it holds a sim.py).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402
import tyro  # noqa: E402

from driving.model.export import OnnxPolicy, export_policy  # noqa: E402
from driving.model.policy import CORE_NAMES, PolicyConfig, SteeringPolicy  # noqa: E402
from driving.model.quantize import calibration_frames, quantize_int8  # noqa: E402
from driving.rollout.episode import Driver  # noqa: E402
from perception import encoder  # noqa: E402
from sim.spec import CameraSpec  # noqa: E402

TARGET_TORCH_MS = 1.3
TARGET_ONNX_MS = 1.0


@dataclass(frozen=True)
class BenchConfig:
    """Options of the policy latency benchmark."""

    cores: tuple[str, ...] = CORE_NAMES
    """Cores to time (the targets apply to cfc-ncp)."""
    frames: int = 500
    """Timed calls per path (the median is reported)."""
    warmup: int = 100
    """Untimed calls per path first."""
    rounds: int = 10
    """Interleaved rounds the timed calls are split into."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.cores) - set(CORE_NAMES))
        if unknown:
            raise ValueError(f"unknown cores {unknown}; choose from {CORE_NAMES}")
        if self.frames < 1 or self.warmup < 0 or self.rounds < 1:
            raise ValueError(f"need frames >= 1, warmup >= 0, rounds >= 1, got {self}")


def _observations(n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "image": rng.integers(0, 256, (78, 200, 3), dtype=np.uint8),
            "speed_mps": np.array([10.0], np.float32),
            "t_s": np.array([0.0]),
        }
        for _ in range(n)
    ]


def _driver_loop(driver: Driver, observations: list[dict[str, np.ndarray]]) -> Callable[[], None]:
    """One ``act`` per call on the next frame, time advancing 50 ms, state carried."""
    box = {"state": driver.reset(), "i": 0, "t_s": 0.0}

    def run() -> None:
        obs = dict(observations[box["i"] % len(observations)])
        box["t_s"] += 0.05
        obs["t_s"] = np.array([box["t_s"]])
        _, box["state"] = driver.act(obs, box["state"])
        box["i"] += 1

    return run


def _native_convolutions(fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` with PyTorch choosing the convolution kernels (no direct oneDNN call)."""

    def run() -> None:
        encoder.ONEDNN_INFERENCE = False
        try:
            fn()
        finally:
            encoder.ONEDNN_INFERENCE = True

    return run


def _paths(
    policy: SteeringPolicy,
    bf16: SteeringPolicy,
    driver: OnnxPolicy,
    int8: OnnxPolicy,
    observations: list[dict[str, np.ndarray]],
) -> dict[str, Callable[[], None]]:
    frames = [torch.from_numpy(o["image"])[None] for o in observations]  # (1, H, W, 3)
    arrays = [o["image"][None] for o in observations]
    dt = torch.full((1,), 0.05)
    dt_np = np.full((1,), 0.05, np.float32)
    n = policy.state_size
    box = {"h": torch.zeros(1, n), "h_np": np.zeros((1, n), np.float32), "i": 0}

    def torch_step() -> None:
        with torch.inference_mode():
            _, box["h"] = policy.step_frames(frames[box["i"] % len(frames)], dt, box["h"])
        box["i"] += 1

    def onnx_run() -> None:
        feed = {"image": arrays[box["i"] % len(arrays)], "state": box["h_np"], "dt_s": dt_np}
        _, box["h_np"] = driver.session.run(None, feed)
        box["i"] += 1

    return {
        "torch_act_ms": _driver_loop(policy, observations),
        "torch_native_conv_act_ms": _native_convolutions(_driver_loop(policy, observations)),
        "torch_bf16_act_ms": _driver_loop(bf16, observations),
        "onnxruntime_act_ms": _driver_loop(driver, observations),
        "onnxruntime_int8_act_ms": _driver_loop(int8, observations),
        "torch_step_ms": torch_step,
        "onnxruntime_run_ms": onnx_run,
    }


def _parts(
    policy: SteeringPolicy, bf16: SteeringPolicy, image: np.ndarray
) -> dict[str, Callable[[], None]]:
    """The eager step's stages and encode's parts on fixed inputs (autograd off)."""
    frames = torch.from_numpy(image)[None]  # (1, H, W, 3)
    dt = torch.full((1,), 0.05)
    with torch.inference_mode():
        f = policy.encode(frames)  # (1, 32)
        _, h = policy.decode(f, dt, torch.zeros(1, policy.state_size))  # (1, N)
        x = policy.preprocess(frames)  # (1, 3, 78, 200): the conv head's input

    def wrap(fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                fn()

        return run

    return {
        "encode": wrap(lambda: policy.encode(frames)),
        "decode": wrap(lambda: policy.decode(f, dt, h)),
        "preprocess": wrap(lambda: policy.preprocess(frames)),
        "conv_head": wrap(lambda: policy.head(x)),
        "conv_head_bf16": wrap(lambda: bf16.head(x)),
    }


def _timed(fns: dict[str, Callable[[], None]], cfg: BenchConfig) -> dict[str, float]:
    """Median ms per call of each fn, warm-up first, then interleaved rounds."""
    for fn in fns.values():
        for _ in range(cfg.warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    per_round = -(-cfg.frames // cfg.rounds)
    for _ in range(cfg.rounds):
        for name, fn in fns.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {k: round(1e3 * statistics.median(v), 4) for k, v in times.items()}


def main(cfg: BenchConfig) -> dict:
    """Exports and times every requested core; returns the JSON-ready result."""
    torch.set_num_threads(1)
    observations = _observations(16)
    calibration = calibration_frames(CameraSpec(), frames=64)
    cores: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for core in cfg.cores:
            torch.manual_seed(0)
            policy = SteeringPolicy(PolicyConfig(core=core)).eval()
            bf16 = copy.deepcopy(policy)
            bf16.head.set_precision("bf16")
            path = export_policy(policy, Path(tmp) / f"{core}.onnx")
            int8_path = quantize_int8(path, Path(tmp) / f"{core}-int8.onnx", calibration)
            driver, int8 = OnnxPolicy(path, threads=1), OnnxPolicy(int8_path, threads=1)
            result = _timed(_paths(policy, bf16, driver, int8, observations), cfg)
            result["int8_speedup_over_fp32_onnxruntime"] = round(
                result["onnxruntime_act_ms"] / result["onnxruntime_int8_act_ms"], 2
            )
            result["onednn_speedup"] = round(
                result["torch_native_conv_act_ms"] / result["torch_act_ms"], 2
            )
            result["bf16_speedup_over_fp32_torch"] = round(
                result["torch_act_ms"] / result["torch_bf16_act_ms"], 2
            )
            result["torch_parts_ms"] = _timed(_parts(policy, bf16, observations[0]["image"]), cfg)
            result["onnx_bytes"] = path.stat().st_size
            result["onnx_int8_bytes"] = int8_path.stat().st_size
            cores[core] = result
    out: dict = {
        "benchmark": "policy",
        "batch": 1,
        "threads": torch.get_num_threads(),
        "frames": cfg.frames,
        "image": [78, 200, 3],
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
        "cpus_visible": os.cpu_count(),
        "loadavg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "targets_ms": {"torch_act": TARGET_TORCH_MS, "onnxruntime_act": TARGET_ONNX_MS},
        "cores": cores,
    }
    if "cfc-ncp" in cores:
        c = cores["cfc-ncp"]
        out["cfc_ncp_meets_targets"] = {
            "torch_act": c["torch_act_ms"] <= TARGET_TORCH_MS,
            "torch_bf16_act": c["torch_bf16_act_ms"] <= TARGET_TORCH_MS,
            "onnxruntime_act": c["onnxruntime_act_ms"] <= TARGET_ONNX_MS,
            "onnxruntime_int8_act": c["onnxruntime_int8_act_ms"] <= TARGET_ONNX_MS,
        }
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(main(tyro.cli(BenchConfig)), indent=2))

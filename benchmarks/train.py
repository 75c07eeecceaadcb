"""Training speed of the default policy at the default resolution: frames/s through one step.

Usage::

    python benchmarks/train.py                     # cfc-ncp, batch 32 x 16 frames, 78x200
    python benchmarks/train.py --model lstm --steps 10 --threads 1

One step is exactly what ``driving.train.trainer`` does per batch: uint8 windows from memory ->
preprocessing -> augmentation -> conv head -> core -> weighted MSE -> backward -> clipping ->
Adam. Frames are random (speed does not depend on content). Prints one JSON object;
``train_frames_per_s`` is the figure to compare, ``cpu_s_per_step`` shows how much CPU a
step used (on a shared machine wall time can be much longer than CPU time / threads).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import torch
import tyro

from driving.model.policy import CoreName, PolicyConfig, SteeringPolicy
from driving.train.trainer import TrainConfig, weighted_mse
from perception.augment import Augmenter


@dataclass(frozen=True)
class Args:
    """Benchmark settings (defaults: the training preset)."""

    model: CoreName = "cfc-ncp"
    """Core of the policy."""
    steps: int = 8
    """Timed optimizer steps (after 2 warm-up steps)."""
    batch_size: int = TrainConfig.batch_size
    """Windows per batch."""
    window_steps: int = TrainConfig.window_steps
    """Frames per window."""
    threads: int | None = None
    """torch CPU threads (None = torch's default)."""
    augment: bool = True
    """Include the training augmentation."""


def main(args: Args) -> dict:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    policy = SteeringPolicy(PolicyConfig(core=args.model)).train()
    augment = Augmenter().train() if args.augment else None
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    b, t = args.batch_size, args.window_steps
    frames = torch.randint(0, 256, (b, t, 78, 200, 3), dtype=torch.uint8)
    dt = torch.full((b, t), 0.05)
    label, weight = torch.randn(b, t) * 0.01, torch.ones(b, t)

    def step() -> None:
        pred, _ = policy(frames, dt, augment=augment)
        loss = weighted_mse(pred * 100, label * 100, weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 10.0)
        opt.step()

    for _ in range(2):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "benchmark": "train",
        "model": args.model,
        "resolution": [78, 200],
        "batch_windows": b,
        "window_steps": t,
        "augment": args.augment,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "train_frames_per_s": round(args.steps * b * t / wall, 1),
        "s_per_step": round(wall / args.steps, 3),
        "cpu_s_per_step": round(cpu / args.steps, 3),
        "torch": torch.__version__,
    }


if __name__ == "__main__":
    print(json.dumps(main(tyro.cli(Args))))

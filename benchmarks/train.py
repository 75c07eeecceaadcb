"""Training speed of the default policy at the default resolution: frames/s through one step.

Usage::

    python benchmarks/train.py                     # cfc-ncp, batch 32 x 16 frames, 78x200
    python benchmarks/train.py --model lstm --steps 10 --threads 1

One step is what ``driving.train.trainer`` does per batch, with its own functions: uint8
windows from memory -> preprocessing -> augmentation -> conv head -> core -> weighted MSE
(``window_loss``) -> backward -> clipping -> Adam (``make_optimizer``). Frames are random
(speed does not depend on content). Prints one JSON object; ``train_frames_per_s`` is the
figure to compare. The baseline measured in the same run, ``forward_frames_per_s``, is the
same batch through the policy without gradients or augmentation; ``train_to_forward_ratio``
is their quotient (what learning costs on top of driving). ``precision_train_frames_per_s``
is the same step with ``--precision`` (default bf16 autocast on the conv head), timed in
rounds interleaved with the fp32 step, and ``precision_speedup_over_fp32`` their ratio
(medians over the rounds). ``cpu_s_per_step`` shows how much
CPU a step used (on a shared machine wall time can be much longer than CPU time / threads);
``loadavg`` is the machine's load while it ran.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro

from driving.model.policy import CoreName, PolicyConfig, SteeringPolicy
from driving.train.config import TrainConfig
from driving.train.loss import make_optimizer, window_loss
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
    threads: int | None = TrainConfig.threads
    """torch CPU threads (default: the trainer's own setting; None = torch's default)."""
    augment: bool = True
    """Include the training augmentation."""
    precision: str = "bf16"
    """The training precision measured against the fp32 step (``TrainConfig.precision``)."""
    rounds: int = 3
    """Rounds; each times the fp32 step, then the ``precision`` step (interleaved)."""


def _timed(step: Callable[[], None], steps: int) -> tuple[float, float]:
    """(wall s, CPU s) per call of ``step`` after 2 warm-up calls."""
    for _ in range(2):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def main(args: Args) -> dict:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    policy = SteeringPolicy(PolicyConfig(core=args.model)).train()
    augment = Augmenter().train() if args.augment else None
    opt = make_optimizer(policy, TrainConfig(data=(), out=Path("unused")))
    b, t = args.batch_size, args.window_steps
    batch = {
        "frames": torch.randint(0, 256, (b, t, 78, 200, 3), dtype=torch.uint8),
        "dt_s": torch.full((b, t), 0.05),
        "label": torch.randn(b, t) * 0.01,
        "weight": torch.ones(b, t),
    }

    def step(precision: str) -> Callable[[], None]:
        def run() -> None:
            loss = window_loss(policy, batch, augment, precision)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), TrainConfig.grad_clip_norm)
            opt.step()

        return run

    def forward() -> None:
        with torch.no_grad():
            policy(batch["frames"], batch["dt_s"])

    fp32, fast = [], []
    for _ in range(args.rounds):  # interleaved, so load from other processes hits both
        fp32.append(_timed(step("fp32"), args.steps))
        fast.append(_timed(step(args.precision), args.steps))
    wall, cpu = sorted(fp32)[len(fp32) // 2]
    fast_wall, fast_cpu = sorted(fast)[len(fast) // 2]
    forward_wall, _ = _timed(forward, args.steps)
    return {
        "benchmark": "train",
        "model": args.model,
        "resolution": [78, 200],
        "batch_windows": b,
        "window_steps": t,
        "augment": args.augment,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "train_frames_per_s": round(b * t / wall, 1),
        "precision": args.precision,
        "precision_train_frames_per_s": round(b * t / fast_wall, 1),
        "precision_speedup_over_fp32": round(wall / fast_wall, 3),
        "precision_cpu_s_per_step": round(fast_cpu, 3),
        "forward_frames_per_s": round(b * t / forward_wall, 1),
        "train_to_forward_ratio": round(forward_wall / wall, 3),
        "s_per_step": round(wall, 3),
        "cpu_s_per_step": round(cpu, 3),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
    }


if __name__ == "__main__":
    print(json.dumps(main(tyro.cli(Args))))

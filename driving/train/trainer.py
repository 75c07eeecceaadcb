"""Imitation training of a steering policy on recorded episodes.

Recipe (Lechner et al. 2020, ``reference/driving_papers.md`` sections 1 and 6):

* windows of ``window_steps`` consecutive frames (16 by default, 0.8 s at 20 Hz) with the
  real elapsed time between frames, state starting at zero for every window;
* the label is the expert's clean curvature (1/m), regressed as ``curvature * label_scale``;
* loss: squared error weighted by ``w = exp(weight_alpha_m * |label|)`` and normalised by the
  sum of the weights (curves count more than the many straight frames);
* Adam, linear warm-up then cosine decay of the learning rate, global gradient-norm clipping;
* training-only augmentation (``perception/augment.py``);
* validation on held-out episodes (and optionally on held-out towns) without augmentation.

CPU threads default to 1: with 2 threads a step ran about 7 times slower than with 1 whenever
other jobs kept the second core busy (OpenMP threads spin waiting for each other), while one
thread still fits the default preset in 15 minutes. Pass ``--threads 2`` on an idle machine.

Data loading is not the bottleneck: every frame is decoded once into an in-memory uint8 array
(30 simulated minutes at 78 x 200 are 1.7 GB) and windows are sliced from it.

Outputs, in the run folder ``out``::

    out/last/             the latest checkpoint, with train_state.pt (resume from here)
    out/best/             the checkpoint with the lowest validation loss
    out/metrics.jsonl     one JSON record per logged step / validation
    out/tb/               TensorBoard scalars (train/loss, train/lr, train/grad_norm, val/loss)

``--resume`` continues exactly where ``out/last`` stopped: same step, weights, optimizer
moments and RNG state, so the final weights equal those of an uninterrupted run (on CPU with
the same number of threads). Batches are a pure function of (seed, step), so nothing else
needs saving.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import default_collate
from tqdm import tqdm

from driving.data.episodes import CURVATURE_EXPERT, Episode, read_info
from driving.data.validate import load_valid_episodes
from driving.data.windows import WindowConfig, WindowDataset, split_by_episode, split_by_town
from driving.model.checkpoint import (
    BEST_DIR,
    FORMAT_VERSION,
    LAST_DIR,
    METRICS_FILE,
    load_policy,
    load_train_state,
    read_checkpoint_config,
    read_metrics,
    save_checkpoint,
)
from driving.model.policy import PolicyConfig, SteeringPolicy
from driving.viz.visualize import log_training_figures
from liquid_drive.errors import LiquidDriveError
from perception.augment import AugmentConfig, Augmenter

logger = logging.getLogger(__name__)


class TrainConfigError(LiquidDriveError, ValueError):
    """A training configuration or run folder that cannot be used."""


@dataclass(frozen=True)
class TrainConfig:
    """Training of a steering policy by imitation (``python tools/train.py --help``)."""

    data: tuple[Path, ...]
    """Episode dataset folder(s) recorded by tools/record.py (same camera)."""
    out: Path
    """Run folder: last/ and best/ checkpoints, metrics.jsonl, tb/."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """The policy to train (--model picks the core)."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Training-only image augmentation."""
    steps: int = 600
    """Optimizer steps in total (the default fits 15 min on 2 CPU cores)."""
    batch_size: int = 32
    """Windows per batch."""
    window_steps: int = 16
    """Frames per training window (NCP: 16)."""
    stride_steps: int = 4
    """Steps between the starts of candidate windows of an episode."""
    step_skip_max: int = 1
    """Training windows advance 1 to this many recorded steps per step (irregular, longer
    control periods for the continuous-time cores); validation keeps consecutive steps."""
    lr: float = 2e-3
    """Peak learning rate of Adam for the conv head."""
    core_lr_scale: float = 5.0
    """The core and readout learn this many times faster than the conv head (NCP practice)."""
    lr_final_fraction: float = 0.05
    """Learning rate at the last step as a fraction of the peak (cosine decay)."""
    warmup_steps: int = 20
    """Steps of linear learning-rate warm-up from zero."""
    weight_decay: float = 0.0
    """Adam L2 weight decay."""
    grad_clip_norm: float = 10.0
    """Global gradient-norm clipping threshold (NCP: 10)."""
    weight_alpha_m: float = 30.0
    """Loss weight exp(alpha * |curvature|), alpha in m (0 = plain MSE)."""
    label: str = CURVATURE_EXPERT
    """Column regressed (the expert's clean curvature, 1/m)."""
    val_fraction: float = 0.1
    """Share of episodes (of the training towns) held out for validation."""
    val_towns: tuple[str, ...] = ()
    """Towns held out entirely and validated separately (val_town/loss)."""
    val_every: int = 150
    """Validate every this many steps (and at the end)."""
    val_max_windows: int = 256
    """Validation windows (non-overlapping, evenly spread over the held-out episodes)."""
    save_every: int = 150
    """Save out/last every this many steps (and at the end)."""
    log_every: int = 10
    """Write train metrics every this many steps."""
    seed: int = 0
    """Seed of the initial weights, the batch order and the augmentation."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto = cuda when available, else cpu."""
    threads: int | None = 1
    """torch CPU threads (1 is robust on a shared machine; None = torch's default, 1 per core)."""
    resume: bool = False
    """Continue the run in out/last exactly where it stopped."""
    tensorboard: bool = True
    """Write TensorBoard scalars to out/tb."""

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "window_steps", "stride_steps", "val_every")
        for name in (*positive, "save_every", "log_every", "val_max_windows"):
            if getattr(self, name) < 1:
                raise TrainConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise TrainConfigError(f"lr must be positive, got {self.lr}")
        if not (math.isfinite(self.core_lr_scale) and self.core_lr_scale > 0):
            raise TrainConfigError(f"core_lr_scale must be positive, got {self.core_lr_scale}")
        if not 0.0 <= self.lr_final_fraction <= 1.0:
            raise TrainConfigError(
                f"lr_final_fraction must be in [0, 1], got {self.lr_final_fraction}"
            )
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip_norm <= 0:
            raise TrainConfigError(
                f"need warmup_steps >= 0, weight_decay >= 0, grad_clip_norm > 0; got "
                f"{self.warmup_steps}, {self.weight_decay}, {self.grad_clip_norm}"
            )
        if not (math.isfinite(self.weight_alpha_m) and self.weight_alpha_m >= 0):
            raise TrainConfigError(f"weight_alpha_m must be >= 0, got {self.weight_alpha_m}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise TrainConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.threads is not None and self.threads < 1:
            raise TrainConfigError(f"threads must be >= 1, got {self.threads}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form stored as training provenance in every checkpoint."""
        d = dataclasses.asdict(self)
        d["data"] = [str(p) for p in self.data]
        d["out"] = str(self.out)
        d["val_towns"] = list(self.val_towns)
        d["policy"] = self.policy.to_dict()
        return json.loads(json.dumps(d))


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class CachedEpisode(Episode):
    """An episode whose frames were decoded once into memory (uint8 (N, H, W, 3))."""

    cache: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def load(cls, episode: Episode) -> CachedEpisode:
        """Decodes every frame of ``episode`` into memory."""
        base = {f.name: getattr(episode, f.name) for f in dataclasses.fields(Episode)}
        return cls(**base, cache=episode.frames(0, len(episode)))

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start..stop-1`` from memory: uint8 (stop - start, H, W, 3) RGB (a view)."""
        assert self.cache is not None
        return self.cache[start:stop]


def split_episodes(
    episodes: list[Episode], cfg: TrainConfig
) -> tuple[list[Episode], list[Episode], list[Episode]]:
    """(train, validation, held-out-town validation) episodes, reproducibly for the seed."""
    rest, town_val = split_by_town(episodes, cfg.val_towns) if cfg.val_towns else (episodes, [])
    train, val = split_by_episode(rest, cfg.val_fraction, seed=cfg.seed)
    if not train:
        raise TrainConfigError(f"no training episodes left in {[str(p) for p in cfg.data]}")
    return train, val, town_val


def _validation_windows(dataset: WindowDataset, max_windows: int) -> list[int]:
    """Up to ``max_windows`` window indices evenly spread over the dataset."""
    n = len(dataset)
    if n <= max_windows:
        return list(range(n))
    return np.linspace(0, n - 1, max_windows).round().astype(int).tolist()


def _batch(dataset: WindowDataset, indices: list[int], device: torch.device) -> dict[str, Tensor]:
    items = default_collate([dataset[i] for i in indices])
    return {k: v.to(device, non_blocking=True) for k, v in items.items()}


def batch_indices(step: int, num_windows: int, batch_size: int, seed: int) -> list[int]:
    """Window indices of batch ``step``: epochs of seeded permutations, last partial dropped.

    A pure function of its arguments, so a resumed run sees the same batches.
    """
    per_epoch = max(num_windows // batch_size, 1)
    epoch, pos = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(num_windows, generator=g)
    chunk = perm[pos * batch_size : (pos + 1) * batch_size]
    if len(chunk) < batch_size:  # fewer windows than a batch: repeat the permutation
        chunk = perm.repeat(math.ceil(batch_size / num_windows))[:batch_size]
    return chunk.tolist()


# ---------------------------------------------------------------------------------------------
# Loss and schedule


def weighted_mse(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """``sum(w * (pred - target)^2) / sum(w)`` over all elements."""
    return (weight * (pred - target) ** 2).sum() / weight.sum()


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``lr * lr_final_fraction``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(cfg.steps - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    low = cfg.lr * cfg.lr_final_fraction
    return low + 0.5 * (cfg.lr - low) * (1.0 + math.cos(math.pi * progress))


def window_loss(
    policy: SteeringPolicy, batch: dict[str, Tensor], augment: Augmenter | None = None
) -> Tensor:
    """Weighted MSE of the scaled curvature over a batch of windows."""
    pred, _ = policy(batch["frames"], batch["dt_s"], augment=augment)  # (B, T) 1/m
    scale = policy.config.label_scale
    return weighted_mse(pred * scale, batch["label"].to(pred) * scale, batch["weight"].to(pred))


@torch.no_grad()
def evaluate_loss(
    policy: SteeringPolicy, dataset: WindowDataset, indices: list[int], batch_size: int
) -> dict[str, float]:
    """Weighted loss and RMSE (1/m) of the policy on the given windows, without augmentation."""
    was_training = policy.training
    policy.eval()
    dev = policy.device
    num = den = sq = count = 0.0
    for k in range(0, len(indices), batch_size):
        batch = _batch(dataset, indices[k : k + batch_size], dev)
        pred, _ = policy(batch["frames"], batch["dt_s"])
        err = pred - batch["label"].to(pred)
        w = batch["weight"].to(pred)
        scale = policy.config.label_scale
        num += float((w * (err * scale) ** 2).sum())
        den += float(w.sum())
        sq += float((err**2).sum())
        count += err.numel()
    policy.train(was_training)
    return {"loss": num / den, "rmse_per_m": math.sqrt(sq / count)}


# ---------------------------------------------------------------------------------------------
# The run


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainConfigError("--device cuda but torch sees no CUDA device")
    return torch.device(name)


class _Sink:
    """metrics.jsonl (rewritten from the checkpoint's copy on resume) + TensorBoard."""

    def __init__(self, out: Path, records: list[dict], tensorboard: bool, start_step: int):
        self.records = records
        self.path = out / METRICS_FILE
        with open(self.path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tb"), purge_step=start_step or None)

    def log(self, step: int, values: dict[str, float]) -> None:
        record = {"step": step, "time": time.time(), **values}
        self.records.append(record)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _check_resumable(cfg: TrainConfig, last: Path) -> None:
    stored = read_checkpoint_config(last).get("training", {}).get("config", {})
    ignore = {"resume", "device", "threads", "tensorboard"}
    now = cfg.to_dict()
    diff = sorted(
        k for k in now.keys() | stored.keys() if k not in ignore and now.get(k) != stored.get(k)
    )
    if diff:
        raise TrainConfigError(
            f"--resume with settings that differ from {last}: {diff} "
            f"(stored {[stored.get(k) for k in diff]}, given {[now.get(k) for k in diff]})"
        )


def _check_data_fits_policy(cfg: TrainConfig) -> None:
    """The datasets' camera and rate must match the policy's preprocessing and first dt."""
    pre = cfg.policy.preprocess
    for root in cfg.data:
        info = read_info(root)
        h, w, _ = info.image_shape
        if (h, w) != (pre.input_height_px, pre.input_width_px):
            raise TrainConfigError(
                f"{root}: frames are {h}x{w} px (HxW) but the policy's preprocessing expects "
                f"{pre.input_height_px}x{pre.input_width_px}; set --policy.preprocess.input-"
                "height-px/--policy.preprocess.input-width-px (and a crop/resize)"
            )
        dt = 1.0 / info.control_rate_hz
        if not math.isclose(dt, cfg.policy.first_step_dt_s, rel_tol=1e-6):
            raise TrainConfigError(
                f"{root}: recorded at {info.control_rate_hz} Hz but the policy assumes "
                f"{cfg.policy.first_step_dt_s} s before an episode's first frame; pass "
                f"--policy.first-step-dt-s {dt:.6g}"
            )


def train(cfg: TrainConfig) -> Path:
    """Trains a policy as configured and returns the best checkpoint's folder.

    Raises:
        TrainConfigError: For missing data, an existing run without ``--resume``, or a
            ``--resume`` whose settings differ from the stored run.
    """
    if not cfg.data:
        raise TrainConfigError("no --data given: pass one or more episode dataset folders")
    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: TrainConfig) -> Path:
    device = resolve_device(cfg.device)
    out, last, best = Path(cfg.out), Path(cfg.out) / LAST_DIR, Path(cfg.out) / BEST_DIR
    if cfg.resume and not (last / "train_state.pt").is_file():
        raise TrainConfigError(f"--resume: {last / 'train_state.pt'} not found")
    if not cfg.resume and (last.exists() or best.exists()):
        raise TrainConfigError(f"{out} already holds a run: pass --resume or another --out")
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    _check_data_fits_policy(cfg)
    episodes = load_valid_episodes(cfg.data)  # every data check up front, each naming its file
    train_eps, val_eps, town_eps = split_episodes(episodes, cfg)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # cv2 frees the GIL
        cached = list(pool.map(CachedEpisode.load, (*train_eps, *val_eps, *town_eps)))
    train_eps = cached[: len(train_eps)]
    val_eps = cached[len(train_eps) : len(train_eps) + len(val_eps)]
    town_eps = cached[len(train_eps) + len(val_eps) :]
    wcfg = WindowConfig(
        cfg.window_steps, cfg.stride_steps, cfg.label, cfg.weight_alpha_m, cfg.step_skip_max
    )
    vcfg = dataclasses.replace(wcfg, stride_steps=cfg.window_steps, step_skip_max=1)
    train_set = WindowDataset(train_eps, wcfg)
    if len(train_set) == 0:
        span = (cfg.window_steps - 1) * cfg.step_skip_max + 1
        raise TrainConfigError(
            f"no episode of at least {span} recorded steps (one window) in {cfg.data}"
        )
    val_sets = {
        name: (ds, _validation_windows(ds, cfg.val_max_windows))
        for name, eps in (("val", val_eps), ("val_town", town_eps))
        if eps and len(ds := WindowDataset(eps, vcfg)) > 0
    }
    frames = sum(len(e) for e in cached)
    logger.info(
        "data: %d frames in %d train / %d val / %d held-out-town episodes, %d train windows, "
        "decoded in %.1f s",
        frames, len(train_eps), len(val_eps), len(town_eps), len(train_set),
        time.perf_counter() - t0,
    )  # fmt: skip

    # Model, optimizer, state.
    torch.manual_seed(cfg.seed)
    if cfg.resume:
        _check_resumable(cfg, last)
        policy = load_policy(last, device)
        state = load_train_state(last)
        records = read_metrics(last)
    else:
        policy = SteeringPolicy(cfg.policy).to(device)
        state, records = None, []
    policy.train()
    augment = Augmenter(cfg.augment).train()
    head = list(policy.head.parameters())
    rest = [p for n, p in policy.named_parameters() if not n.startswith("head.")]
    groups = [{"params": head, "lr_scale": 1.0}, {"params": rest, "lr_scale": cfg.core_lr_scale}]
    opt = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, best_loss, best_step = 0, math.inf, -1
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        start, best_loss, best_step = state["step"], state["best_val_loss"], state["best_step"]
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"])
        logger.info("resuming %s at step %d", last, start)
    logger.info("policy %s: parameters %s", cfg.policy.core, policy.parameter_counts())
    sink = _Sink(out, records, cfg.tensorboard, start)
    # A fixed validation window whose saliency and neuron traces go to TensorBoard as images.
    figure_window = None
    if sink.tb is not None and val_sets:
        ds, idx = next(iter(val_sets.values()))
        figure_window = ds[int(idx[0])]

    def provenance(step: int, val: dict[str, float] | None) -> dict[str, Any]:
        return {
            "config": cfg.to_dict(),
            "step": step,
            "validation": val,
            "best_val_loss": best_loss if math.isfinite(best_loss) else None,
            "train_episodes": [str(e.path) for e in train_eps],
            "val_episodes": [str(e.path) for e in val_eps],
            "val_town_episodes": [str(e.path) for e in town_eps],
            "train_frames": sum(len(e) for e in train_eps),
            "label": {"column": cfg.label, "unit": "1/m", "scale": cfg.policy.label_scale},
            "torch_version": torch.__version__,
            "device": str(device),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def train_state(step: int) -> dict[str, Any]:
        s = {
            "format_version": FORMAT_VERSION,
            "step": step,
            "optimizer": opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "best_val_loss": best_loss,
            "best_step": best_step,
        }
        if device.type == "cuda":
            s["cuda_rng"] = torch.cuda.get_rng_state()
        return s

    val: dict[str, float] | None = None
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=None, desc="train")
    for step in bar:
        lr = learning_rate(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_scale"]
        batch = _batch(
            train_set, batch_indices(step, len(train_set), cfg.batch_size, cfg.seed), device
        )
        loss = window_loss(policy, batch, augment)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip_norm))
        opt.step()
        done, loss_value = step + 1, float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"training loss became {loss_value} at step {done}")
        bar.set_postfix(loss=f"{loss_value:.4f}")
        if done % cfg.log_every == 0 or done == cfg.steps:
            sink.log(done, {"train/loss": loss_value, "train/lr": lr, "train/grad_norm": grad_norm})
        if done % cfg.val_every == 0 or done == cfg.steps:
            val = {}
            for name, (ds, idx) in val_sets.items():
                for k, v in evaluate_loss(policy, ds, idx, cfg.batch_size).items():
                    val[f"{name}/{k}"] = v
            val["frames_seen"] = float(done * cfg.batch_size * cfg.window_steps)
            sink.log(done, val)
            if figure_window is not None:
                with torch.random.fork_rng(devices=[]):  # figures never shift the batch RNG
                    log_training_figures(sink.tb, policy, figure_window, done)
            current = val.get("val/loss", val.get("val_town/loss", loss_value))
            logger.info("step %d: %s", done, {k: round(v, 5) for k, v in val.items()})
            if current < best_loss:
                best_loss, best_step = current, done
                save_checkpoint(best, policy, training=provenance(done, val), metrics=sink.records)
        if done % cfg.save_every == 0 or done == cfg.steps:
            save_checkpoint(
                last, policy, training=provenance(done, val), train_state=train_state(done),
                metrics=sink.records,
            )  # fmt: skip
    sink.close()
    logger.info("done: best val loss %.5f at step %d; %s", best_loss, best_step, best)
    return best

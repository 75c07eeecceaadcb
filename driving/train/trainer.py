"""Imitation training of a steering policy on recorded episodes.

Recipe (Lechner et al. 2020, ``reference/driving_papers.md`` sections 1 and 6):

* windows of ``window_steps`` consecutive frames (16 by default, 0.8 s at 20 Hz) with the
  real elapsed time between frames, state starting at zero for every window;
* the label is the expert's clean curvature (1/m), regressed as ``curvature * label_scale``;
* loss and schedule: :mod:`driving.train.loss` (weighted MSE; Adam with linear warm-up then
  cosine decay, global gradient-norm clipping);
* training-only augmentation (``perception/augment.py``);
* validation on held-out episodes (and optionally on held-out towns) without augmentation.

The job is split by module: :mod:`driving.train.config` (``TrainConfig``),
:mod:`driving.train.data` (episodes in memory, the split and its fingerprint, batches),
:mod:`driving.train.loss`, :mod:`driving.train.state` (the run folder, resuming) and this
loop. CPU threads default to 1 (``--threads``; ``checkpoints/README.md`` has the measurement
behind that default). Importing this module loads neither PyAV nor matplotlib: the
TensorBoard figures import them only when they are drawn.

Outputs, in the run folder ``out``::

    out/last/             the latest checkpoint, with train_state.pt (resume from here)
    out/best/             the checkpoint with the lowest validation loss
    out/metrics.jsonl     one JSON record per logged step / validation
    out/tb/               TensorBoard scalars (train/loss, train/lr, train/grad_norm, val/loss)

Each checkpoint records the training data's camera (``config.json`` ``camera``) and the split
it trained on (``training.data_split``); ``--resume`` is exact and checked
(:mod:`driving.train.state`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from driving.data.validate import load_valid_episodes
from driving.data.windows import WindowConfig, WindowDataset
from driving.model.checkpoint import METRICS_FILE, TRAIN_STATE_FILE, save_checkpoint
from driving.model.policy import SteeringPolicy
from driving.train.config import TrainConfig, TrainConfigError
from driving.train.data import (
    CachedEpisode,
    available_memory_bytes,
    batch_indices,
    check_data_fits_policy,
    check_recovery_data,
    choose_frame_cache,
    make_batch,
    resolve_recovery_share,
    split_episodes,
    split_fingerprint,
    validation_windows,
    warn_unseen_commands,
)
from driving.train.loss import (
    DEAD_STATE_STD,
    evaluate_loss,
    learning_rate,
    make_optimizer,
    weighted_mse,
    window_loss,
)
from driving.train.state import (
    DATA_SPLIT_KEY,
    capture_train_state,
    check_same_data,
    open_run,
    read_resumable,
    restore_train_state,
)
from liquid_drive.errors import LiquidDriveError
from perception.augment import Augmenter

__all__ = [
    "TrainConfig",
    "TrainConfigError",
    "TrainingDivergedError",
    "batch_indices",
    "evaluate_loss",
    "learning_rate",
    "train",
    "weighted_mse",
    "window_loss",
]

logger = logging.getLogger(__name__)


class TrainingDivergedError(LiquidDriveError, FloatingPointError):
    """The training loss became NaN or infinite."""


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

    def figures(self, policy: SteeringPolicy, window: dict[str, Any], step: int) -> None:
        """Saliency and neuron traces of one window as TensorBoard images (draws lazily)."""
        from driving.viz.tensorboard import log_training_figures  # matplotlib: only here

        with torch.random.fork_rng(devices=[]):  # figures never shift the batch RNG
            log_training_figures(self.tb, policy, window, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def train(cfg: TrainConfig) -> Path:
    """Trains a policy as configured and returns the best checkpoint's folder.

    Raises:
        TrainConfigError: For missing data, an existing run without ``--resume``, or a
            ``--resume`` whose settings or data differ from the stored run.
        CheckpointError: For a ``--resume`` from a damaged ``out/last`` (names the file and
            the field).
        TrainingDivergedError: If the loss becomes NaN or infinite.
    """
    if not cfg.data:
        raise TrainConfigError("no --data given: pass one or more episode dataset folders")
    cfg = resolve_recovery_share(cfg)
    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        # reads the frames, and each batch's with the jpeg cache (OpenCV frees the GIL)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            return _train(cfg, pool)
    finally:
        torch.set_num_threads(threads)


def warn_collapse(val: dict[str, float], state_size: int, step: int) -> bool:
    """Warns when at least half the core's states stopped moving on a validation set.

    Returns:
        Whether it warned.
    """
    for key, dead in val.items():
        if key.endswith("/dead_states") and state_size and dead >= state_size / 2:
            logger.warning(
                "step %d: %d of %d core states are constant over the %s windows (std < %g): "
                "the core has collapsed and passes little from the camera to the command; "
                "try another --seed or a lower --lr / --core-lr-scale",
                step, int(dead), state_size, key.split("/")[0], DEAD_STATE_STD,
            )  # fmt: skip
            return True
    return False


def _train(cfg: TrainConfig, pool: ThreadPoolExecutor) -> Path:
    device = resolve_device(cfg.device)
    run = open_run(cfg)
    out, last, best = run.out, run.last, run.best
    # Every file of out/last is checked before the data are decoded.
    resumed = read_resumable(cfg, last, device) if cfg.resume else None

    t0 = time.perf_counter()
    camera = check_data_fits_policy(cfg)
    episodes = load_valid_episodes(cfg.data)  # every data check up front, each naming its file
    train_eps, val_eps, town_eps = split_episodes(episodes, cfg)
    check_recovery_data(train_eps, cfg)
    views = [bool(cfg.recovery_share)] * len(train_eps) + [False] * (len(val_eps) + len(town_eps))
    every = [*train_eps, *val_eps, *town_eps]
    jpeg, need = choose_frame_cache(every, views, cfg, available_memory_bytes())
    logger.info(
        "loading %.2f GiB of frames into memory (%s)", need / 2**30,
        "JPEG bytes, decoded per batch" if jpeg else "decoded",
    )  # fmt: skip
    cached = list(pool.map(CachedEpisode.load, every, views, [jpeg] * len(every)))
    batch_pool = pool if jpeg else None
    train_eps = cached[: len(train_eps)]
    val_eps = cached[len(train_eps) : len(train_eps) + len(val_eps)]
    town_eps = cached[len(train_eps) + len(val_eps) :]
    fingerprint = split_fingerprint(train_eps, val_eps, town_eps)
    if resumed is not None:
        check_same_data(cfg, last, resumed.training, fingerprint)
    wcfg = WindowConfig(
        cfg.window_steps, cfg.stride_steps, cfg.label, cfg.weight_alpha_m, cfg.step_skip_max
    )
    if cfg.recovery_share:
        wcfg = dataclasses.replace(wcfg, recovery_share=cfg.recovery_share, recovery_seed=cfg.seed)
    wcfg = dataclasses.replace(wcfg, command_balance=cfg.command_balance)
    vcfg = dataclasses.replace(
        wcfg, stride_steps=cfg.window_steps, step_skip_max=1, recovery_share=0.0,
        command_balance=False,
    )  # fmt: skip
    warn_unseen_commands(cfg.policy.command_input, train_eps)
    train_set = WindowDataset(train_eps, wcfg)
    if len(train_set) == 0:
        span = (cfg.window_steps - 1) * cfg.step_skip_max + 1
        raise TrainConfigError(
            f"no episode of at least {span} recorded steps (one window) in {cfg.data}"
        )
    val_sets = {
        name: (ds, validation_windows(ds, cfg.val_max_windows))
        for name, eps in (("val", val_eps), ("val_town", town_eps))
        if eps and len(ds := WindowDataset(eps, vcfg)) > 0
    }
    frames = sum(len(e) for e in cached)
    logger.info(
        "data: %d frames in %d train / %d val / %d held-out-town episodes, %d train windows, "
        "loaded and hashed in %.1f s",
        frames, len(train_eps), len(val_eps), len(town_eps), len(train_set),
        time.perf_counter() - t0,
    )  # fmt: skip

    # Model, optimizer, state.
    torch.manual_seed(cfg.seed)
    policy = resumed.policy if resumed else SteeringPolicy(cfg.policy).to(device)
    policy.train()
    augment = Augmenter(cfg.augment).train()
    opt = make_optimizer(policy, cfg)
    start, best_loss, best_step = 0, math.inf, -1
    if resumed is not None:
        file = last / TRAIN_STATE_FILE
        start, best_loss, best_step = restore_train_state(resumed.state, file, opt, device)
        logger.info("resuming %s at step %d", last, start)
    logger.info(
        "policy %s, command input %s: parameters %s",
        cfg.policy.core, cfg.policy.command_input, policy.parameter_counts(),
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)  # the first write: everything above is checked
    sink = _Sink(out, resumed.records if resumed else [], cfg.tensorboard, start)
    # A fixed validation window whose saliency and neuron traces go to TensorBoard as images.
    figure_window = None
    if sink.tb is not None:
        sink.tb.add_text("policy/command_input", cfg.policy.command_input, start)
    if sink.tb is not None and val_sets:
        ds, idx = next(iter(val_sets.values()))
        figure_window = ds[int(idx[0])]

    def save(folder: Path, step: int, val: dict[str, float] | None, resumable: bool) -> None:
        training = {
            "config": cfg.to_dict(),
            "step": step,
            "validation": val,
            "best_val_loss": best_loss if math.isfinite(best_loss) else None,
            "train_episodes": [str(e.path) for e in train_eps],
            "val_episodes": [str(e.path) for e in val_eps],
            "val_town_episodes": [str(e.path) for e in town_eps],
            DATA_SPLIT_KEY: fingerprint,
            "train_frames": sum(len(e) for e in train_eps),
            "label": {"column": cfg.label, "unit": "1/m", "scale": cfg.policy.label_scale},
            "torch_version": torch.__version__,
            "device": str(device),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        state = capture_train_state(step, opt, best_loss, best_step, device) if resumable else None
        save_checkpoint(
            folder, policy, training=training, camera=camera, train_state=state,
            metrics=sink.records,
        )  # fmt: skip

    val: dict[str, float] | None = None
    warned_collapse = False
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=None, desc="train")
    for step in bar:
        lr = learning_rate(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_scale"]
        indices = batch_indices(step, len(train_set), cfg.batch_size, cfg.seed)
        batch = make_batch(train_set, indices, device, batch_pool)
        loss = window_loss(policy, batch, augment, cfg.precision)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip_norm))
        opt.step()
        done, loss_value = step + 1, float(loss.detach())
        if not math.isfinite(loss_value):
            raise TrainingDivergedError(f"training loss became {loss_value} at step {done}")
        bar.set_postfix(loss=f"{loss_value:.4f}")
        if done % cfg.log_every == 0 or done == cfg.steps:
            sink.log(done, {"train/loss": loss_value, "train/lr": lr, "train/grad_norm": grad_norm})
        if done % cfg.val_every == 0 or done == cfg.steps:
            val = {}
            for name, (ds, idx) in val_sets.items():
                for k, v in evaluate_loss(policy, ds, idx, cfg.batch_size, batch_pool).items():
                    val[f"{name}/{k}"] = v
            val["frames_seen"] = float(done * cfg.batch_size * cfg.window_steps)
            warned_collapse = warned_collapse or warn_collapse(val, policy.state_size, done)
            sink.log(done, val)
            if figure_window is not None:
                sink.figures(policy, figure_window, done)
            current = val.get("val/loss", val.get("val_town/loss", loss_value))
            logger.info("step %d: %s", done, {k: round(v, 5) for k, v in val.items()})
            if current < best_loss:
                best_loss, best_step = current, done
                save(best, done, val, resumable=False)
        if done % cfg.save_every == 0 or done == cfg.steps:
            save(last, done, val, resumable=True)
    sink.close()
    logger.info("done: best val loss %.5f at step %d; %s", best_loss, best_step, best)
    return best

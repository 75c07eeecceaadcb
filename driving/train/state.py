"""A training run's folder and resumable state: opening, checking, saving, restoring.

``--resume`` continues exactly where ``out/last`` stopped: same step, weights, optimizer
moments and RNG state, so the final weights equal those of an uninterrupted run (on CPU with
the same number of threads). Batches are a pure function of (seed, step), so nothing else
needs saving. Before it does, everything it reads is checked: the settings against the stored
ones (:func:`check_resumable`), the data against the stored split (:func:`check_same_data`)
and every field of ``train_state.pt`` (:func:`check_train_state`), each problem a
:class:`~driving.model.checkpoint.CheckpointError` or :class:`TrainConfigError` naming the file
and the field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from driving.data.atomic import recover_dir
from driving.model.checkpoint import (
    BEST_DIR,
    CONFIG_FILE,
    LAST_DIR,
    TRAIN_STATE_FILE,
    TRAIN_STATE_VERSION,
    CheckpointError,
    load_policy,
    load_train_state,
    read_checkpoint_config,
    read_metrics,
)
from driving.model.policy import SteeringPolicy
from driving.train.config import RESUME_FREE_FIELDS, TrainConfig, TrainConfigError
from driving.train.data import data_changes

logger = logging.getLogger(__name__)

DATA_SPLIT_KEY = "data_split"
"""Key of the split's fingerprint in the training provenance (``driving.train.data``)."""


class DataChangedError(TrainConfigError):
    """``--resume`` on data that differ from what the run was trained on."""


@dataclass(frozen=True)
class RunFolder:
    """The folders of one training run."""

    out: Path
    """The run folder."""
    last: Path
    """The latest checkpoint, with ``train_state.pt``."""
    best: Path
    """The checkpoint with the lowest validation loss."""


def open_run(cfg: TrainConfig) -> RunFolder:
    """Recovers what an interrupted save left, checks the folder suits ``--resume`` or not.

    Creates nothing: the trainer makes the folder once the data are checked.

    Raises:
        TrainConfigError: ``--resume`` without a resumable ``last/``, or a fresh run into a
            folder that holds one (the message says what to do).
    """
    out = Path(cfg.out)
    run = RunFolder(out, out / LAST_DIR, out / BEST_DIR)
    for folder in (run.last, run.best):
        if recover_dir(folder):
            logger.warning("%s: put back the copy parked by a save that was killed", folder)
    resumable = (run.last / TRAIN_STATE_FILE).is_file()
    if not resumable and run.best.exists() and not run.last.exists():
        raise TrainConfigError(
            f"{out} holds {BEST_DIR}/ but no {LAST_DIR}/ to resume from (the run stopped "
            f"before its first save of {LAST_DIR}/): pass another --out, or delete {out} to "
            "start it again"
        )
    if cfg.resume and not resumable:
        raise TrainConfigError(f"--resume: {run.last / TRAIN_STATE_FILE} not found")
    if not cfg.resume and (run.last.exists() or run.best.exists()):
        raise TrainConfigError(f"{out} already holds a run: pass --resume or another --out")
    return run


@dataclass(frozen=True)
class Resumed:
    """What ``out/last`` holds, every part checked (:func:`read_resumable`)."""

    policy: SteeringPolicy
    """The weights, loaded strictly."""
    state: dict[str, Any]
    """``train_state.pt``, checked by :func:`check_train_state`."""
    records: list[dict[str, Any]]
    """The training records so far (``metrics.jsonl``)."""
    training: dict[str, Any]
    """The training provenance of ``config.json``."""


def read_resumable(cfg: TrainConfig, last: Path, device: torch.device) -> Resumed:
    """Reads and checks everything a ``--resume`` needs from ``last`` (before any data).

    Raises:
        TrainConfigError: If the settings differ from the stored run's.
        CheckpointError: For any damaged file or field of ``last`` (names both).
    """
    training = read_checkpoint_config(last)["training"]
    check_resumable(cfg, last, training)
    policy = load_policy(last, device)
    state = load_train_state(last)
    check_train_state(state, last / TRAIN_STATE_FILE, cfg, training.get("step"))
    return Resumed(policy, state, read_metrics(last), training)


def check_resumable(cfg: TrainConfig, last: Path, training: dict[str, Any]) -> None:
    """Refuses a ``--resume`` whose settings differ from the stored run's."""
    stored = training.get("config", {})
    if not isinstance(stored, dict):
        raise CheckpointError(f"{last / CONFIG_FILE}: field 'training.config' is not an object")
    now = cfg.to_dict()
    diff = sorted(
        k
        for k in now.keys() | stored.keys()
        if k not in RESUME_FREE_FIELDS and now.get(k) != stored.get(k)
    )
    if diff:
        raise TrainConfigError(
            f"--resume with settings that differ from {last}: {diff} "
            f"(stored {[stored.get(k) for k in diff]}, given {[now.get(k) for k in diff]})"
        )


def check_same_data(
    cfg: TrainConfig, last: Path, training: dict[str, Any], fingerprint: dict[str, Any]
) -> None:
    """Refuses a ``--resume`` on changed data unless ``resume_allow_data_change``.

    Raises:
        DataChangedError: If episodes were added, removed, rewritten or moved between
            training and validation since ``last`` was saved.
    """
    stored = training.get(DATA_SPLIT_KEY)
    if stored is None:
        logger.warning("%s records no data split (an older run): the data are not checked", last)
        return
    if not isinstance(stored, dict):
        raise CheckpointError(f"{last / CONFIG_FILE}: field 'training.{DATA_SPLIT_KEY}' is bad")
    changes = data_changes(stored, fingerprint)
    if not changes:
        return
    what = "; ".join(changes)
    if cfg.resume_allow_data_change:
        logger.warning("resuming on changed data (--resume-allow-data-change): %s", what)
        return
    raise DataChangedError(
        f"--resume: the data differ from what {last} was trained on ({what}); training on "
        "them would change the training/validation split. Restore the data, or pass "
        "--resume-allow-data-change to continue on the new split"
    )


def capture_train_state(
    step: int, opt: torch.optim.Optimizer, best_loss: float, best_step: int, device: torch.device
) -> dict[str, Any]:
    """What ``train_state.pt`` holds after ``step`` steps (plain types and tensors only)."""
    state = {
        "format_version": TRAIN_STATE_VERSION,
        "step": step,
        "optimizer": opt.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "best_val_loss": best_loss,
        "best_step": best_step,
    }
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state()
    return state


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_train_state(
    state: dict[str, Any], file: Path, cfg: TrainConfig, saved_step: Any = None
) -> None:
    """Checks every field of a loaded ``train_state.pt`` before anything is restored.

    Args:
        state: From :func:`~driving.model.checkpoint.load_train_state`.
        file: The file, for the messages.
        cfg: The run's configuration (``steps`` bounds the step).
        saved_step: The step ``config.json`` beside it records (None: not checked).

    Raises:
        CheckpointError: Naming the file and the first bad field.
    """

    def bad(name: str, why: str) -> CheckpointError:
        return CheckpointError(f"{file}: field '{name}' {why}")

    step = state.get("step")
    if not _is_int(step) or not 0 <= step <= cfg.steps:
        raise bad("step", f"is {step!r}, not a step in 0..{cfg.steps} (the run's --steps)")
    if saved_step is not None and saved_step != step:
        raise bad("step", f"is {step} but {file.parent / CONFIG_FILE} records {saved_step!r}")
    best_step = state.get("best_step")
    if not _is_int(best_step) or not -1 <= best_step <= step:
        raise bad("best_step", f"is {best_step!r}, not -1 (none yet) or a step in 0..{step}")
    loss = state.get("best_val_loss")
    if not isinstance(loss, (int, float)) or isinstance(loss, bool) or not loss >= 0:
        raise bad("best_val_loss", f"is {loss!r}, not a loss >= 0 (inf: none yet)")
    opt = state.get("optimizer")
    if not (
        isinstance(opt, dict)
        and isinstance(opt.get("state"), dict)
        and isinstance(opt.get("param_groups"), list)
    ):
        found = "missing" if opt is None else f"a {type(opt).__name__} without state/param_groups"
        raise bad("optimizer", f"is {found}, not an optimizer state_dict")
    want = torch.get_rng_state()
    for name, like in (("torch_rng", want), ("cuda_rng", None)):
        if name == "cuda_rng" and name not in state:
            continue
        rng = state.get(name)
        ok = isinstance(rng, Tensor) and rng.dtype == torch.uint8 and rng.dim() == 1
        if not ok or (like is not None and rng.shape != like.shape):
            shown = f"{rng.dtype} {tuple(rng.shape)}" if isinstance(rng, Tensor) else repr(rng)
            raise bad(name, f"is {shown[:80]}, not a generator state (uint8 (n,))")


def restore_train_state(
    state: dict[str, Any], file: Path, opt: torch.optim.Optimizer, device: torch.device
) -> tuple[int, float, int]:
    """Loads a checked state into the optimizer and the RNGs; returns (step, best loss, step).

    Raises:
        CheckpointError: If the optimizer state does not fit this run's parameters or holds
            non-finite moments, or a generator state is refused by torch.
    """
    try:
        opt.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
        raise CheckpointError(f"{file}: field 'optimizer' does not fit this run ({e})") from e
    params = [p for group in opt.param_groups for p in group["params"]]
    for i, p in enumerate(params):
        for key, value in opt.state.get(p, {}).items():
            if not isinstance(value, Tensor):
                continue
            name = f"optimizer.state.{i}.{key}"
            if value.dim() > 0 and value.shape != p.shape:
                raise CheckpointError(
                    f"{file}: field '{name}' is {tuple(value.shape)}, the parameter is "
                    f"{tuple(p.shape)}"
                )
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"{file}: field '{name}' holds NaN or infinite values")
    try:
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"])
    except (RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{file}: field 'torch_rng'/'cuda_rng' refused ({e})") from e
    return int(state["step"]), float(state["best_val_loss"]), int(state["best_step"])

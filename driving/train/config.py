"""The training configuration (``python tools/train.py --help`` lists every field)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from driving.data.episodes import CURVATURE_EXPERT
from driving.model.policy import PolicyConfig
from liquid_drive.errors import LiquidDriveError
from perception.augment import AugmentConfig


class TrainConfigError(LiquidDriveError, ValueError):
    """A training configuration or run folder that cannot be used."""


RESUME_FREE_FIELDS = frozenset(
    {"resume", "resume_allow_data_change", "device", "threads", "tensorboard", "frame_cache"}
)
"""Fields a ``--resume`` may change: they do not change the result (on CPU) or the run."""


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
    """Optimizer steps in total."""
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
    weight_alpha_m: float = 10.0
    """Loss weight exp(alpha * |curvature|), alpha in m (0 = plain MSE; the first preset used
    30, which over-weights the large labels of recovery views and tight bends)."""
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
    """torch CPU threads (None = torch's default, one per core)."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """Arithmetic of the conv head in training: fp32, or bf16 autocast (the weights, the
    optimizer and the recurrent core stay fp32; validation runs in fp32)."""
    resume: bool = False
    """Continue the run in out/last exactly where it stopped."""
    resume_allow_data_change: bool = False
    """With --resume: continue even if the episodes or their training/validation split
    differ from what out/last was trained on (by default that is refused)."""
    tensorboard: bool = True
    """Write TensorBoard scalars to out/tb."""
    frame_cache: Literal["auto", "decoded", "jpeg"] = "auto"
    """How the frames are held in memory: ``decoded`` (fastest; 47 kB per 78 x 200 frame),
    ``jpeg`` (their JPEG bytes, about 7 kB, decoded per batch: a few % slower), ``auto`` =
    decoded when that takes at most 60 % of the available memory, else jpeg. The result is
    the same either way."""
    recovery_share: float | None = None
    """Share of training windows taken from recorded recovery views (whole windows of one
    view, with its labels), in [0, 1); validation uses the car's camera only; 0 = off;
    None = 0.3 when the data hold recovery views, else 0 (stored resolved in the run)."""
    command_balance: bool = False
    """Weight each training step by the inverse frequency of its route command, so junction
    commands are not drowned by follow-lane steps (``driving.data.windows.WindowConfig``)."""

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
        share = self.recovery_share
        if share is not None and not 0.0 <= share < 1.0:
            raise TrainConfigError(f"recovery_share must be in [0, 1), got {share}")
        if share and self.label != CURVATURE_EXPERT:
            raise TrainConfigError(
                f"recovery views carry only the {CURVATURE_EXPERT!r} label, not {self.label!r}"
            )
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

"""Camera preprocessing: raw uint8 RGB frames -> normalised network input.

The same :class:`Preprocessor`, built from the :class:`PreprocessSpec` stored in the
checkpoint, runs in training and in the closed loop, so the network sees identically prepared
pixels in both. The work is split in two stages so that training-only augmentation
(``perception.augment``) can act on the [0, 1] image in between:

    uint8 (N, H, W, 3) --prepare--> float (N, 3, h, w) in [0, 1] --normalize--> float (N, 3, h, w)

``prepare`` crops, converts to float and resizes (bilinear with antialiasing, only when the
crop is not already the output size). ``normalize`` is by default NCP's per-image
standardisation (``tf.image.per_image_standardization``: subtract the image mean and divide by
``max(std, 1 / sqrt(num_values))``, over all pixels and channels of one image).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid_drive.errors import LiquidDriveError

Normalization = Literal["per_image", "fixed", "none"]


class PreprocessError(LiquidDriveError, ValueError):
    """A frame or a spec does not fit the preprocessing contract."""


@dataclass(frozen=True)
class PreprocessSpec:
    """How raw camera frames become network input; saved in every checkpoint."""

    input_height_px: int = 78
    """Height of the raw camera frame this spec expects, pixels."""
    input_width_px: int = 200
    """Width of the raw camera frame this spec expects, pixels."""
    crop_top_px: int = 0
    """Rows removed from the top of the raw frame (sky), pixels."""
    crop_bottom_px: int = 0
    """Rows removed from the bottom of the raw frame (bonnet), pixels."""
    crop_left_px: int = 0
    """Columns removed from the left of the raw frame, pixels."""
    crop_right_px: int = 0
    """Columns removed from the right of the raw frame, pixels."""
    output_height_px: int = 78
    """Height of the network input after cropping and resizing, pixels."""
    output_width_px: int = 200
    """Width of the network input after cropping and resizing, pixels."""
    normalization: Normalization = "per_image"
    """``per_image`` (NCP's per-image standardisation), ``fixed`` (mean/std below) or ``none``."""
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """Per-channel RGB mean on the [0, 1] scale, used only by ``fixed``."""
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    """Per-channel RGB standard deviation on the [0, 1] scale, used only by ``fixed``."""

    def __post_init__(self) -> None:
        crops = (self.crop_top_px, self.crop_bottom_px, self.crop_left_px, self.crop_right_px)
        if min(crops) < 0:
            raise PreprocessError(f"crops must be >= 0 px, got (top, bottom, left, right) {crops}")
        if self.crop_height_px <= 0 or self.crop_width_px <= 0:
            raise PreprocessError(
                f"crop {crops} leaves nothing of a {self.input_height_px}x{self.input_width_px} "
                "frame"
            )
        if self.output_height_px <= 0 or self.output_width_px <= 0:
            raise PreprocessError(
                f"output size must be positive, got {self.output_height_px}x{self.output_width_px}"
            )
        if self.normalization not in ("per_image", "fixed", "none"):
            raise PreprocessError(
                f"normalization must be per_image, fixed or none, got {self.normalization!r}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise PreprocessError(
                f"mean and std need 3 values, std > 0; got {self.mean}, {self.std}"
            )

    @property
    def crop_height_px(self) -> int:
        """Height of the cropped frame before resizing, pixels."""
        return self.input_height_px - self.crop_top_px - self.crop_bottom_px

    @property
    def crop_width_px(self) -> int:
        """Width of the cropped frame before resizing, pixels."""
        return self.input_width_px - self.crop_left_px - self.crop_right_px

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, stored in ``config.json``."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessSpec:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise PreprocessError(f"unknown preprocessing keys {sorted(unknown)}")
        d = dict(d)
        for key in ("mean", "std"):
            if key in d:
                d[key] = tuple(float(v) for v in d[key])
        return cls(**d)


class Preprocessor(nn.Module):
    """Applies a :class:`PreprocessSpec`; it has no parameters and no saved buffers."""

    def __init__(self, spec: PreprocessSpec) -> None:
        super().__init__()
        self.spec = spec

    def prepare(self, frames: Tensor) -> Tensor:
        """Crops, scales to [0, 1] and resizes raw frames.

        Args:
            frames: uint8 (N, H, W, 3) RGB, H x W as in the spec's input size.

        Returns:
            float32 (N, 3, h, w) in [0, 1], h x w the spec's output size.

        Raises:
            PreprocessError: If the frames are not uint8 RGB of the expected size.
        """
        s = self.spec
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise PreprocessError(
                f"frames must be uint8 (N, H, W, 3) RGB, got {frames.dtype} {tuple(frames.shape)}"
            )
        if tuple(frames.shape[1:3]) != (s.input_height_px, s.input_width_px):
            raise PreprocessError(
                f"frame is {frames.shape[1]}x{frames.shape[2]} px (HxW) but the preprocessing "
                f"spec expects {s.input_height_px}x{s.input_width_px}: the camera differs from "
                "the one the policy was trained with"
            )
        x = frames[
            :,
            s.crop_top_px : s.input_height_px - s.crop_bottom_px,
            s.crop_left_px : s.input_width_px - s.crop_right_px,
        ]
        x = x.permute(0, 3, 1, 2).float().div_(255.0)  # (N, h0, w0, 3) -> (N, 3, h0, w0)
        if (s.crop_height_px, s.crop_width_px) != (s.output_height_px, s.output_width_px):
            x = F.interpolate(
                x,
                size=(s.output_height_px, s.output_width_px),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            ).clamp_(0.0, 1.0)
        return x.contiguous()

    def normalize(self, x: Tensor) -> Tensor:
        """Normalises prepared images.

        Args:
            x: float (N, 3, h, w) in [0, 1] (possibly augmented).

        Returns:
            float (N, 3, h, w), standardised as the spec says.
        """
        s = self.spec
        if s.normalization == "none":
            return x
        if s.normalization == "fixed":
            mean = x.new_tensor(s.mean).view(1, 3, 1, 1)
            std = x.new_tensor(s.std).view(1, 3, 1, 1)
            return (x - mean) / std
        flat = x.flatten(1)  # (N, 3*h*w)
        mean = flat.mean(dim=1).view(-1, 1, 1, 1)
        std = flat.std(dim=1, unbiased=False).view(-1, 1, 1, 1)
        floor = 1.0 / math.sqrt(flat.shape[1])
        return (x - mean) / std.clamp(min=floor)

    def forward(self, frames: Tensor) -> Tensor:
        """``normalize(prepare(frames))``: uint8 (N, H, W, 3) -> float (N, 3, h, w)."""
        return self.normalize(self.prepare(frames))

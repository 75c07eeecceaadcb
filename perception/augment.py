"""Training-only image augmentation: photometric jitter, blur, noise and random shadows.

Acts on prepared images in [0, 1] (between ``Preprocessor.prepare`` and ``normalize``), on
windows of frames ``(B, T, 3, H, W)``. Brightness, contrast, saturation, hue, blur and the
shadow are drawn once per window and applied to all its frames (the light does not flicker
within a second); the Gaussian noise is drawn per pixel and frame.

Colour jitter. Brightness, contrast, saturation and hue are all linear (or affine) in RGB, so
they are composed into one 3 x 3 colour matrix plus a grey offset per window and applied in a
single pass, in the order brightness, contrast, saturation, hue. Brightness, contrast and
saturation follow torchvision's definitions (``transforms.v2.functional.adjust_*``: scale,
blend with the frame's mean grey, blend with the grey image, ITU-R 601 grey weights; a test
checks each against torchvision). The hue shift is a rotation of the chroma plane in YIQ space
(a linear hue change, not torchvision's piecewise HSV shift). Composing them this way is several
times cheaper on CPU than applying ``v2.ColorJitter`` window by window, whose HSV round trip
alone cost about a third of a forward-backward pass of the conv head.

Blur and noise use torchvision transforms v2 (``GaussianBlur``, ``GaussianNoise``).

Shadow: our reading of NCP's shadow augmentation (Lechner et al. 2020; ``draw_shadow`` in their
code, described in ``reference/driving_papers.md`` 1.1): a straight band at a random angle and
position, of random thickness, with soft (blurred) edges, inside which a gamma curve darkens
(two thirds of the time) or lightens the image.

Side occlusion (off by default): hides the left or right border of a window's frames behind
each frame's mean colour, so that the policy cannot steer by one road edge alone. It was an
experiment against a failure seen in unseen towns: in a bend tighter than any training town's,
the right edge line leaves the image and the policy turns the wrong way. It did not help (seed
0 at probability 0.5: 1.61 interventions per km on unseen towns against 0.28 without;
``checkpoints/README.md``, "Ablations"); it stays as the switch that reproduces that ablation.
Its random numbers are drawn only when it is on, so a run without it draws exactly what it
drew before the option existed.

All randomness comes from torch's global generator, which the trainer seeds and checkpoints,
so an augmented run is reproducible and resumable. In ``eval()`` mode :class:`Augmenter` is the
identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchvision.transforms import v2

from liquid_drive.errors import LiquidDriveError


class AugmentConfigError(LiquidDriveError, ValueError):
    """An augmentation setting is out of range."""


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths and probabilities of the training-only augmentations."""

    enabled: bool = True
    """Master switch; False makes the augmenter the identity even in training."""
    brightness: float = 0.3
    """Brightness factor drawn from [1 - b, 1 + b] per window."""
    contrast: float = 0.3
    """Contrast factor drawn from [1 - c, 1 + c] per window."""
    saturation: float = 0.3
    """Saturation factor drawn from [1 - s, 1 + s] per window."""
    hue: float = 0.03
    """Hue shift drawn from [-h, h] per window, in turns of the colour wheel (at most 0.5)."""
    blur_prob: float = 0.2
    """Probability that a window is Gaussian-blurred (5 x 5 kernel)."""
    blur_sigma_max_px: float = 1.2
    """Largest blur standard deviation, pixels (drawn from [0.1, max])."""
    noise_prob: float = 0.3
    """Probability that a window gets additive Gaussian pixel noise."""
    noise_std: float = 0.03
    """Standard deviation of that noise on the [0, 1] scale."""
    shadow_prob: float = 0.4
    """Probability that a window gets a random shadow band."""
    shadow_darken_fraction: float = 0.66
    """Fraction of shadows that darken (the rest lighten), as in NCP."""
    shadow_max_thickness: float = 0.5
    """Largest band thickness as a fraction of the image width (NCP: 10-100 px of 200)."""
    side_occlusion_prob: float = 0.0
    """Probability that a window has its left or right border hidden (an ablation; off)."""
    side_occlusion_max_width: float = 0.4
    """Widest hidden border as a fraction of the image width (drawn from [0.1, max])."""

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise AugmentConfigError(f"{name} must be in [0, 1), got {v}")
        if not 0.0 <= self.hue <= 0.5:
            raise AugmentConfigError(f"hue must be in [0, 0.5], got {self.hue}")
        probabilities = ("blur_prob", "noise_prob", "shadow_prob", "shadow_darken_fraction")
        for name in (*probabilities, "side_occlusion_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise AugmentConfigError(f"{name} must be a probability in [0, 1], got {v}")
        if self.blur_sigma_max_px < 0.1:
            raise AugmentConfigError(
                f"blur_sigma_max_px must be >= 0.1, got {self.blur_sigma_max_px}"
            )
        if self.noise_std < 0.0:
            raise AugmentConfigError(f"noise_std must be >= 0, got {self.noise_std}")
        if not 0.05 <= self.shadow_max_thickness <= 1.0:
            raise AugmentConfigError(
                f"shadow_max_thickness must be in [0.05, 1], got {self.shadow_max_thickness}"
            )
        if not 0.1 <= self.side_occlusion_max_width <= 0.9:
            raise AugmentConfigError(
                "side_occlusion_max_width must be in [0.1, 0.9], "
                f"got {self.side_occlusion_max_width}"
            )


_GREY = (0.2989, 0.587, 0.114)  # ITU-R 601 luma weights, as torchvision's rgb_to_grayscale
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def color_jitter(
    x: Tensor, brightness: Tensor, contrast: Tensor, saturation: Tensor, hue_turns: Tensor
) -> Tensor:
    """Brightness, contrast, saturation and hue, one set of factors per window.

    Args:
        x: float (B, T, 3, H, W) RGB in [0, 1].
        brightness: (B,) factors (1 = unchanged).
        contrast: (B,) factors (1 = unchanged); blends with each frame's mean grey.
        saturation: (B,) factors (1 = unchanged); blends with the grey image.
        hue_turns: (B,) hue shifts in turns (0 = unchanged).

    Returns:
        float (B, T, 3, H, W) in [0, 1].
    """
    b = x.shape[0]
    grey = x.new_tensor(_GREY)  # (3,)
    eye = torch.eye(3, dtype=x.dtype, device=x.device)
    # Saturation: s * I + (1 - s) * (grey weights in every row).
    sat = saturation.to(x).view(b, 1, 1)
    sat_m = sat * eye + (1.0 - sat) * grey.view(1, 1, 3).expand(b, 3, 3)  # (B, 3, 3)
    # Hue: rotate (I, Q) by the angle, leave Y.
    to_yiq = x.new_tensor(_RGB_TO_YIQ)
    angle = hue_turns.to(x) * 2.0 * math.pi
    rot = eye.repeat(b, 1, 1)  # (B, 3, 3)
    rot[:, 1, 1], rot[:, 1, 2] = torch.cos(angle), -torch.sin(angle)
    rot[:, 2, 1], rot[:, 2, 2] = torch.sin(angle), torch.cos(angle)
    hue_m = torch.linalg.inv(to_yiq) @ rot @ to_yiq  # (B, 3, 3)
    # Brightness and contrast scale the colour; the contrast blend adds a grey offset that
    # saturation and hue leave unchanged (a grey stays grey).
    bc = (brightness * contrast).to(x).view(b, 1, 1)
    mix = bc * (hue_m @ sat_m)  # (B, 3, 3)
    flat = x.reshape(b, x.shape[1], 3, -1)  # (B, T, 3, H, W) -> (B, T, 3, H*W)
    mean_grey = (grey @ flat).mean(dim=-1)  # (B, T)
    offset = ((1.0 - contrast) * brightness).to(x).view(b, 1) * mean_grey  # (B, T)
    y = torch.matmul(mix.unsqueeze(1), flat) + offset.view(b, -1, 1, 1)  # (B, T, 3, H*W)
    return y.view(x.shape).clamp_(0.0, 1.0)


def random_shadow(x: Tensor, darken_fraction: float = 0.66, max_thickness: float = 0.5) -> Tensor:
    """Draws one random shadow band per window and applies it to every frame of the window.

    Args:
        x: float (B, T, 3, H, W) in [0, 1].
        darken_fraction: Probability that a band darkens rather than lightens.
        max_thickness: Largest band thickness as a fraction of the image width.

    Returns:
        float (B, T, 3, H, W) in [0, 1].
    """
    b, _, _, h, w = x.shape
    dev = x.device
    u = torch.rand(b, 6).to(dev)  # one row of uniforms per window
    angle = u[:, 0] * math.pi  # band direction, rad
    cx = w / 2 + (u[:, 1] - 0.5) * w  # a point on the band's centre line, px
    cy = h / 2 + (u[:, 2] - 0.5) * 0.77 * h
    thickness = (0.05 + u[:, 3] * (max_thickness - 0.05)) * w  # px
    darken = u[:, 4] < darken_fraction
    gamma = torch.where(darken, 1.5 + 1.5 * u[:, 5], 0.4 + 0.3 * u[:, 5])
    softness = 1.0 + 0.01 * w  # edge width, px (NCP blurred the band with 3-7 px kernels)

    ys = torch.arange(h, device=dev, dtype=x.dtype).view(1, h, 1)
    xs = torch.arange(w, device=dev, dtype=x.dtype).view(1, 1, w)
    sin, cos = torch.sin(angle).view(b, 1, 1), torch.cos(angle).view(b, 1, 1)
    dist = ((xs - cx.view(b, 1, 1)) * sin - (ys - cy.view(b, 1, 1)) * cos).abs()  # (B, H, W)
    mask = ((thickness.view(b, 1, 1) / 2 - dist) / softness + 0.5).clamp(0.0, 1.0)
    exponent = 1.0 + mask * (gamma.view(b, 1, 1) - 1.0)  # 1 outside the band
    return x.clamp(min=0.0).pow(exponent.view(b, 1, 1, h, w))


def side_occlusion(x: Tensor, max_width: float = 0.4) -> Tensor:
    """Hides the left or right border of every frame of a window behind its mean colour.

    One side and width are drawn per window. Meant to stop a policy from steering by one
    road edge alone: with the right border hidden it must follow the centre line, as it has
    to in a tight right bend whose edge line leaves the camera's view.

    Args:
        x: float (B, T, 3, H, W) in [0, 1].
        max_width: Widest hidden border as a fraction of the image width (from 0.1).

    Returns:
        float (B, T, 3, H, W) in [0, 1].
    """
    b, _, _, _, w = x.shape
    u = torch.rand(b, 2).to(x.device)
    width = ((0.1 + u[:, 0] * (max_width - 0.1)) * w).round()  # (B,) px
    right = u[:, 1] < 0.5
    xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, w)
    hidden = torch.where(right.view(b, 1), xs >= w - width.view(b, 1), xs < width.view(b, 1))
    fill = x.mean(dim=(-2, -1), keepdim=True)  # (B, T, 3, 1, 1) each frame's mean colour
    return torch.where(hidden.view(b, 1, 1, 1, w), fill, x)


def _uniform(n: int, spread: float) -> Tensor:
    """(n,) factors uniform in [1 - spread, 1 + spread]."""
    return 1.0 + (torch.rand(n) * 2.0 - 1.0) * spread


class Augmenter(nn.Module):
    """Applies :class:`AugmentConfig` to windows in training mode; the identity in eval mode."""

    def __init__(self, config: AugmentConfig | None = None) -> None:
        super().__init__()
        self.config = config or AugmentConfig()
        c = self.config
        self.blur = v2.GaussianBlur(kernel_size=5, sigma=(0.1, c.blur_sigma_max_px))
        self.noise = v2.GaussianNoise(sigma=c.noise_std, clip=True)

    def forward(self, x: Tensor) -> Tensor:
        """Augments windows of prepared images.

        Args:
            x: float (B, T, 3, H, W) in [0, 1].

        Returns:
            float (B, T, 3, H, W) in [0, 1]; ``x`` itself in eval mode or when disabled.
        """
        c = self.config
        if not self.training or not c.enabled:
            return x
        if x.ndim != 5 or x.shape[2] != 3:
            raise AugmentConfigError(f"expected windows (B, T, 3, H, W), got {tuple(x.shape)}")
        b = x.shape[0]
        # Draw every per-window number first, in a fixed order, from the global generator.
        brightness = _uniform(b, c.brightness)
        contrast = _uniform(b, c.contrast)
        saturation = _uniform(b, c.saturation)
        hue = (torch.rand(b) * 2.0 - 1.0) * c.hue
        blurred = (torch.rand(b) < c.blur_prob).nonzero().flatten().tolist()
        noisy = (torch.rand(b) < c.noise_prob).nonzero().flatten().tolist()
        shaded = (torch.rand(b) < c.shadow_prob).nonzero().flatten()

        # The batch is large and memory bandwidth is the cost on CPU: every step after the
        # colour jitter writes only the windows it changes.
        y = color_jitter(x, brightness, contrast, saturation, hue)
        for i in blurred:
            y[i] = self.blur(y[i])  # (T, 3, H, W), one sigma per window
        if c.noise_std > 0:
            for i in noisy:
                y[i] = self.noise(y[i])
        if len(shaded) > 0:
            idx = shaded.to(y.device)
            y[idx] = random_shadow(y[idx], c.shadow_darken_fraction, c.shadow_max_thickness)
        if c.side_occlusion_prob > 0:  # drawn only when on: runs without it stay as they were
            occluded = (torch.rand(b) < c.side_occlusion_prob).nonzero().flatten()
            if len(occluded) > 0:
                idx = occluded.to(y.device)
                y[idx] = side_occlusion(y[idx], c.side_occlusion_max_width)
        return y

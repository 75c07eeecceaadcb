"""Where the network looks: saliency maps for the conv head.

VisualBackProp (Bojarski et al. 2016, "VisualBackProp: efficient visualization of CNNs"),
the method of the NCP paper (Lechner et al. 2020), is implemented here; it needs one forward
pass and no gradients. captum's ``LayerGradCam`` and ``IntegratedGradients`` are offered as
options and imported only when used.

VisualBackProp, as done here:
    1. Run the conv stack and keep every ``Conv2d`` output after a ReLU.
    2. Average each map over channels and divide by its maximum: ``(B, 1, h_i, w_i)``.
    3. Starting from the deepest map, up-sample it with the transposed geometry of the conv
       that produced it (``conv_transpose2d`` with an all-ones kernel of the same size,
       stride and padding, divided by the number of windows covering each pixel so that
       strides leave no checkerboard), resize it to the next shallower map and multiply.
    4. Up-sample through the first conv to the input size and min-max normalise to [0, 1].

Every function returns maps of shape ``(B, H, W)`` with values in [0, 1] at the input
resolution; a map with no signal at all is all zeros.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid_drive.errors import LiquidDriveError

SaliencyMethod = Literal["visualbackprop", "gradcam", "integrated_gradients"]
METHODS: tuple[str, ...] = ("visualbackprop", "gradcam", "integrated_gradients")


class SaliencyError(LiquidDriveError, ValueError):
    """A saliency map cannot be computed for the given model or input."""


def _conv_layers(model: nn.Module) -> list[nn.Conv2d]:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise SaliencyError(f"{type(model).__name__} has no nn.Conv2d layer to explain")
    return convs


def _check_images(images: Tensor) -> None:
    if images.ndim != 4:
        raise SaliencyError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")


def _normalise(maps: Tensor) -> Tensor:
    """Min-max normalises each map of ``(B, H, W)`` to [0, 1]; flat maps become zeros."""
    flat = maps.flatten(1)
    lo = flat.min(dim=1).values[:, None, None]
    hi = flat.max(dim=1).values[:, None, None]
    span = hi - lo
    out = torch.where(span > 0, (maps - lo) / span.clamp_min(1e-12), torch.zeros_like(maps))
    return out.clamp(0.0, 1.0)


def _upsample_through(mask: Tensor, conv: nn.Conv2d, size: tuple[int, int]) -> Tensor:
    """Inverts one conv's geometry on a one-channel mask, then resizes it to ``size``."""
    kh, kw = conv.kernel_size
    ones = torch.ones(1, 1, kh, kw, dtype=mask.dtype, device=mask.device)
    pad = conv.padding if isinstance(conv.padding, tuple) else (0, 0)  # "same"/"valid": no pad
    geometry = {"stride": conv.stride, "padding": pad, "dilation": conv.dilation}
    up = F.conv_transpose2d(mask, ones, **geometry)
    # Divide by how many kernel windows cover each pixel: a strided transposed conv covers
    # alternate rows/columns unequally, which would print a checkerboard on the map.
    cover = F.conv_transpose2d(torch.ones_like(mask[:1]), ones, **geometry)
    up = up / cover.clamp_min(1.0)
    if up.shape[-2:] != size:
        up = F.interpolate(up, size=size, mode="bilinear", align_corners=False)
    return up


def visual_backprop(model: nn.Module, images: Tensor) -> Tensor:
    """VisualBackProp over every ``nn.Conv2d`` of ``model``, in the order they run.

    Args:
        model: A module whose forward takes ``images`` and runs its conv layers in sequence,
            each followed by a ReLU (the ReLU is applied here to the conv outputs, so it may
            be functional or a module).
        images: Input batch ``(B, C, H, W)``, already preprocessed as the model expects.

    Returns:
        ``(B, H, W)`` float tensor in [0, 1]: how much each input pixel feeds the deepest
        feature maps.
    """
    return visual_backprop_with_output(model, images)[0]


@torch.no_grad()
def visual_backprop_with_output(model: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`visual_backprop` plus the model's own output from the same forward pass.

    Useful for a conv head, whose output (the sensory features) is drawn next to the map.

    Args:
        model: A module whose forward takes ``images`` and runs its conv layers in sequence,
            each followed by a ReLU (the ReLU is applied here to the conv outputs, so it may
            be functional or a module).
        images: Input batch ``(B, C, H, W)``, already preprocessed as the model expects.

    Returns:
        The ``(B, H, W)`` map in [0, 1] and whatever ``model(images)`` returned.
    """
    _check_images(images)
    convs = _conv_layers(model)
    outputs: dict[nn.Conv2d, Tensor] = {}
    order: list[nn.Conv2d] = []

    def keep(module: nn.Module, _inp: tuple[Tensor, ...], out: Tensor) -> None:
        outputs[module] = out  # type: ignore[index]
        order.append(module)  # type: ignore[arg-type]

    hooks = [c.register_forward_hook(keep) for c in convs]
    try:
        result = model(images)
    finally:
        for h in hooks:
            h.remove()
    if not order:
        raise SaliencyError(f"{type(model).__name__}.forward ran none of its conv layers")
    if len(set(order)) != len(order):
        raise SaliencyError("a conv layer ran twice in one forward; VisualBackProp needs a stack")

    # Channel means, each scaled by its own maximum: (B, C_i, h_i, w_i) -> (B, 1, h_i, w_i).
    means = []
    for conv in order:
        m = outputs[conv].float().relu().mean(dim=1, keepdim=True)
        peak = m.flatten(1).max(dim=1).values.clamp_min(1e-12)[:, None, None, None]
        means.append(m / peak)

    mask = means[-1]
    for i in range(len(order) - 1, 0, -1):
        mask = _upsample_through(mask, order[i], tuple(means[i - 1].shape[-2:])) * means[i - 1]
    mask = _upsample_through(mask, order[0], tuple(images.shape[-2:]))  # (B, 1, H, W)
    return _normalise(mask[:, 0]), result


def grad_cam(forward_fn: Callable[[Tensor], Tensor], layer: nn.Module, images: Tensor) -> Tensor:
    """Grad-CAM via captum's ``LayerGradCam`` on ``layer``, up-sampled to the input and normalised.

    Args:
        forward_fn: Maps ``images`` to one scalar per sample, ``(B,)`` or ``(B, 1)`` (for a
            recurrent policy: the command given a fixed state, ``f(img) = policy(img, h_t)``).
        layer: The conv layer to attribute to (usually the last one).
        images: ``(B, C, H, W)``.

    Returns:
        ``(B, H, W)`` in [0, 1]; only positive evidence is kept (ReLU as in Grad-CAM).
    """
    _check_images(images)
    from captum.attr import LayerAttribution, LayerGradCam

    fn = _scalar_output(forward_fn)
    attr = LayerGradCam(fn, layer).attribute(images)  # (B, 1, h, w)
    attr = LayerAttribution.interpolate(attr, tuple(images.shape[-2:]), interpolate_mode="bilinear")
    return _normalise(attr.detach()[:, 0].relu())


def integrated_gradients(
    forward_fn: Callable[[Tensor], Tensor], images: Tensor, steps: int = 32
) -> Tensor:
    """Integrated gradients (captum) from a black image, |attribution| summed over channels.

    Args:
        forward_fn: Maps ``images`` to one scalar per sample, ``(B,)`` or ``(B, 1)``.
        images: ``(B, C, H, W)``.
        steps: Integration steps (captum's ``n_steps``).

    Returns:
        ``(B, H, W)`` in [0, 1].
    """
    _check_images(images)
    if steps < 1:
        raise SaliencyError(f"steps must be >= 1, got {steps}")
    from captum.attr import IntegratedGradients

    fn = _scalar_output(forward_fn)
    attr = IntegratedGradients(fn).attribute(
        images, baselines=torch.zeros_like(images), n_steps=steps
    )
    return _normalise(attr.detach().abs().sum(dim=1))


def _scalar_output(forward_fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def fn(x: Tensor) -> Tensor:
        y = forward_fn(x)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise SaliencyError(f"forward_fn must return (B,) or (B, 1), got {tuple(y.shape)}")
        return y

    return fn


def saliency_maps(
    method: SaliencyMethod,
    images: Tensor,
    *,
    conv_stack: nn.Module,
    forward_fn: Callable[[Tensor], Tensor] | None = None,
    ig_steps: int = 32,
) -> Tensor:
    """Dispatches to one saliency method.

    Args:
        method: ``"visualbackprop"``, ``"gradcam"`` (on the last conv of ``conv_stack``) or
            ``"integrated_gradients"``.
        images: ``(B, C, H, W)``, preprocessed as the model expects.
        conv_stack: The conv head (VisualBackProp runs it; Grad-CAM takes its last conv).
        forward_fn: Images -> one scalar per sample; needed by the captum methods.
        ig_steps: Integration steps for ``integrated_gradients``.

    Returns:
        ``(B, H, W)`` in [0, 1].
    """
    if method == "visualbackprop":
        return visual_backprop(conv_stack, images)
    if method not in METHODS:
        raise SaliencyError(f"unknown saliency method {method!r}; choose one of {METHODS}")
    if forward_fn is None:
        raise SaliencyError(f"saliency method {method!r} needs forward_fn (images -> command)")
    if method == "gradcam":
        return grad_cam(forward_fn, _conv_layers(conv_stack)[-1], images)
    return integrated_gradients(forward_fn, images, steps=ig_steps)


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blends a saliency map over an RGB image, as the NCP paper rendered VisualBackProp.

    The map is z-scored, clipped to +-3, floored at its 10th percentile, then drawn with the
    inferno colour map; pixels at the floor stay the plain image.

    Args:
        image: uint8 ``(H, W, 3)`` RGB.
        mask: ``(h, w)`` saliency (any range); resized to the image if needed.
        alpha: Opacity of the colour at the strongest saliency, in [0, 1].

    Returns:
        uint8 ``(H, W, 3)`` RGB.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SaliencyError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if mask.ndim != 2:
        raise SaliencyError(f"mask must be (H, W), got shape {mask.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise SaliencyError(f"alpha must be in [0, 1], got {alpha}")
    h, w = image.shape[:2]
    m = np.asarray(mask, dtype=np.float32)
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    std = float(m.std())
    z = np.clip((m - float(m.mean())) / std, -3.0, 3.0) if std > 0 else np.zeros_like(m)
    floor = float(np.percentile(z, 10))
    z = np.maximum(z, floor)
    span = float(z.max()) - floor
    level = (z - floor) / span if span > 0 else np.zeros_like(z)  # (H, W) in [0, 1]
    colour = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
    a = (alpha * level)[..., None]
    return (image.astype(np.float32) * (1.0 - a) + colour.astype(np.float32) * a).astype(np.uint8)

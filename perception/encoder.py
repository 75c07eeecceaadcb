"""The NCP convolutional perception head (Lechner et al. 2020, Nature MI, Table 2).

Five convolutions with SAME padding and ReLU turn a 78 x 200 RGB image into 8 feature maps of
10 x 25; each map is flattened (250 values) and passed through its own Linear(250 -> 4) + ReLU,
giving 8 x 4 = 32 features, the sensory input of the 19-neuron circuit::

    (N, 3, 78, 200)
      conv 24 @ 5x5 /2 -> (N, 24, 39, 100)
      conv 36 @ 5x5 /2 -> (N, 36, 20, 50)
      conv 48 @ 3x3 /2 -> (N, 48, 10, 25)
      conv 64 @ 3x3 /1 -> (N, 64, 10, 25)
      conv  8 @ 3x3 /1 -> (N,  8, 10, 25)
      per map: flatten (250) -> Linear(250 -> 4) + ReLU -> (N, 8, 4) -> (N, 32)

79,420 parameters with the defaults. Conv biases start at 0.01 as in the NCP code.

Inference (autograd off) has two fast paths, both measured by ``benchmarks/policy.py``:

* Every fp32 convolution runs through oneDNN. PyTorch's own choice sends a batch-1 3 x 3
  convolution of at most 20,480 input values (convs 4 and 5 here, 10 x 25 maps) to its native
  im2col kernel, slower here than oneDNN, which every training batch already uses; the values
  agree to float rounding (about 1e-7).
* ``set_precision("bf16")`` runs the convolutions in bfloat16 (weights cast once; the
  per-map layers and the features stay fp32): the closed-loop runtime ``torch-bf16``. The
  features move by about 1e-4 of their 0.07 range; what that does to driving is measured
  (README, "Speed"). A bf16 head refuses autograd: it is for driving, not for training.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid_drive.errors import LiquidDriveError


class EncoderConfigError(LiquidDriveError, ValueError):
    """A conv head configuration is inconsistent."""


HeadPrecision = Literal["fp32", "bf16"]
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
HEAD_PRECISIONS: tuple[str, ...] = tuple(_DTYPES)
"""Arithmetic the convolutions can run in (bf16: inference only)."""
_ONEDNN_AVAILABLE = torch.backends.mkldnn.is_available()
ONEDNN_INFERENCE = True
"""Call oneDNN directly for fp32 inference (module docstring); False leaves the choice to
PyTorch (the baseline ``benchmarks/policy.py`` times it against)."""


def _use_onednn(x: Tensor) -> bool:
    """Whether fp32 inference should call oneDNN directly (module docstring)."""
    return (
        ONEDNN_INFERENCE
        and x.dtype == torch.float32
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()  # ONNX export traces the plain convolution
        and _ONEDNN_AVAILABLE
    )


class _Conv2d(nn.Conv2d):
    """``nn.Conv2d`` whose fp32 CPU inference calls oneDNN directly (module docstring).

    The same module, parameters and hooks (saliency's forward hooks see every call); only
    the kernel choice differs. Built by :class:`ConvHead` only: zero padding of whole pixels.
    """

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if _use_onednn(x):
            return torch.mkldnn_convolution(
                x, weight, bias, self.padding, self.stride, self.dilation, self.groups
            )
        return super()._conv_forward(x, weight, bias)


@dataclass(frozen=True)
class ConvHeadConfig:
    """Shape of the conv head; the defaults are the NCP paper's."""

    input_height_px: int = 78
    """Height of the input image, pixels (the preprocessing output height)."""
    input_width_px: int = 200
    """Width of the input image, pixels (the preprocessing output width)."""
    channels: tuple[int, ...] = (24, 36, 48, 64, 8)
    """Output channels of each convolution; the last one is the number of feature maps."""
    kernel_sizes: tuple[int, ...] = (5, 5, 3, 3, 3)
    """Square kernel size of each convolution, pixels (odd, for SAME padding)."""
    strides: tuple[int, ...] = (2, 2, 2, 1, 1)
    """Stride of each convolution."""
    features_per_map: int = 4
    """Outputs of each feature map's own Linear layer; features = last channels x this."""
    conv_bias_init: float = 0.01
    """Initial value of every convolution bias."""

    def __post_init__(self) -> None:
        n = len(self.channels)
        if n == 0 or len(self.kernel_sizes) != n or len(self.strides) != n:
            raise EncoderConfigError(
                "channels, kernel_sizes and strides need the same non-zero length, got "
                f"{self.channels}, {self.kernel_sizes}, {self.strides}"
            )
        if min(self.channels) <= 0 or min(self.strides) <= 0:
            raise EncoderConfigError(
                f"channels and strides must be positive, got {self.channels}, {self.strides}"
            )
        if any(k <= 0 or k % 2 == 0 for k in self.kernel_sizes):
            raise EncoderConfigError(
                f"kernel sizes must be odd and positive, got {self.kernel_sizes}"
            )
        if self.input_height_px <= 0 or self.input_width_px <= 0 or self.features_per_map <= 0:
            raise EncoderConfigError(
                f"input size and features_per_map must be positive, got {self.input_height_px}x"
                f"{self.input_width_px}, {self.features_per_map}"
            )

    @property
    def map_size(self) -> tuple[int, int]:
        """(height, width) of the last feature maps: SAME padding gives ceil(size / stride)."""
        h, w = self.input_height_px, self.input_width_px
        for s in self.strides:
            h, w = math.ceil(h / s), math.ceil(w / s)
        return h, w

    @property
    def num_maps(self) -> int:
        """Number of feature maps entering the per-map Linear layers."""
        return self.channels[-1]

    @property
    def num_features(self) -> int:
        """Size of the feature vector: maps x features per map (32 by default)."""
        return self.num_maps * self.features_per_map

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, stored in ``config.json``."""
        d = asdict(self)
        for key in ("channels", "kernel_sizes", "strides"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConvHeadConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise EncoderConfigError(f"unknown conv head keys {sorted(unknown)}")
        d = dict(d)
        for key in ("channels", "kernel_sizes", "strides"):
            if key in d:
                d[key] = tuple(int(v) for v in d[key])
        return cls(**d)


class PerMapLinear(nn.Module):
    """One Linear(map_h * map_w -> F) + ReLU per feature map, applied to all maps at once."""

    def __init__(self, num_maps: int, map_values: int, features_per_map: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_maps, features_per_map, map_values))
        self.bias = nn.Parameter(torch.empty(num_maps, features_per_map))
        bound = 1.0 / math.sqrt(map_values)  # nn.Linear's default init, per map
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, maps: Tensor) -> Tensor:
        """Maps (N, C, h, w) -> features (N, C * F), map c's features in [c*F, (c+1)*F)."""
        flat = maps.flatten(2)  # (N, C, h, w) -> (N, C, h*w)
        out = torch.einsum("ncv,cfv->ncf", flat, self.weight) + self.bias  # (N, C, F)
        return F.relu(out).flatten(1)  # (N, C*F)


class ConvHead(nn.Module):
    """Image -> feature vector; see the module docstring for the shapes."""

    def __init__(self, config: ConvHeadConfig | None = None) -> None:
        super().__init__()
        self.config = config or ConvHeadConfig()
        c = self.config
        convs = []
        in_ch = 3
        for out_ch, k, s in zip(c.channels, c.kernel_sizes, c.strides, strict=True):
            conv = _Conv2d(in_ch, out_ch, kernel_size=k, stride=s, padding=k // 2)
            nn.init.constant_(conv.bias, c.conv_bias_init)
            convs.append(conv)
            in_ch = out_ch
        # channels_last runs the convolutions about twice as fast on CPU (oneDNN) at no cost
        # in accuracy; it is a memory layout only, the weights and results are unchanged.
        self.convs = nn.ModuleList(convs).to(memory_format=torch.channels_last)
        map_h, map_w = c.map_size
        self.per_map = PerMapLinear(c.num_maps, map_h * map_w, c.features_per_map)

    @property
    def num_features(self) -> int:
        """Size of the output feature vector."""
        return self.config.num_features

    @property
    def precision(self) -> HeadPrecision:
        """The convolutions' arithmetic: ``fp32`` (trainable) or ``bf16`` (inference only)."""
        return "bf16" if self.convs[0].weight.dtype == torch.bfloat16 else "fp32"

    def set_precision(self, precision: HeadPrecision) -> ConvHead:
        """Casts the convolutions' weights and biases in place; returns self.

        ``bf16`` is for closed-loop driving (module docstring): such a head refuses to run
        with autograd on, and a policy holding one must not be trained or saved. ``fp32``
        casts back (what bf16 rounded away is not restored).

        Raises:
            EncoderConfigError: For a precision other than fp32 / bf16.
        """
        if precision not in _DTYPES:
            raise EncoderConfigError(
                f"conv head precision must be one of {', '.join(HEAD_PRECISIONS)}, got "
                f"{precision!r}"
            )
        self.convs.to(_DTYPES[precision])  # the channels_last layout is kept
        return self

    def forward_with_maps(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Features plus every convolution's activation (for VisualBackProp saliency).

        Args:
            x: float (N, 3, H, W), the normalised image.

        Returns:
            features (N, num_features) and the list of post-ReLU maps, one (N, C_i, h_i, w_i)
            per convolution, shallowest first.

        Raises:
            EncoderConfigError: If the image size is not the configured input size, or a
                bf16 head runs with autograd on.
        """
        maps: list[Tensor] = []
        features = self._run(x, maps)
        return features, [m.float() for m in maps]

    def forward(self, x: Tensor) -> Tensor:
        """Image (N, 3, H, W) -> features (N, num_features) float32."""
        return self._run(x, None)

    def _run(self, x: Tensor, maps: list[Tensor] | None) -> Tensor:
        """The convolutions (appending each activation to ``maps``) and the per-map layers."""
        c = self.config
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, c.input_height_px, c.input_width_px):
            raise EncoderConfigError(
                f"conv head expects (N, 3, {c.input_height_px}, {c.input_width_px}), "
                f"got {tuple(x.shape)}"
            )
        dtype = self.convs[0].weight.dtype
        if dtype != torch.float32 and torch.is_grad_enabled():
            raise EncoderConfigError(
                f"this conv head runs in {self.precision} for driving only; it cannot be "
                "trained (autograd is on): load the checkpoint again for fp32"
            )
        x = x.to(dtype).contiguous(memory_format=torch.channels_last)
        for conv in self.convs:
            x = F.relu(conv(x))  # (N, C_i, h_i, w_i)
            if maps is not None:
                maps.append(x)
        return self.per_map(x.float())

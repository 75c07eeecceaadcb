"""The NCP paper's analyses as plain functions (Lechner et al. 2020, Figs. 4 and 5).

* **Noise curve** (Fig. 4a): interventions per km against image-noise variance, per model, from
  ``metrics.json`` of the ``noise-variance`` suite (variances 0.1, 0.2, 0.3) with
  ``train-towns`` as the variance-0 point: :func:`noise_curve`.
* **Attention stability** (Fig. 4b): SSIM between the VisualBackProp map of a clean frame and
  of its noisy copy (:func:`ssim`, :func:`saliency_stability`). The noise is zero-mean
  Gaussian of the given *variance* on the [0, 1] camera image, drawn from
  ``numpy.random.default_rng([seed, frame])`` (:func:`noise_field`): a fixed seed, so every
  model sees the same noise on the same frames; the noisy image is clipped to [0, 1] and
  rounded to uint8, as the builtin simulator does, then goes through the policy's own
  preprocessing and conv head.
* **Smoothness** (Fig. 4c): each neuron's maximum local Lipschitz constant over a rollout,
  ``L_max = max_t |x(t+1) - x(t)|`` with a time step of one control step (the paper's
  definition), within each episode (never across two): :func:`max_lipschitz`.
* **PCA** (Fig. 5j): the share of the neuron-activity variance the first principal component
  explains, activity centred per neuron and not scaled (plain PCA):
  :func:`explained_variance_ratio`. The paper reports NCP 92 %, CNN 83 %, CT-RNN 60 %,
  LSTM 51 % (:data:`PAPER_PC1_SHARE`).

Shapes: ``states`` are (T, N), T steps of N neurons; maps and images are (H, W).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from driving.evaluate.compare import SEED_PATTERN, split_name
from driving.evaluate.report import EXPERT
from driving.evaluate.suites import NOISE_VARIANCES
from liquid_drive.errors import LiquidDriveError
from perception.saliency import visual_backprop

PAPER_PC1_SHARE: dict[str, float] = {"NCP": 0.92, "CNN": 0.83, "CT-RNN": 0.60, "LSTM": 0.51}
"""Variance share of the first principal component in the NCP paper (Fig. 5j)."""
SSIM_WINDOW = 11
"""Side of SSIM's Gaussian window, pixels (Wang et al. 2004)."""
SSIM_SIGMA = 1.5
"""Standard deviation of SSIM's Gaussian window, pixels (Wang et al. 2004)."""
CLEAN_SUITE = "train-towns"
"""The suite whose ``clean`` condition is the noise curve's variance-0 point."""
NOISE_SUITE = "noise-variance"
"""The suite of the noise curve."""


class AnalysisError(LiquidDriveError, ValueError):
    """Input an analysis cannot use (too short, constant, wrongly shaped)."""


# ---------------------------------------------------------------------------------------------
# SSIM


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Mean structural similarity of two images (Wang et al. 2004, gaussian window).

    ``SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))``
    with local statistics under an 11x11 Gaussian window of sigma 1.5, ``C1 = (0.01 L)^2``,
    ``C2 = (0.03 L)^2`` (``C3 = C2 / 2`` folded in), averaged over the pixels whose window
    lies inside the image. The NCP paper's constants with ``L = 255`` on 8-bit maps are these
    with ``L = 1`` on [0, 1] maps.

    Args:
        a: (H, W) image.
        b: (H, W) image of the same shape.
        data_range: ``L``, the span of the values (1 for maps in [0, 1]).

    Returns:
        SSIM in [-1, 1]; 1 for identical images.

    Raises:
        AnalysisError: For shapes that differ, are not 2-D or are smaller than the window.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise AnalysisError(f"ssim needs two (H, W) images of one shape, got {a.shape}, {b.shape}")
    if min(a.shape) < SSIM_WINDOW:
        raise AnalysisError(f"ssim needs images of at least {SSIM_WINDOW} px a side, got {a.shape}")
    if not data_range > 0:
        raise AnalysisError(f"data_range must be positive, got {data_range}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        k = (SSIM_WINDOW, SSIM_WINDOW)
        return cv2.GaussianBlur(x, k, SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    p = (SSIM_WINDOW - 1) // 2  # only windows inside the image
    return float((num / den)[p:-p, p:-p].mean())


# ---------------------------------------------------------------------------------------------
# Smoothness and PCA


def _check_states(states: np.ndarray, least: int) -> np.ndarray:
    x = np.asarray(states, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0:
        raise AnalysisError(f"states must be (T, N) with N >= 1, got shape {x.shape}")
    if x.shape[0] < least:
        raise AnalysisError(f"need at least {least} steps of neuron activity, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise AnalysisError("neuron activity holds non-finite values")
    return x


def max_lipschitz(episodes: Sequence[np.ndarray]) -> np.ndarray:
    """Each neuron's maximum local Lipschitz constant, ``max_t |x(t+1) - x(t)|``.

    The time step is one control step (the NCP paper's definition); differences are taken
    within each episode and the maximum over all of them.

    Args:
        episodes: The neuron activity of each episode, (T_e, N) with one N for all.

    Returns:
        (N,) ``L_max`` per neuron, in the activity's units per step.
    """
    if not episodes:
        raise AnalysisError("max_lipschitz needs at least one episode")
    per = [np.abs(np.diff(_check_states(x, 2), axis=0)).max(axis=0) for x in episodes]
    if len({p.shape for p in per}) != 1:
        raise AnalysisError(f"episodes have different neuron counts: {[p.size for p in per]}")
    return np.max(per, axis=0)


def explained_variance_ratio(states: np.ndarray) -> np.ndarray:
    """Share of the activity's variance each principal component explains, largest first.

    Plain PCA: each neuron centred on its mean, not scaled.

    Args:
        states: (T, N) neuron activity (several episodes may be stacked).

    Returns:
        (min(T, N),) shares summing to 1.

    Raises:
        AnalysisError: For fewer than 2 steps or activity that never varies.
    """
    x = _check_states(states, 2)
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    var = s**2
    total = float(var.sum())
    if not total > 1e-24:
        raise AnalysisError("neuron activity is constant: no principal components")
    return var / total


# ---------------------------------------------------------------------------------------------
# Attention under noise


def noise_field(shape: tuple[int, ...], seed: int, index: int) -> np.ndarray:
    """Unit Gaussian noise for frame ``index``: float32 of ``shape``, fixed by (seed, index)."""
    return np.random.default_rng([seed, index]).standard_normal(shape, dtype=np.float32)


def add_noise(frame: np.ndarray, variance: float, field: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) frame plus ``sqrt(variance) * field`` on [0, 1], clipped and rounded."""
    x = frame.astype(np.float32) / 255.0 + np.float32(math.sqrt(variance)) * field
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _vbp_maps(policy: Any, frames: np.ndarray) -> np.ndarray:
    """VisualBackProp maps (B, h, w) of uint8 frames (B, H, W, 3) through the policy's head."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).to(policy.device)
    x = policy.preprocess.normalize(policy.preprocess.prepare(t))  # (B, 3, h, w)
    return visual_backprop(policy.head, x).cpu().numpy().astype(np.float64)


def saliency_stability(
    policy: Any,
    frames: np.ndarray,
    variances: Sequence[float] = NOISE_VARIANCES,
    seed: int = 0,
    batch: int = 50,
) -> dict[float, np.ndarray]:
    """SSIM between the VisualBackProp map of each clean frame and of its noisy copy.

    Args:
        policy: A ``driving.model.policy.SteeringPolicy`` (its conv head is explained).
        frames: uint8 (F, H, W, 3) clean camera frames.
        variances: Noise variances on [0, 1] images.
        seed: Noise seed; frame ``i`` gets :func:`noise_field` ``(seed, i)`` at every variance.
        batch: Frames per forward pass.

    Returns:
        Per variance, (F,) SSIM of each frame's clean and noisy maps.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise AnalysisError(f"frames must be uint8 (F, H, W, 3), F >= 1, got {frames.shape}")
    if any(not 0 < v <= 1 for v in variances):
        raise AnalysisError(f"noise variances must be in (0, 1], got {list(variances)}")
    out: dict[float, list[float]] = {float(v): [] for v in variances}
    for start in range(0, len(frames), batch):
        chunk = frames[start : start + batch]
        fields = [noise_field(chunk.shape[1:], seed, start + k) for k in range(len(chunk))]
        clean = _vbp_maps(policy, chunk)
        for v in out:
            noisy = np.stack([add_noise(f, v, n) for f, n in zip(chunk, fields, strict=True)])
            noisy = _vbp_maps(policy, noisy)
            out[v].extend(ssim(a, b) for a, b in zip(clean, noisy, strict=True))
    return {v: np.asarray(s) for v, s in out.items()}


# ---------------------------------------------------------------------------------------------
# Noise curve


def _variance_of(suite: str, condition: str | None) -> float | None:
    if suite == CLEAN_SUITE and condition == "clean":
        return 0.0
    if suite == NOISE_SUITE and condition and condition.startswith("variance "):
        return float(condition.removeprefix("variance "))
    return None


def noise_curve(docs: Sequence[dict[str, Any]], pattern: str = SEED_PATTERN) -> dict[str, Any]:
    """Interventions per km against noise variance, per model family, from ``metrics.json``.

    Models are grouped into families over training seeds as ``driving.evaluate.compare`` does
    (``cfc-ncp-s1`` -> ``cfc-ncp``). Per family and variance the point is the mean over seeds
    of each seed's pooled rate, and the interval its min-max across seeds; with one seed, the
    rate plus and minus the sample std of the episodes' rates (clipped at 0).

    Args:
        docs: ``metrics.json`` documents (``driving.evaluate.report.load_metrics``).
        pattern: Family/seed pattern of the model names.

    Returns:
        ``{family: {"variance": [...], "mean": [...], "low": [...], "high": [...],
        "seeds": [...], "interval": "min-max over seeds" | "std over episodes"}}``, variances
        ascending; the expert is left out (it sees no image). Empty without such rows.
    """
    points: dict[str, dict[float, list[tuple[float, float | None]]]] = {}
    for doc in docs:
        for row in doc["summary"]:
            key = row.get("key") if row["group"] == "condition" else None
            var = _variance_of(row["suite"], key)
            if var is None or row["model"] == EXPERT or row["interventions_per_km"] is None:
                continue
            family, _ = split_name(row["model"], pattern)
            std = row["stats"]["interventions_per_km"]["std"]
            points.setdefault(family, {}).setdefault(var, []).append(
                (row["interventions_per_km"], std)
            )
    curves: dict[str, Any] = {}
    for family, by_var in points.items():
        c: dict[str, list[Any]] = {k: [] for k in ("variance", "mean", "low", "high", "seeds")}
        several = max(len(v) for v in by_var.values()) > 1
        for var in sorted(by_var):
            rates = np.array([r for r, _ in by_var[var]])
            mean = float(rates.mean())
            if several:
                low, high = float(rates.min()), float(rates.max())
            else:
                std = by_var[var][0][1] or 0.0
                low, high = max(0.0, mean - std), mean + std
            for key, val in zip(c, (var, mean, low, high, len(rates)), strict=True):
                c[key].append(val)
        curves[family] = {**c, "interval": "min-max over seeds" if several else "std over episodes"}
    return curves

"""The training objective, the learning-rate schedule and the validation loss.

* loss: squared error of the scaled curvature, weighted by ``w = exp(weight_alpha_m *
  |label|)`` and normalised by the sum of the weights (curves count more than the many
  straight frames);
* schedule: linear warm-up, then cosine decay of the learning rate;
* optimizer: Adam, the core and readout faster than the conv head (NCP practice).
"""

from __future__ import annotations

import math
from concurrent.futures import Executor

import torch
from torch import Tensor

from driving.data.windows import WindowDataset
from driving.model.policy import SteeringPolicy
from driving.train.config import TrainConfig
from driving.train.data import make_batch
from perception.augment import Augmenter

DEAD_STATE_STD = 1e-3
"""A core state whose standard deviation over the validation frames is below this is dead."""


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


def make_optimizer(policy: SteeringPolicy, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam with two groups: the conv head, then the core and readout ``core_lr_scale`` faster.

    Each group's ``lr_scale`` multiplies the base rate that :func:`learning_rate` sets.
    """
    head = list(policy.head.parameters())
    rest = [p for n, p in policy.named_parameters() if not n.startswith("head.")]
    groups = [{"params": head, "lr_scale": 1.0}, {"params": rest, "lr_scale": cfg.core_lr_scale}]
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def window_loss(
    policy: SteeringPolicy,
    batch: dict[str, Tensor],
    augment: Augmenter | None = None,
    precision: str = "fp32",
) -> Tensor:
    """Weighted MSE of the scaled curvature over a batch of windows.

    With ``precision="bf16"`` the conv head (the policy's encode stage, about 80 % of a
    step) runs under bf16 autocast; its features return to fp32 before the core.
    """
    device = batch["frames"].device.type
    with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
        features = policy.encode(batch["frames"], augment)  # (B, T, F)
    pred, _ = policy.decode(features.float(), batch["dt_s"], command=batch.get("command"))  # (B, T)
    scale = policy.config.label_scale
    return weighted_mse(pred * scale, batch["label"].to(pred) * scale, batch["weight"].to(pred))


@torch.no_grad()
def evaluate_loss(
    policy: SteeringPolicy,
    dataset: WindowDataset,
    indices: list[int],
    batch_size: int,
    pool: Executor | None = None,
) -> dict[str, float]:
    """Loss and RMSE of the policy on the given windows (no augmentation), and its states' spread.

    ``pool`` reads the windows (:func:`driving.train.data.make_batch`).

    Returns:
        ``loss`` (weighted, as in training), ``rmse_per_m`` (1/m), and over every frame of the
        windows each core state's standard deviation: ``state_std_min``, ``state_std_median``
        and ``dead_states``, how many vary by less than :data:`DEAD_STATE_STD` (a core whose
        states stopped moving passes nothing from the camera to the command: a collapse).
    """
    was_training = policy.training
    policy.eval()
    dev = policy.device
    num = den = sq = count = 0.0
    s1 = s2 = torch.zeros(policy.state_size, dtype=torch.float64)
    for k in range(0, len(indices), batch_size):
        batch = make_batch(dataset, indices[k : k + batch_size], dev, pool)
        pred, states = policy(batch["frames"], batch["dt_s"], command=batch.get("command"))
        err = pred - batch["label"].to(pred)
        w = batch["weight"].to(pred)
        scale = policy.config.label_scale
        num += float((w * (err * scale) ** 2).sum())
        den += float(w.sum())
        sq += float((err**2).sum())
        count += err.numel()
        flat = states.detach().flatten(0, 1).double().cpu()  # (B, T, N) -> (B*T, N)
        s1, s2 = s1 + flat.sum(0), s2 + (flat**2).sum(0)
    policy.train(was_training)
    result = {"loss": num / den, "rmse_per_m": math.sqrt(sq / count)}
    if policy.state_size == 0:  # a core without memory (cnn)
        return result
    std = ((s2 / count - (s1 / count) ** 2).clamp(min=0.0)).sqrt()  # (N,)
    return result | {
        "state_std_min": float(std.min()),
        "state_std_median": float(std.median()),
        "dead_states": float((std < DEAD_STATE_STD).sum()),
    }

"""Figures of the policy during training, for TensorBoard: neuron traces and saliency.

Imported by the trainer only when it draws. Needs matplotlib (through ``driving.viz.panels``)
but not PyAV.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from driving.viz.layout import VisualizeError, layout_from_policy
from driving.viz.panels import draw_command, draw_traces, figure_to_array, new_figure
from driving.viz.replay import network_input, view_images
from driving.viz.track import RolloutTrack
from perception.saliency import overlay, visual_backprop


def training_figures(policy: Any, window: dict[str, Any], saliency_frames: int = 4) -> dict:
    """Images of one validation window for TensorBoard: neuron traces and saliency.

    Args:
        policy: A ``driving.model.policy.SteeringPolicy`` (its train/eval mode is restored after).
        window: One item of ``driving.data.windows.WindowDataset`` (``frames`` uint8 (T, H, W, 3),
            ``dt_s`` (T,), ``label`` (T,)), or a batch of them (the first window is used).
        saliency_frames: How many frames, evenly spaced over the window, get a saliency map.

    Returns:
        ``{"neuron_traces": uint8 (H, W, 3), "saliency": uint8 (H, W, 3)}``: the command vs the
        label over the window above the neuron traces by group, and a column of the network's
        input view of the chosen frames with their VisualBackProp overlay.
    """
    frames, dt_s, label = window["frames"], window["dt_s"], window["label"]
    command = window.get("command", torch.zeros(dt_s.shape, dtype=torch.int64))
    if frames.ndim == 5:  # a batch: take the first window
        frames, dt_s, label, command = frames[0], dt_s[0], label[0], command[0]
    if frames.ndim != 4 or frames.dtype != torch.uint8:
        raise VisualizeError(
            f"window['frames'] must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}"
        )
    was_training = policy.training
    policy.eval()
    try:
        with torch.no_grad():
            device = policy.device
            curvature, states = policy(
                frames[None].to(device), dt_s[None].to(device), command=command[None].to(device)
            )
            idx = np.linspace(0, len(frames) - 1, min(saliency_frames, len(frames))).round()
            picked = frames[torch.as_tensor(idx.astype(np.int64))].to(device)
            x01, x = network_input(policy, picked)
            masks = visual_backprop(policy.head, x)
    finally:
        policy.train(was_training)
    t = np.cumsum(dt_s.double().cpu().numpy())
    zeros = np.zeros(len(t))
    n_state = states.shape[-1]
    track = RolloutTrack(
        t_s=t,
        curvature_pred=curvature[0].double().cpu().numpy(),
        curvature_expert=label.double().cpu().numpy(),
        x_m=zeros,
        y_m=zeros,
        yaw_rad=zeros,
        intervention=zeros.astype(bool),
        states=states[0].double().cpu().numpy() if n_state else None,
    )
    layout = layout_from_policy(policy)
    groups = layout.group_indices() if layout is not None else {}
    height = 170 + 130 * len(groups)
    fig = new_figure(900, height)
    fig.subplots_adjust(left=0.12, right=0.98, top=1 - 30 / height, bottom=45 / height)
    axes = fig.subplots(1 + len(groups), 1, sharex=True, squeeze=False)[:, 0]
    draw_command(axes[0], track)
    axes[0].set_xlabel("")
    if layout is not None:
        draw_traces(list(axes[1:]), track, layout)
    axes[-1].set_xlabel("time in the window (s)", fontsize=8)
    traces = figure_to_array(fig)
    view = view_images(x01)
    tiles = [overlay(v, m) for v, m in zip(view, masks.cpu().numpy(), strict=True)]
    gap = np.full((2, view.shape[2], 3), 255, np.uint8)
    column = np.concatenate([x for tile in tiles for x in (tile, gap)][:-1])
    column = cv2.resize(column, (2 * column.shape[1], 2 * column.shape[0]), cv2.INTER_NEAREST)
    return {"neuron_traces": traces, "saliency": column}


def log_training_figures(writer: Any, policy: Any, window: dict[str, Any], step: int) -> None:
    """Logs :func:`training_figures` as TensorBoard images ``figures/<name>``.

    Args:
        writer: A ``torch.utils.tensorboard.SummaryWriter``.
        policy: The policy being trained.
        window: A fixed validation window (one ``WindowDataset`` item, or a batch).
        step: The global training step.
    """
    for tag, image in training_figures(policy, window).items():
        writer.add_image(f"figures/{tag}", image, step, dataformats="HWC")

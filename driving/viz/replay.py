"""Replaying a policy over a rollout's frames: where it looked (saliency), features, commands.

The replay goes through the policy's own stages (``SteeringPolicy.decode`` on the conv head's
features), so it computes exactly what the policy computes; only the conv head runs under
the saliency method, which needs the network's input (:func:`network_input`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from driving.viz.layout import VisualizeError
from perception.saliency import METHODS, overlay, saliency_maps, visual_backprop_with_output


@dataclass
class SaliencyReplay:
    """What replaying a policy over a rollout's frames gives, one row per step."""

    views: np.ndarray
    """The network's input view with the saliency overlay, uint8 (T, h, w, 3)."""
    features: np.ndarray
    """Sensory features from the conv head, (T, F)."""
    curvature: np.ndarray
    """The policy's command on these frames, open loop, 1/m, (T,)."""
    states: np.ndarray | None
    """Neuron states (T, N) of the open-loop replay; None for a stateless core."""


def network_input(policy: Any, frames: Tensor) -> tuple[Tensor, Tensor]:
    """What the conv head of ``policy`` is fed, for the saliency methods.

    Args:
        policy: A ``driving.model.policy.SteeringPolicy``.
        frames: uint8 (B, H, W, 3) RGB camera frames.

    Returns:
        ``(view, x)``: the cropped and resized view (B, 3, h, w) in [0, 1], and the same
        standardised per image, the conv head's input (B, 3, h, w).
    """
    view = policy.preprocess.prepare(frames)  # (B, 3, h, w) in [0, 1]
    return view, policy.preprocess.normalize(view)


def view_images(view: Tensor) -> np.ndarray:
    """The network's view (B, 3, h, w) in [0, 1] as uint8 RGB images (B, h, w, 3)."""
    return (view.permute(0, 2, 3, 1) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()


def _elapsed_s(t_s: np.ndarray, first_step_dt_s: float) -> np.ndarray:
    dt = np.diff(t_s, prepend=t_s[0] - first_step_dt_s)
    if len(t_s) > 1 and np.any(dt[1:] <= 0):
        raise VisualizeError(f"t_s must increase; it does not at step {int(np.argmin(dt[1:])) + 1}")
    return dt


def replay_with_saliency(
    policy: Any,
    frames: Iterator[np.ndarray] | Sequence[np.ndarray],
    t_s: np.ndarray,
    method: str = "visualbackprop",
    states: np.ndarray | None = None,
    batch: int = 64,
    ig_steps: int = 32,
    commands: np.ndarray | None = None,
) -> SaliencyReplay:
    """Runs a policy over a rollout's frames: saliency, sensory features, command, states.

    The recurrent state is carried over the whole sequence from zero (as in the closed loop).
    The captum methods explain the command at step ``i`` given the state before it: the
    rollout's recorded state ``states[i - 1]`` when given, else the replayed one.

    Args:
        policy: A ``driving.model.policy.SteeringPolicy`` (in eval mode).
        frames: The camera frames, uint8 (H, W, 3) RGB each, T of them.
        t_s: Simulation time of each frame, s, (T,).
        method: ``visualbackprop``, ``gradcam`` or ``integrated_gradients``.
        states: The rollout's neuron states (T, N), used as the captum methods' context.
        batch: Frames per forward pass.
        ig_steps: Integration steps of ``integrated_gradients``.
        commands: The rollout's route commands (``sim.spec.Command`` values), (T,); None =
            follow lane throughout. Used only by a policy with a command input.

    Returns:
        A :class:`SaliencyReplay`.
    """
    if method not in METHODS:
        raise VisualizeError(f"unknown saliency method {method!r}; choose one of {METHODS}")
    t_s = np.asarray(t_s, dtype=np.float64)
    dt = _elapsed_s(t_s, float(policy.config.first_step_dt_s))
    n_state = int(policy.state_size)
    device = policy.device
    cmd = np.zeros(len(t_s), np.int64) if commands is None else np.asarray(commands, np.int64)
    if cmd.shape != t_s.shape:
        raise VisualizeError(f"commands must be ({len(t_s)},) like t_s, got {cmd.shape}")
    views, feats, curvature, replayed = [], [], [], []
    h = None
    it = iter(frames)
    for start in range(0, len(t_s), batch):
        chunk = [next(it) for _ in range(min(batch, len(t_s) - start))]
        raw = torch.from_numpy(np.stack(chunk)).to(device)  # (B, H, W, 3) uint8
        dt_b = torch.as_tensor(dt[start : start + len(chunk)], dtype=torch.float32, device=device)
        cmd_b = torch.as_tensor(cmd[start : start + len(chunk)], device=device)  # (B,) int64
        with torch.no_grad():
            x01, x = network_input(policy, raw)
            masks, f = visual_backprop_with_output(policy.head, x)  # (B, h, w), (B, F)
            # The chunk as one window, carrying the state: (1, B, F) -> (1, B), (1, B, N).
            command, st = policy.decode(f[None], dt_b[None], h, command=cmd_b[None])
            h_prev = h
            h = st[:, -1] if n_state else None  # (1, N)
        if method != "visualbackprop":
            h_before = None
            if n_state and states is not None:
                prev = np.concatenate([np.zeros((1, n_state)), states[:-1]])
                h_before = torch.as_tensor(
                    prev[start : start + len(chunk)], dtype=torch.float32, device=device
                )
            elif n_state:
                first = torch.zeros(1, n_state, device=device) if h_prev is None else h_prev
                h_before = torch.cat([first, st[0, :-1]])  # (B, N): the state before each step
            masks = saliency_maps(
                method,  # type: ignore[arg-type]
                x.detach(),
                conv_stack=policy.head,
                forward_fn=_command_given_state(policy, dt_b, h_before, cmd_b),
                ig_steps=ig_steps,
            )
        m = masks.detach().cpu().numpy()
        views.extend(overlay(v, mk) for v, mk in zip(view_images(x01), m, strict=True))
        feats.append(f.cpu().numpy())
        curvature.append(command[0].detach().cpu().numpy())
        if n_state:
            replayed.append(st[0].detach().cpu().numpy())
    return SaliencyReplay(
        views=np.stack(views),
        features=np.concatenate(feats).astype(np.float64),
        curvature=np.concatenate(curvature).astype(np.float64),
        states=np.concatenate(replayed).astype(np.float64) if replayed else None,
    )


def _command_given_state(
    policy: Any, dt_s: Tensor, h_before: Tensor | None, route_command: Tensor
) -> Callable[[Tensor], Tensor]:
    """``f(images) -> command (B,)`` with the recurrent state fixed, for the captum methods.

    captum evaluates several inputs per frame (integrated gradients stacks its steps along the
    batch), so the per-frame context (``dt_s`` (B,), ``h_before`` (B, N)) is repeated to the
    batch it is called with; so is the route command (B,).
    """

    def fn(x: Tensor) -> Tensor:
        k = x.shape[0] // dt_s.shape[0]
        h = None if h_before is None else h_before.repeat(k, 1)
        cmd = route_command.repeat(k)
        return policy.decode(policy.head(x), dt_s.repeat(k), h, command=cmd)[0]  # (k*B,)

    return fn

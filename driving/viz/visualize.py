"""Figures and video that show what the liquid network does while it drives.

What is drawn follows the NCP paper (Lechner et al. 2020, Figs. 3-6 and Extended Data):
neuron traces grouped inter / command / motor, the wiring diagram with excitatory and
inhibitory synapses, predicted vs expert command, the route seen from above, VisualBackProp
saliency on the camera image, and a PCA of the neuron activity. :func:`visualize` draws all
of it for one rollout (``tools/visualize.py``); the parts live in their own modules:

* ``driving.viz.layout``: neuron names, groups and synapses (:class:`NeuronLayout`), colours;
* ``driving.viz.track``: a rollout's per-step signals (:class:`RolloutTrack`), read from disk;
* ``driving.viz.panels`` and ``driving.viz.wiring``: the matplotlib panels and figures;
* ``driving.viz.renderer`` and ``driving.viz.video``: video frames and the MP4/GIF writer;
* ``driving.viz.replay``: the policy replayed over the frames, with saliency;
* ``driving.viz.tensorboard``: the training figures.

Everything is fed plain numpy arrays, so the panels work for every model type: cores with
named neurons (the NCP wirings) get grouped traces and the wiring panel; cores without (lstm,
gru) show their hidden units and no wiring; a stateless cnn shows neither.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from driving.data import episodes as E
from driving.model.checkpoint import load_policy
from driving.viz.layout import NeuronLayout, VisualizeError, layout_from_policy
from driving.viz.panels import summary_figure
from driving.viz.renderer import FrameRenderer
from driving.viz.replay import replay_with_saliency
from driving.viz.tensorboard import log_training_figures  # re-export (see __all__)
from driving.viz.track import resolve_episode, track_from_episode
from driving.viz.video import render_video
from driving.viz.wiring import save_wiring
from perception.saliency import METHODS, SaliencyMethod

# log_training_figures stays importable from here for driving.train.trainer until it imports
# it from driving.viz.tensorboard.
__all__ = ["VisualizeConfig", "VisualizeError", "log_training_figures", "visualize"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VisualizeConfig:
    """What ``tools/visualize.py`` draws from a rollout and a checkpoint."""

    rollout: Path
    """An episode folder (``.../episodes/episode_N``) or a rollout/dataset folder."""
    checkpoint: Path | None = None
    """Checkpoint folder (or training run) of the policy that drove; None: no saliency or
    wiring, the camera frames and any recorded neuron states only."""
    out: Path = Path("outputs/visualize")
    """Output folder for rollout.mp4, rollout.gif, frame.png, summary.png, wiring.png/.svg."""
    episode: int | None = None
    """Episode id when ``rollout`` is a folder of episodes; None: its first episode."""
    saliency: SaliencyMethod = "visualbackprop"
    """Saliency method: ``visualbackprop`` (NCP paper), ``gradcam`` or ``integrated_gradients``
    (captum; about 0.2 s and 2 s per frame on CPU)."""
    video: bool = True
    """Write the H.264 MP4 video."""
    gif: bool = False
    """Also write a GIF (every ``gif_every``-th step, scaled by ``gif_scale``)."""
    gif_every: int = 2
    """Keep one step in this many for the GIF."""
    gif_scale: float = 0.5
    """Size of the GIF frames relative to the video frames, in (0, 1]."""
    width_px: int = 1280
    """Video frame width, pixels (even)."""
    height_px: int = 720
    """Video frame height, pixels (even)."""
    fps: float | None = None
    """Video frames per second; None: real time (the rollout's control rate)."""
    max_steps: int | None = None
    """Draw only the first this many steps; None: all."""
    crf: int = 23
    """x264 quality (0 lossless .. 51 worst; 23 is x264's default)."""
    device: str = "cpu"
    """Torch device for the policy replay and saliency."""

    def __post_init__(self) -> None:
        if self.saliency not in METHODS:
            raise VisualizeError(f"--saliency must be one of {METHODS}, got {self.saliency!r}")
        if self.width_px % 2 or self.height_px % 2 or self.width_px < 320 or self.height_px < 240:
            size = f"{self.width_px}x{self.height_px}"
            raise VisualizeError(f"video size must be even and at least 320x240, got {size}")
        if self.gif_every < 1 or not 0 < self.gif_scale <= 1:
            raise VisualizeError(
                f"need gif_every >= 1 and 0 < gif_scale <= 1, got {self.gif_every}, "
                f"{self.gif_scale}"
            )
        if self.fps is not None and not self.fps > 0:
            raise VisualizeError(f"--fps must be positive, got {self.fps}")
        if self.max_steps is not None and self.max_steps < 1:
            raise VisualizeError(f"--max-steps must be >= 1, got {self.max_steps}")
        if not 0 <= self.crf <= 51:
            raise VisualizeError(f"--crf must be in 0..51, got {self.crf}")


_METHOD_TITLES = {
    "visualbackprop": "VisualBackProp",
    "gradcam": "Grad-CAM",
    "integrated_gradients": "integrated-gradients",
}


def visualize(cfg: VisualizeConfig) -> dict[str, Any]:
    """Writes the video, the summary and the wiring figures of one rollout.

    Returns:
        What was written and how long each part took: ``{"episode", "steps", "files":
        {name: path}, "seconds": {part: s}}``.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    path = resolve_episode(cfg.rollout, cfg.episode)
    episode = E.read_episode(path)
    track = track_from_episode(episode)
    if cfg.max_steps is not None:
        track = track.first(cfg.max_steps)
    n = len(track)
    policy, layout = None, None
    if cfg.checkpoint is not None:
        policy = load_policy(cfg.checkpoint, device=cfg.device)
        layout = layout_from_policy(policy)
    elif track.states is not None:
        layout = NeuronLayout.hidden(track.states.shape[1])
    if layout is not None and track.states is not None and track.states.shape[1] != layout.size:
        raise VisualizeError(
            f"{path}: {track.states.shape[1]} neuron columns but the checkpoint's core has "
            f"{layout.size} neurons: was this rollout driven by another model?"
        )
    timings["load"] = time.perf_counter() - t0
    frames = (episode.frame(i) for i in range(n))
    t0 = time.perf_counter()
    if policy is not None:
        replay = replay_with_saliency(
            policy, frames, track.t_s, cfg.saliency, states=track.states, commands=track.command
        )
        views = replay.views
        track.sensory = replay.features
        if track.states is None and replay.states is not None:
            logger.info("%s has no neuron columns: drawing the open-loop replay's", path)
            track.states = replay.states
        if E.CURVATURE_PRED not in episode.columns:
            track.curvature_pred = replay.curvature
            track.title += " - policy replayed open loop"
    else:
        views = np.stack(list(frames))
    timings["saliency"] = time.perf_counter() - t0
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    t0 = time.perf_counter()
    summary_figure(track, layout).savefig(out / "summary.png", dpi=100)
    files["summary"] = out / "summary.png"
    if layout is not None and layout.has_wiring:
        title = f"{policy.config.core} wiring (seed {policy.config.wiring_seed})" if policy else ""
        files["wiring_png"], files["wiring_svg"] = save_wiring(layout, out, title)
    timings["figures"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    name = _METHOD_TITLES[cfg.saliency] if policy is not None else ""
    renderer = FrameRenderer(
        track, layout, views.shape[1:3], cfg.width_px, cfg.height_px, saliency_name=name
    )
    still = renderer.render(n // 2, views[n // 2])
    cv2.imwrite(str(out / "frame.png"), still[..., ::-1])
    files["frame"] = out / "frame.png"
    dt = np.diff(track.t_s)
    fps = cfg.fps or (float(1.0 / np.median(dt)) if len(dt) else 20.0)
    if cfg.video:
        render_video(out / "rollout.mp4", renderer, iter(views), fps)
        files["video"] = out / "rollout.mp4"
    timings["video"] = time.perf_counter() - t0
    if cfg.gif:
        t0 = time.perf_counter()
        gif = out / "rollout.gif"
        render_video(gif, renderer, iter(views), fps / cfg.gif_every, cfg.gif_every, cfg.gif_scale)
        files["gif"] = gif
        timings["gif"] = time.perf_counter() - t0
    logger.info("wrote %s", ", ".join(str(p) for p in files.values()))
    return {
        "episode": str(path),
        "steps": n,
        "files": {k: str(v) for k, v in files.items()},
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }

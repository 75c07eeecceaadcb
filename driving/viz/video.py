"""Writing videos: H.264 MP4 or GIF through PyAV, one rendered frame per rollout step.

The only module of ``driving.viz`` that imports PyAV.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from driving.viz.layout import VisualizeError
from driving.viz.renderer import FrameRenderer


class VideoWriter:
    """Writes RGB frames to an H.264 MP4 (yuv420p, plays in browsers) or a GIF, via PyAV.

    Use as a context manager; every frame must have the size given here. GIF frames get their
    own adaptive 256-colour palette.
    """

    def __init__(
        self, path: Path, width_px: int, height_px: int, fps: float, crf: int = 23
    ) -> None:
        """Opens ``path``; the container follows its suffix (``.mp4`` or ``.gif``).

        Args:
            path: Output file, ``.mp4`` or ``.gif``.
            width_px: Frame width, pixels (even for MP4).
            height_px: Frame height, pixels (even for MP4).
            fps: Frames per second, > 0.
            crf: x264 constant rate factor (0 lossless .. 51 worst), MP4 only.
        """
        self.path = Path(path)
        self.kind = self.path.suffix.lower()
        if self.kind not in (".mp4", ".gif"):
            raise VisualizeError(f"video path must end in .mp4 or .gif, got {self.path}")
        if width_px <= 0 or height_px <= 0:
            raise VisualizeError(f"frame size must be positive, got {width_px}x{height_px}")
        if self.kind == ".mp4" and (width_px % 2 or height_px % 2):
            raise VisualizeError(f"H.264 needs an even frame size, got {width_px}x{height_px}")
        if not fps > 0:
            raise VisualizeError(f"fps must be positive, got {fps}")
        self.size = (height_px, width_px)
        self.frames = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        rate = Fraction(fps).limit_denominator(1000)
        if self.kind == ".mp4":
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(int(crf)), "preset": "veryfast"}
        else:
            self._stream = self._container.add_stream("gif", rate=rate)
            self._stream.pix_fmt = "pal8"
        self._stream.width = width_px
        self._stream.height = height_px

    def write(self, frame: np.ndarray) -> None:
        """Appends one uint8 RGB frame (H, W, 3)."""
        if frame.dtype != np.uint8 or frame.shape != (*self.size, 3):
            raise VisualizeError(
                f"frame must be uint8 {(*self.size, 3)}, got {frame.dtype} {frame.shape}"
            )
        if self.kind == ".mp4":
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        else:
            img = Image.fromarray(frame).quantize(256, method=Image.Quantize.FASTOCTREE)
            palette = np.zeros((256, 4), np.uint8)
            rgb = np.asarray(img.getpalette()[: 3 * 256], np.uint8).reshape(-1, 3)
            palette[: len(rgb), :3] = rgb
            palette[:, 3] = 255
            vf = av.VideoFrame.from_ndarray((np.asarray(img), palette), format="pal8")
        vf.pts = self.frames
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flushes the encoder and closes the file."""
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def render_video(
    path: Path,
    renderer: FrameRenderer,
    cameras: Iterator[np.ndarray],
    fps: float,
    every: int = 1,
    scale: float = 1.0,
) -> int:
    """Renders every ``every``-th step of the rollout into a video; returns the frame count.

    Args:
        path: ``.mp4`` (H.264) or ``.gif``.
        renderer: The frame renderer of the rollout.
        cameras: One camera image (with overlay) per step, in order, uint8 (h, w, 3).
        fps: Frames per second of the written video.
        every: Keep one step in ``every`` (for a lighter GIF).
        scale: Resize factor of the written frames (the size is rounded to even pixels).
    """
    if every < 1:
        raise VisualizeError(f"every must be >= 1, got {every}")
    if not 0 < scale <= 1:
        raise VisualizeError(f"scale must be in (0, 1], got {scale}")
    h, w = renderer.size
    out_w, out_h = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
    n = 0
    with VideoWriter(path, out_w, out_h, fps) as writer:
        for step, camera in enumerate(tqdm(cameras, total=len(renderer.track), desc=path.name)):
            if step % every:
                continue
            frame = renderer.render(step, camera)
            if (out_h, out_w) != frame.shape[:2]:
                frame = cv2.resize(frame, (out_w, out_h), interpolation=cv2.INTER_AREA)
            writer.write(frame)
            n += 1
    return n

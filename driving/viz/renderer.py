"""Video frames of a rollout: static panels drawn once, moving parts drawn per frame.

:class:`FrameRenderer` draws every static part (command, route, neuron traces, wiring) once
into a background image with matplotlib, and then, per frame, only pastes the camera image
and draws the time marker, the car and the node colours with OpenCV, which keeps a frame
fast to make. ``driving.viz.video`` writes the frames to a file.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from matplotlib.axes import Axes

from driving.viz.commands import GLYPH_H_PX, draw_command_glyph, draw_command_zones
from driving.viz.layout import (
    ACTIVITY_CMAP,
    MOTOR,
    SENSORY,
    NeuronLayout,
    VisualizeError,
    wiring_positions,
)
from driving.viz.panels import (
    draw_command,
    draw_route,
    draw_traces,
    figure_to_array,
    lut,
    new_figure,
    normalise_activity,
)
from driving.viz.track import RolloutTrack
from driving.viz.wiring import draw_wiring


@dataclass(frozen=True)
class _Rect:
    """A pixel rectangle in an image: rows y0..y1, columns x0..x1."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    @property
    def h(self) -> int:
        return self.y1 - self.y0


def _axes_rect(ax: Axes, height_px: int) -> _Rect:
    bb = ax.get_window_extent()
    return _Rect(round(bb.x0), round(height_px - bb.y1), round(bb.x1), round(height_px - bb.y0))


def _to_pixels(ax: Axes, xy: np.ndarray, height_px: int) -> np.ndarray:
    """Data coordinates (K, 2) -> image pixel coordinates (K, 2) as float (x, row)."""
    disp = ax.transData.transform(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
    return np.stack([disp[:, 0], height_px - disp[:, 1]], axis=1)


class FrameRenderer:
    """Composes video frames: static panels drawn once, moving parts drawn per frame.

    Panels: camera image with the saliency overlay and the route's junction command (an arrow
    and its name, none for follow-lane); predicted vs expert command; the route from above
    with the car, its stretches under a junction command in the command's colour; neuron
    traces by group; the wiring diagram with neurons coloured by their current activity.
    Panels a model lacks (states, wiring) are left out and the others take the room.
    """

    def __init__(
        self,
        track: RolloutTrack,
        layout: NeuronLayout | None,
        camera_hw: tuple[int, int],
        width_px: int = 1280,
        height_px: int = 720,
        saliency_name: str = "VisualBackProp",
    ) -> None:
        """Draws the static background.

        Args:
            track: The rollout's signals.
            layout: Neuron layout (None or states None: no trace or wiring panels).
            camera_hw: (height, width) of the camera frames, pixels.
            width_px: Frame width, pixels.
            height_px: Frame height, pixels.
            saliency_name: Name of the saliency method for the camera panel's title; empty
                when the image has no saliency overlay.
        """
        if width_px < 320 or height_px < 240:
            raise VisualizeError(f"frame must be at least 320x240, got {width_px}x{height_px}")
        self.track = track
        self.layout = layout
        self.size = (height_px, width_px)
        has_states = track.states is not None and layout is not None
        has_wiring = has_states and layout is not None and layout.has_wiring
        fig = new_figure(width_px, height_px)
        h = float(height_px)
        # Left column: camera, command, route. Right column: traces and wiring.
        left_w = 0.40 if has_states else 0.5
        cam_h_px = min(0.45 * h, (left_w * width_px - 30) * camera_hw[0] / camera_hw[1])
        cam_top = 1.0 - 28 / h
        cam_b = cam_top - cam_h_px / h
        self.ax_cam = fig.add_axes((0.01, cam_b, left_w - 0.02, cam_h_px / h))
        self.ax_cam.set_axis_off()
        cam_title = f"camera + {saliency_name} saliency" if saliency_name else "camera"
        self.ax_cam.set_title(cam_title, fontsize=9, loc="left")
        if has_states:
            cmd_h = 0.8 * (cam_b - 0.06) * 0.42
            self.ax_cmd = fig.add_axes((0.075, cam_b - 0.06 - cmd_h, left_w - 0.09, cmd_h))
            map_top = cam_b - 0.06 - cmd_h - 0.09
            self.ax_map = fig.add_axes((0.075, 0.07, left_w - 0.09, map_top - 0.07))
        else:
            self.ax_cmd = fig.add_axes((0.075, 0.1, left_w - 0.09, cam_b - 0.2))
            self.ax_map = fig.add_axes((left_w + 0.06, 0.08, 0.98 - left_w - 0.06, 0.86))
        draw_command(self.ax_cmd, track)
        self.ax_cmd.set_title("curvature command", fontsize=9, loc="left")
        self.ax_cmd.set_xlabel("time (s)", fontsize=8)
        draw_route(self.ax_map, track)
        draw_command_zones(self.ax_map, track.x_m, track.y_m, track.command)
        self.ax_map.set_title("route from above", fontsize=9, loc="left")
        self.trace_axes: list[Axes] = []
        self.ax_wiring: Axes | None = None
        if has_states and layout is not None:
            groups = layout.group_indices()
            x0 = left_w + 0.075
            trace_top, trace_bottom = 0.95, (0.50 if has_wiring else 0.07)
            weights = np.array([0.55 if g == MOTOR else 1.0 for g in groups])
            gap = 0.012
            usable = trace_top - trace_bottom - gap * (len(groups) - 1)
            top = trace_top
            for wgt in weights:
                hh = usable * wgt / weights.sum()
                self.trace_axes.append(fig.add_axes((x0, top - hh, 0.985 - x0, hh)))
                top -= hh + gap
            for ax in self.trace_axes[1:]:
                ax.sharex(self.trace_axes[0])
            draw_traces(self.trace_axes, track, layout)
            self.trace_axes[0].set_title("neuron states", fontsize=9, loc="left")
            if has_wiring:
                self.ax_wiring = fig.add_axes((left_w + 0.01, 0.01, 0.98 - left_w, 0.37))
                draw_wiring(self.ax_wiring, layout, labels=True, node_size=0.0)
                self.ax_wiring.set_title(
                    "wiring, neurons coloured by activity", fontsize=9, loc="left"
                )
        self.background = figure_to_array(fig)
        # Pixel geometry of the moving parts.
        self.cam_rect = _axes_rect(self.ax_cam, height_px)
        self._time_axes = [self.ax_cmd, *self.trace_axes]
        self._time_rects = [_axes_rect(ax, height_px) for ax in self._time_axes]
        t = track.time_s
        self._marker_x = [
            _to_pixels(ax, np.stack([t, np.zeros_like(t)], 1), height_px)[:, 0]
            for ax in self._time_axes
        ]
        self._map_rect = _axes_rect(self.ax_map, height_px)
        self._car_px = _to_pixels(self.ax_map, np.stack([track.x_m, track.y_m], 1), height_px)
        self._lut = lut(ACTIVITY_CMAP)
        self._nodes: np.ndarray | None = None
        self._sensory_nodes: np.ndarray | None = None
        if self.ax_wiring is not None and layout is not None:
            pos = wiring_positions(layout)
            self._nodes = _to_pixels(
                self.ax_wiring,
                np.array([pos[("neuron", i)] for i in range(layout.size)]),
                height_px,
            )
            if layout.sensory_adjacency is not None:
                s = layout.sensory_adjacency.shape[0]
                self._sensory_nodes = _to_pixels(
                    self.ax_wiring, np.array([pos[(SENSORY, i)] for i in range(s)]), height_px
                )
            self._activity = normalise_activity(track.states) if track.states is not None else None
            self._sensory_activity = (
                normalise_activity(track.sensory) if track.sensory is not None else None
            )
        fig.clear()

    def _colour(self, value: float) -> tuple[int, int, int]:
        k = int(np.clip((value + 1.0) * 127.5, 0, 255))
        r, g, b = self._lut[k]
        return int(r), int(g), int(b)

    def render(self, step: int, camera: np.ndarray) -> np.ndarray:
        """One video frame for step ``step``.

        Args:
            step: Index into the rollout, 0..T-1.
            camera: uint8 (h, w, 3) RGB, the camera image (with any saliency overlay).

        Returns:
            uint8 (H, W, 3) RGB frame.
        """
        if not 0 <= step < len(self.track):
            raise VisualizeError(f"step {step} outside 0..{len(self.track) - 1}")
        frame = self.background.copy()
        r = self.cam_rect
        frame[r.y0 : r.y1, r.x0 : r.x1] = cv2.resize(
            camera, (r.w, r.h), interpolation=cv2.INTER_LINEAR
        )
        t = self.track.time_s[step]
        label = f"t = {t:5.1f} s"
        for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # outlined text
            cv2.putText(
                frame,
                label,
                (r.x0 + 6, r.y0 + 18),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                colour,
                thickness,
                cv2.LINE_AA,
            )
        if r.h >= GLYPH_H_PX + 8:  # the junction command, top right (over the sky)
            draw_command_glyph(frame, int(self.track.command[step]), r.x1 - 6, r.y0 + 6)
        # Fade the future on every time axis and draw the time marker.
        for rect, xs in zip(self._time_rects, self._marker_x, strict=True):
            x = int(np.clip(xs[step], rect.x0, rect.x1 - 1) + 0.5)
            region = frame[rect.y0 : rect.y1, x + 1 : rect.x1]
            region[:] = (region.astype(np.uint16) * 2 + 255) // 3  # 2/3 image, 1/3 white
            cv2.line(frame, (x, rect.y0), (x, rect.y1 - 1), (0, 0, 0), 1, cv2.LINE_AA)
        self._draw_car(frame, step)
        if self._nodes is not None:
            self._draw_nodes(frame, step)
        return frame

    def _draw_car(self, frame: np.ndarray, step: int) -> None:
        x, y = self._car_px[step]
        yaw = float(self.track.yaw_rad[step])
        # Image rows grow downwards, so the heading's y component flips sign.
        fwd = np.array([np.cos(yaw), -np.sin(yaw)])
        left = np.array([-fwd[1], fwd[0]])
        tip = np.array([x, y]) + 11 * fwd
        back = np.array([x, y]) - 6 * fwd
        pts = np.array([tip, back + 6 * left, back - 6 * left])
        cv2.fillPoly(frame, [np.round(pts * 16).astype(np.int32)], (214, 39, 40), cv2.LINE_AA, 4)
        cv2.polylines(
            frame, [np.round(pts * 16).astype(np.int32)], True, (0, 0, 0), 1, cv2.LINE_AA, 4
        )

    def _draw_nodes(self, frame: np.ndarray, step: int) -> None:
        assert self._nodes is not None
        if self._sensory_nodes is not None:
            for k, (x, y) in enumerate(self._sensory_nodes):
                colour = (
                    self._colour(self._sensory_activity[step, k])
                    if self._sensory_activity is not None
                    else (160, 160, 160)
                )
                cv2.circle(frame, (round(x), round(y)), 3, colour, -1, cv2.LINE_AA)
        if self._activity is None:
            return
        for k, (x, y) in enumerate(self._nodes):
            c = (round(x), round(y))
            cv2.circle(frame, c, 7, self._colour(self._activity[step, k]), -1, cv2.LINE_AA)
            cv2.circle(frame, c, 7, (50, 50, 50), 1, cv2.LINE_AA)

"""Window loading speed on one core: frames/s of ``WindowDataset`` items (JPEG decode included).

Usage::

    python benchmarks/data.py                # a synthetic 78x200 dataset in a temp folder
    python benchmarks/data.py /tmp/data30    # an existing dataset (e.g. from tools/record.py)

Prints one JSON object; ``frames_per_s`` is the figure to compare with the target (>= 3,000).
The baseline measured in the same run, ``raw_decode_frames_per_s``, reads and decodes the
same frame files with bare ``cv2.imdecode`` (the floor of any loader); ``ratio_to_raw`` is
their quotient. ``validate_ms_per_1000_frames`` is what the up-front validation costs
(``driving.data.validate``) at each frame level: ``exist`` (rows and values only, the first
and last frame decoded), ``structure`` (every frame's JPEG structure and checksum, what
training runs) and ``decode`` (every frame decoded too, what ``inspect_dataset`` runs).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from driving.data import episodes as ep
from driving.data.validate import validate_dataset
from driving.data.windows import WindowConfig, WindowDataset

WINDOW_STEPS = 16
NUM_WINDOWS = 300


def synthetic_dataset(root: Path, episodes: int = 4, steps: int = 400) -> None:
    """Road-like 78x200 frames (sky, textured ground, lane lines) so JPEG sizes are realistic."""
    ep.create_or_open_dataset(
        root, ep.DatasetInfo("synthetic", {"width_px": 200, "height_px": 78}, 20.0)
    )
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:78, 0:200]
    for k in range(episodes):
        w = ep.EpisodeWriter(root, {"town": f"t{k}", "weather": "clear"}, fsync=False)
        for i in range(steps):
            img = np.empty((78, 200, 3), np.uint8)
            img[:] = (110 + 40 * (yy / 78))[..., None].astype(np.uint8)
            img[:30] = (150, 190, 235)
            shift = 20 * np.sin(0.02 * i + k)
            for lane_x in (60, 140):
                x = lane_x + (yy - 30) * (lane_x - 100) / 48 + shift * (yy - 30) / 48
                img[(np.abs(xx - x) < 1.5) & (yy > 30)] = 235
            img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
            row = dict.fromkeys(ep.BASE_COLUMN_NAMES, 0.0)
            del row[ep.FRAME_INDEX]
            row[ep.T_S] = 0.05 * i
            w.write_step(img, row)
        w.finish({"outcome": "route_complete"})


def raw_decode_frames_per_s(ds: WindowDataset, order: np.ndarray) -> float:
    """Frames/s of bare ``cv2.imdecode`` on the same windows' frame files (the baseline)."""
    paths = [
        ds.episodes[k].frame_path(s + t) for k, s in ds.index[order] for t in range(WINDOW_STEPS)
    ]
    t0 = time.perf_counter()
    for p in paths:
        cv2.imdecode(np.frombuffer(p.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    return len(paths) / (time.perf_counter() - t0)


def main() -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if len(sys.argv) > 1:
            root, source = Path(sys.argv[1]), sys.argv[1]
        else:
            root, source = Path(tmp) / "data", "synthetic"
            synthetic_dataset(root)
        ds = WindowDataset.from_roots(root, WindowConfig(window_steps=WINDOW_STEPS, stride_steps=4))
        order = np.random.default_rng(0).permutation(len(ds))[:NUM_WINDOWS]
        ds[int(order[0])]  # warm up
        t0 = time.perf_counter()
        for i in order:
            ds[int(i)]
        elapsed = time.perf_counter() - t0
        frames = len(order) * WINDOW_STEPS
        raw = raw_decode_frames_per_s(ds, order)
        jpeg = ds.episodes[0].frame_path(0).stat().st_size
        total = sum(len(e) for e in ds.episodes)
        validate_ms = {}
        for level in ("exist", "structure", "decode"):
            t0 = time.perf_counter()
            validate_dataset(root, frames=level)
            validate_ms[level] = round(1e6 * (time.perf_counter() - t0) / total, 1)
        print(
            json.dumps(
                {
                    "benchmark": "data_windows",
                    "source": source,
                    "frame_shape": list(ds.episodes[0].image_shape),
                    "window_steps": WINDOW_STEPS,
                    "windows": len(order),
                    "seconds": round(elapsed, 4),
                    "frames_per_s": round(frames / elapsed, 1),
                    "windows_per_s": round(len(order) / elapsed, 1),
                    "raw_decode_frames_per_s": round(raw, 1),
                    "ratio_to_raw": round(frames / elapsed / raw, 3),
                    "jpeg_bytes_frame0": jpeg,
                    "validated_frames": total,
                    "validate_ms_per_1000_frames": validate_ms,
                    "threads": 1,
                    "loadavg": [round(x, 2) for x in os.getloadavg()],
                }
            )
        )


if __name__ == "__main__":
    main()

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

``frame_cache`` compares the trainer's two in-memory caches (``--frame-cache``) on training
batches (32 windows of 16 frames, ``driving.train.data.make_batch``): the bytes each holds
for the whole dataset, the ms per batch from decoded frames and from JPEG bytes (decoded by a
thread pool of one per core, as the trainer does), and that extra cost as a share of one
fp32 training step of the default policy on the trainer's one thread, timed in the same run
(``jpeg_overhead_share_of_step``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

# Run as a script: make the project importable, and drop benchmarks/ (it holds a sim.py).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from driving.data import episodes as ep  # noqa: E402
from driving.data.validate import validate_dataset  # noqa: E402
from driving.data.windows import WindowConfig, WindowDataset  # noqa: E402

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


def frame_cache(ds: WindowDataset, order: np.ndarray, rounds: int = 3) -> dict:
    """The decoded and JPEG caches on training batches, against one training step."""
    from concurrent.futures import ThreadPoolExecutor

    from driving.model.policy import PolicyConfig, SteeringPolicy
    from driving.train.config import TrainConfig
    from driving.train.data import CachedEpisode, make_batch
    from driving.train.loss import make_optimizer, window_loss
    from perception.augment import Augmenter

    cfg = ds.config
    decoded = WindowDataset([CachedEpisode.load(e) for e in ds.episodes], cfg)
    jpeg = WindowDataset([CachedEpisode.load(e, jpeg=True) for e in ds.episodes], cfg)
    b = TrainConfig.batch_size
    batches = [order[i : i + b].tolist() for i in range(0, len(order) - b + 1, b)]
    device = torch.device("cpu")
    policy = SteeringPolicy(PolicyConfig()).train()
    augment, opt = Augmenter().train(), make_optimizer(policy, TrainConfig(data=(), out=Path()))

    def step() -> None:
        loss = window_loss(policy, make_batch(decoded, batches[0], device), augment)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times: dict[str, list[float]] = {"decoded": [], "jpeg": [], "step": []}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        step()  # warm up
        for _ in range(rounds):  # interleaved: load from other processes hits all alike
            for name, run in (
                ("decoded", lambda: [make_batch(decoded, i, device) for i in batches]),
                ("jpeg", lambda: [make_batch(jpeg, i, device, pool) for i in batches]),
                ("step", step),
            ):
                t0 = time.perf_counter()
                run()
                per = len(batches) if name != "step" else 1
                times[name].append((time.perf_counter() - t0) / per)
    ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    frames = sum(len(e) for e in ds.episodes)
    return {
        "decoded_bytes": frames * int(np.prod(ds.episodes[0].image_shape)),
        "jpeg_bytes": sum(len(f) for e in jpeg.episodes for f in e.jpeg[0]),
        "batch_ms_decoded": round(ms["decoded"], 2),
        "batch_ms_jpeg": round(ms["jpeg"], 2),
        "pool_threads": os.cpu_count() or 1,
        "train_step_ms": round(ms["step"], 1),
        "jpeg_overhead_share_of_step": round((ms["jpeg"] - ms["decoded"]) / ms["step"], 4),
    }


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
        cache = frame_cache(ds, order)
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
                    "frame_cache": cache,
                    "threads": 1,
                    "loadavg": [round(x, 2) for x in os.getloadavg()],
                }
            )
        )


if __name__ == "__main__":
    main()

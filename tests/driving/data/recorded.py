"""Small recorded datasets for the data tests: a 40x16 camera, plausible rows, coloured frames."""

import math

import numpy as np

from driving.data import episodes as ep

CAMERA = {"width_px": 40, "height_px": 16, "hfov_deg": 70.0}


def make_info(camera=CAMERA, **kw):
    return ep.DatasetInfo(sim="fake", camera=dict(camera), control_rate_hz=20.0, **kw)


def make_dataset(root, camera=CAMERA):
    ep.create_or_open_dataset(root, make_info(camera))
    return root


def row(i, **extra):
    return {
        ep.T_S: 0.05 * i,
        ep.SPEED_MPS: 8.0,
        ep.CURVATURE_APPLIED: 0.01 * math.sin(i),
        ep.CURVATURE_EXPERT: 0.02 * math.sin(i),
        ep.ROAD_CURVATURE: 0.015,
        ep.LATERAL_OFFSET_M: 0.1,
        ep.HEADING_ERROR_RAD: -0.01,
        ep.LANE_HALF_WIDTH_M: 1.75,
        ep.X_M: 0.4 * i,
        ep.Y_M: 0.0,
        ep.YAW_RAD: 0.0,
        ep.PROGRESS_M: 0.4 * i,
        ep.NOISE_ACTIVE: i % 3 == 0,
        ep.INTERVENTION: False,
        ep.COLLISION: False,
        ep.COMMAND: 0,
        ep.JUNCTION: -1,
        **extra,
    }


def frame(i):
    rng = np.random.default_rng(i)  # texture, so the JPEG has real entropy-coded data
    img = rng.integers(0, 230, (16, 40, 3), dtype=np.uint8)
    img[..., 0] = 200  # red channel: checks RGB order survives the round trip
    return img


def write_episode(root, n=5, meta=None, extra_columns=None, finish=True, frame_fn=frame, **rowkw):
    w = ep.EpisodeWriter(root, meta or {"town": "hills", "weather": "clear"}, extra_columns)
    for i in range(n):
        w.write_step(frame_fn(i), row(i, **{k: v(i) for k, v in rowkw.items()}))
    if finish:
        return w.finish({"outcome": "route_complete"})
    w.close()
    return w.path

"""Golden frame hashes: the builtin renderer's frames must stay bit-identical.

Each case drives the builtin env for a fixed number of steps with a small deterministic
lane-keeping controller written here (not the expert, so that changes to the expert's
arithmetic do not move the golden frames) and hashes every camera frame with sha256; the
digests of consecutive chunks of frames are compared with ``data/frame_hashes.json``. The
cases cover training and unseen towns, every unseen weather (night: headlights and grain;
fog; heavy_rain: rain streaks and grain), image noise, camera-pose jitter, supersampling 1,
3 and 4, a 400x156 camera, texture-tile changes (every case drives past s = 200 m, where the
second tile takes over) and, for one case, the bird's-eye view.

The digests depend on the OpenCV build (its warps and rounding), so the golden file holds one
set per OpenCV version and the test skips for a version it has none for. When a change of the
frames is intended (say so in the commit), rewrite the file under each OpenCV version in use
(the other versions' sets are dropped, so no stale set survives)::

    python tests/sim/test_frame_hashes.py --write

To add the hashes of a new OpenCV version without changing the frames, first check at the same
commit that the test passes under a version the file has (for example with that version
installed into a folder on ``PYTHONPATH``), then, under the new version::

    python tests/sim/test_frame_hashes.py --add-version
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import sim
from sim import spec

GOLDEN = Path(__file__).parent / "data" / "frame_hashes.json"
CHUNK = 25
"""Frames per stored digest."""


def _case(town: str, weather: str, seed: int, **options) -> dict:
    return dict(town=town, weather=weather, seed=seed, **options)


def _jitter(pitch_std_deg: float, yaw_std_deg: float, height_std_m: float) -> dict:
    return dict(pitch_std_deg=pitch_std_deg, yaw_std_deg=yaw_std_deg, height_std_m=height_std_m)


CASES: dict[str, dict] = {
    "countryside-clear_noon-0": _case("countryside", "clear_noon", 0),
    "suburb-sunset-3": _case("suburb", "sunset", 3),
    "highway-wet_road-1": _case("highway", "wet_road", 1),
    "highway-overcast-2-400x156": _case(
        "highway", "overcast", 2, camera=spec.CameraSpec(width_px=400, height_px=156)
    ),
    "mountain_pass-night-2": _case("mountain_pass", "night", 2),
    "desert-fog-4": _case("desert", "fog", 4),
    "snow-heavy_rain-5": _case("snow", "heavy_rain", 5),
    "suburb-clear_noon-7-noise-jitter": _case(
        "suburb", "clear_noon", 7, image_noise_std=0.03, camera_jitter=_jitter(1.0, 1.5, 0.05)
    ),
    "countryside-overcast-6-ss1": _case("countryside", "overcast", 6, supersample=1),
    "mountain_pass-clear_noon-8-ss3": _case("mountain_pass", "clear_noon", 8, supersample=3),
    "snow-night-9-ss4-jitter": _case(
        "snow", "night", 9, supersample=4, camera_jitter=_jitter(2.0, 1.0, 0.1)
    ),
}
STEPS = 150
"""Steps per case: at 25 m/s and 20 Hz the car passes s = 200 m (the next texture tile)."""
BIRDSEYE_CASE = "suburb-sunset-3"


def _controller(info: dict, step: int) -> np.ndarray:
    """Road-curvature feed-forward, lateral and heading feedback and a slow weave, 1/m."""
    kappa = (
        info[spec.INFO_ROAD_CURVATURE]
        - 0.03 * info[spec.INFO_LATERAL_OFFSET_M]
        - 0.3 * info[spec.INFO_HEADING_ERROR_RAD]
        + 0.004 * np.sin(step / 9.0)
    )
    return np.array([kappa], dtype=np.float32)


def drive_case(name: str) -> dict[str, list[str]]:
    """Drives one case; returns the chunk digests of its frames (and of its bird's-eye view)."""
    case = dict(CASES[name])
    seed = case.pop("seed")
    jitter = case.pop("camera_jitter", None)
    if jitter is not None:
        from sim.builtin.env import CameraJitter

        case["camera_jitter"] = CameraJitter(**jitter)
    render_mode = "rgb_array" if name == BIRDSEYE_CASE else None
    env = sim.make_env(
        "builtin",
        target_speed_mps=25.0,
        route_length_m=600.0,
        intervention_mode=True,
        render_mode=render_mode,
        **case,
    )
    obs, info = env.reset(seed=seed)
    frames, chunk = [], hashlib.sha256()
    chunk.update(obs[spec.IMAGE].tobytes())
    for step in range(1, STEPS + 1):
        obs, _r, terminated, truncated, info = env.step(_controller(info, step))
        assert not (terminated or truncated)
        chunk.update(obs[spec.IMAGE].tobytes())
        if step % CHUNK == 0:
            frames.append(chunk.hexdigest()[:32])
            chunk = hashlib.sha256()
    out = {"frames": frames, "progress_m": [round(float(info[spec.INFO_PROGRESS_M]), 3)]}
    if render_mode is not None:
        out["birdseye"] = [hashlib.sha256(env.render().tobytes()).hexdigest()[:32]]
    env.close()
    return out


def _golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", list(CASES))
def test_frames_match_the_golden_hashes(name):
    versions = _golden()["opencv"]
    if cv2.__version__ not in versions:
        pytest.skip(f"golden frames recorded with opencv {sorted(versions)}, not {cv2.__version__}")
    got = drive_case(name)
    want = versions[cv2.__version__]["cases"][name]
    assert got["progress_m"] == want["progress_m"], "the drive itself changed"
    for i, (g, w) in enumerate(zip(got["frames"], want["frames"], strict=True)):
        assert g == w, f"frames {i * CHUNK}..{(i + 1) * CHUNK} of {name} changed"
    assert got.get("birdseye") == want.get("birdseye")


def test_golden_file_covers_every_case_for_every_version():
    golden = _golden()
    assert golden["steps"] == STEPS and golden["chunk"] == CHUNK
    for version, recorded in golden["opencv"].items():
        assert set(recorded["cases"]) == set(CASES), version


if __name__ == "__main__":
    if sys.argv[1:] not in (["--write"], ["--add-version"]):
        sys.exit(f"usage: python {sys.argv[0]} --write | --add-version")
    recorded = {"numpy": np.__version__, "cases": {name: drive_case(name) for name in CASES}}
    versions = _golden()["opencv"] if sys.argv[1] == "--add-version" else {}
    versions[cv2.__version__] = recorded
    data = {"steps": STEPS, "chunk": CHUNK, "opencv": dict(sorted(versions.items()))}
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {GOLDEN}: opencv {', '.join(data['opencv'])}")

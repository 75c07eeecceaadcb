"""tools/inspect_dataset.py: validation, summary, figures, salvage, exit status, stdlib inspect."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from driving.data import episodes as ep
from driving.data.summary import InspectConfig, format_summary
from driving.data.summary import inspect_dataset as inspect_config
from tools.inspect_dataset import main

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # works without an installed package too
H, W = 16, 40


def inspect_dataset(data, **kw):
    return inspect_config(InspectConfig(data, **kw))


def write(root, n, town, weather, finish=True, speed=10.0):
    w = ep.EpisodeWriter(root, {"town": town, "weather": weather})
    for i in range(n):
        row = dict.fromkeys(ep.BASE_COLUMN_NAMES, 0.0)
        del row[ep.FRAME_INDEX]
        row |= {ep.T_S: 0.05 * i, ep.SPEED_MPS: speed, ep.PROGRESS_M: speed * 0.05 * i}
        row |= {ep.CURVATURE_EXPERT: 0.01 * np.sin(i), ep.CURVATURE_APPLIED: 0.012 * np.sin(i)}
        row[ep.NOISE_ACTIVE] = i % 2 == 0
        w.write_step(np.full((H, W, 3), 40 + i, np.uint8), row)
    if finish:
        return w.finish({"outcome": "route_complete", "distance_m": speed * 0.05 * n})
    w.close()
    return w.path


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    ep.create_or_open_dataset(root, ep.DatasetInfo("fake", {"width_px": W, "height_px": H}, 20.0))
    write(root, 20, "hills", "clear")  # 1 s, 10 m
    write(root, 40, "hills", "fog")  # 2 s, 20 m
    write(root, 20, "city", "clear")
    return root


def test_summary_counts_hours_km_per_town_and_weather(dataset, tmp_path):
    s = inspect_dataset(dataset, out_dir=tmp_path / "report")
    assert s["episodes"] == 3 and s["steps"] == 80 and s["bad_episodes"] == []
    assert s["hours"] == pytest.approx(4.0 / 3600) and s["km"] == pytest.approx(0.04)
    assert s["by_town"]["hills"]["episodes"] == 2
    assert s["by_town"]["hills"]["km"] == pytest.approx(0.03)
    assert s["by_weather"]["fog"]["hours"] == pytest.approx(2.0 / 3600)
    assert s["outcomes"] == {"route_complete": 3} and s["noise_share"] == pytest.approx(0.5)
    assert sum(s["label"]["histogram"]["counts"]) == 80
    for name in ("label_histogram", "contact_sheet"):
        img = cv2.imread(s["figures"][name])
        assert img is not None and img.shape[0] > 20
    saved = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert saved["steps"] == 80
    text = format_summary(s)
    assert "hills" in text and "fog" in text and "3 episodes" in text


def test_bad_and_partial_episodes_are_reported_and_salvaged(dataset):
    bad = write(dataset, 5, "city", "fog")
    (bad / "frames" / "000002.jpg").write_bytes(b"not a jpeg")
    partial = write(dataset, 7, "city", "fog", finish=False)
    s = inspect_dataset(dataset)
    assert s["episodes"] == 3 and s["partial_episodes"] == 1
    assert len(s["bad_episodes"]) == 1 and "000002.jpg" in s["bad_episodes"][0]["error"]
    assert (dataset / "meta" / "inspect" / "contact_sheet.png").is_file()
    s = inspect_dataset(dataset, salvage=True)
    assert s["partial_episodes"] == 0 and s["salvaged"] == [str(partial)[: -len(".partial")]]
    assert s["episodes"] == 4 and s["outcomes"]["salvaged"] == 1
    assert main([str(dataset), "--out-dir", str(dataset / "r")]) == 1  # the bad one is listed


def test_command_line_exit_status_and_no_stdlib_shadowing(dataset):
    run = [sys.executable, str(ROOT / "tools" / "inspect_dataset.py")]
    ok = subprocess.run([*run, str(dataset)], capture_output=True, text=True, env=ENV)
    assert ok.returncode == 0, ok.stderr
    assert "3 episodes" in ok.stdout
    missing = subprocess.run([*run, str(dataset / "nope")], capture_output=True, text=True, env=ENV)
    assert missing.returncode == 2 and "not a folder" in missing.stderr
    assert "Traceback" not in missing.stderr
    # Any script run from tools/ has tools/ first on sys.path: `import inspect` must still be
    # the standard library's.
    code = "import dataclasses, inspect; print(inspect.signature(len), inspect.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT / 'tools')!r}); {code}"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "tools" not in out.stdout.split()[-1]

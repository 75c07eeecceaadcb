"""tools/export.py: the documented command line writes a checked graph; clear one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from driving.model.checkpoint import save_checkpoint
from driving.model.export import OnnxPolicy
from driving.model.policy import PolicyConfig, SteeringPolicy
from tools.export import main

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_cli_exports_a_checkpoint_that_drives_like_torch(tmp_path):
    torch.manual_seed(0)
    policy = SteeringPolicy(PolicyConfig()).eval()
    ckpt = save_checkpoint(tmp_path / "run" / "best", policy)
    out = tmp_path / "policy.onnx"
    cmd = [sys.executable, "tools/export.py", "--checkpoint", str(tmp_path / "run")]
    cmd += ["--out", str(out), "--check-steps", "5"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])  # one JSON line on stdout
    assert result["out"] == str(out) and result["bytes"] == out.stat().st_size
    assert result["core"] == "cfc-ncp" and result["check_steps"] == 5
    assert result["max_abs_curvature_diff"] <= 1e-5
    driver = OnnxPolicy(out)
    assert driver.metadata["source"] == str(ckpt)  # a run folder resolves to its best/
    frame = np.random.default_rng(0).integers(0, 256, (78, 200, 3), dtype=np.uint8)
    obs = {"image": frame, "t_s": np.array([0.0]), "speed_mps": np.array([8.0], np.float32)}
    a, _ = driver.act(obs, driver.reset())
    with torch.no_grad():
        b, _ = policy.act(obs, policy.reset())
    assert abs(float(a[0]) - float(b[0])) <= 1e-5


def test_errors_are_one_line_and_name_the_problem(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "p.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path / "nope") in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exited:  # tyro reports a bad option value itself
        main(["--checkpoint", str(tmp_path), "--out", "p.txt"])
    assert exited.value.code == 2 and "must end in .onnx" in capsys.readouterr().err
    assert not (tmp_path / "p.onnx").exists()

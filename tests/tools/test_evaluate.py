"""tools/evaluate.py: exit codes, signals (workers end with it, Ctrl-C keeps results), resume."""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.driving.evaluate.helpers import untrained_cfc
from tests.driving.rollout.processes import ROOT, children, start_tool, wait_for, wait_gone
from tools.evaluate import main

# Expert only (no checkpoint to train), 6 episodes of 200 m: a few seconds each.
QUICK = ["--suite", "train-towns", "--routes", "1", "--route-km", "0.2", "--no-progress"]


def _finished(out):
    return sorted((out / "episodes").rglob("*.json")) if (out / "episodes").is_dir() else []


def _start(out, *args):
    return start_tool("evaluate", "--out", str(out), *QUICK, *args)


def test_a_broken_checkpoint_is_an_error_before_anything_is_written(tmp_path, capsys):
    ck = untrained_cfc(tmp_path / "cfc")
    (ck / "model.safetensors").write_bytes(b"not a safetensors file")
    out = tmp_path / "eval"
    assert main(["--checkpoint", str(ck), "--out", str(out), *QUICK]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "model.safetensors" in err and "Traceback" not in err
    assert not out.exists()


def test_runtime_onnx_int8_round_trip(tmp_path, capsys):
    from driving.model.export import OnnxPolicy

    ck = untrained_cfc(tmp_path / "cfc")
    out = tmp_path / "eval"
    quick = ["--suite", "unseen-weathers", "--routes", "1", "--route-km", "0.1", "--no-progress"]
    args = ["--checkpoint", str(ck), "--out", str(out), *quick, "--runtime", "onnx-int8"]
    assert main(args) == 0, capsys.readouterr().err
    model = json.loads((out / "metrics.json").read_text())["models"][1]
    assert model["runtime"] == "onnx-int8" and model["export"]["precision"] == "int8"
    assert model["export"]["max_abs_curvature_diff"] <= 2e-3  # the int8 export's check
    assert OnnxPolicy(out / "onnx" / "cfc-int8.onnx").metadata["precision"] == "int8"
    assert json.loads((out / "run.json").read_text())["run"]["runtime"] == "onnx-int8"
    assert main(["--runtime", "onnx", *args[:-2]]) == 2  # another runtime: another run
    assert "differs in: runtime" in capsys.readouterr().err


@pytest.mark.slow
def test_workers_die_with_a_killed_evaluation(tmp_path):
    out = tmp_path / "eval"
    proc = _start(out, "--workers", "2")
    wait_for(lambda: (out / "run.json").exists() and len(children(proc.pid)) >= 2, proc)
    workers = children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert wait_gone(workers) == []


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_a_stop_keeps_what_finished_and_a_rerun_drives_only_the_rest(tmp_path, how):
    out = tmp_path / "eval"
    proc = _start(out, "--workers", "2")
    wait_for(lambda: len(_finished(out)) >= 1, proc)
    workers = children(proc.pid)
    if how == "sigterm":
        os.kill(proc.pid, signal.SIGTERM)
    else:  # the terminal sends Ctrl-C to the whole process group
        os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "stopped early" in stdout
    assert wait_gone(workers) == []
    kept = {p: p.stat().st_mtime_ns for p in _finished(out)}
    doc = json.loads((out / "metrics.json").read_text())
    assert 1 <= len(doc["episodes"]) == len(kept) < 6  # what finished, nothing else

    rerun = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "evaluate.py"), "--out", str(out), *QUICK],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {len(kept)} finished, driving the other {6 - len(kept)}" in rerun.stderr
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # kept, not driven again
    doc = json.loads((out / "metrics.json").read_text())
    assert len(doc["episodes"]) == 6 and len(_finished(out)) == 6
    rollouts = sorted((out / "rollouts").rglob("episode_*"))
    assert [p.name for p in rollouts] == ["episode_000000"]  # one per condition, no leftovers


def test_a_rerun_of_another_evaluation_is_refused(tmp_path, capsys):
    out = tmp_path / "eval"
    short = ["--suite", "unseen-weathers", "--routes", "1", "--no-progress", "--no-plots"]
    assert main(["--out", str(out), *short, "--route-km", "0.05"]) == 0
    capsys.readouterr()
    assert main(["--out", str(out), *short, "--route-km", "0.06"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["--out", str(out), *short, "--route-km", "0.06", "--overwrite"]) == 0
    assert len(list((out / "rollouts").rglob("episode_*"))) == 1  # replaced, not piled up

"""Evaluation with --runtime torch-bf16 / onnx / onnx-int8 (driving.evaluate.runtime)."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from driving.evaluate.evaluation import EvalError, evaluate, plan_jobs, run_record
from driving.evaluate.jobs import EvalWorker
from driving.evaluate.report import EXPERT, load_metrics
from driving.evaluate.run_folder import RunFolder, RunFolderError, fingerprint
from driving.evaluate.runtime import RUNTIMES, RuntimeExportError
from driving.model.export import OnnxPolicy
from tests.driving.evaluate.helpers import quick_config, untrained_cfc
from tests.driving.rollout.processes import ROOT

LATERAL_RMS_TOLERANCE_M = 1e-4
"""fp32 onnxruntime and torch steer alike to float rounding (about 1e-8 1/m per step), so over
100 m their lateral RMS may differ by this much at most (measured: about 1e-6 m)."""

BF16_LATERAL_RMS_TOLERANCE_M = 2e-3
"""The bf16 conv head steers within about 1e-4 1/m of fp32 per step
(tests/driving/model/test_head_precision.py); over 100 m that moves lateral RMS by
millimetres at most."""

SUITE = {"suite": "unseen-weathers", "route_km": 0.1}
"""Three episodes of 100 m per model."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An untrained checkpoint evaluated with torch and with onnx (fp32), and their configs."""
    tmp = tmp_path_factory.mktemp("runtime")
    ck = untrained_cfc(tmp / "cfc")
    cfgs = {
        rt: quick_config(tmp / rt, checkpoint=(ck,), plots=True, runtime=rt, **SUITE)
        for rt in RUNTIMES
    }
    docs = {
        rt: load_metrics(evaluate(cfgs[rt]).metrics_path) for rt in ("torch", "onnx", "torch-bf16")
    }
    return ck, cfgs, docs


def _policy_episodes(doc):
    return {
        (e["spec"]["town"], e["spec"]["route"]): e["metrics"]
        for e in doc["episodes"]
        if e["model"] != EXPERT
    }


def _assert_drives_like_torch(docs, runtime, tolerance_m):
    """The same steps and interventions per episode as torch, lateral RMS within tolerance."""
    torch_eps, other_eps = _policy_episodes(docs["torch"]), _policy_episodes(docs[runtime])
    assert len(torch_eps) == 3 and torch_eps.keys() == other_eps.keys()
    for key, t in torch_eps.items():
        o = other_eps[key]
        assert (o["steps"], o["interventions"]) == (t["steps"], t["interventions"]), key
        assert o["lateral_error_rms_m"] == pytest.approx(
            t["lateral_error_rms_m"], abs=tolerance_m
        ), key


def test_onnx_drives_like_torch_and_the_runtime_is_recorded(runs):
    _, cfgs, docs = runs
    _assert_drives_like_torch(docs, "onnx", LATERAL_RMS_TOLERANCE_M)
    expert = [[e for e in d["episodes"] if e["model"] == EXPERT] for d in docs.values()]
    assert expert[0] == expert[1]  # the expert does not depend on the runtime

    torch_model, onnx_model = docs["torch"]["models"][1], docs["onnx"]["models"][1]
    assert torch_model["runtime"] == "torch" and "export" not in torch_model
    assert onnx_model["runtime"] == "onnx"
    assert onnx_model["export"]["precision"] == "fp32"
    assert onnx_model["export"]["max_abs_curvature_diff"] <= 1e-5
    out = cfgs["onnx"].out
    assert "runtime `onnx`" in (out / "report.md").read_text()
    assert json.loads((out / "run.json").read_text())["run"]["runtime"] == "onnx"
    assert "runtime" not in json.loads((cfgs["torch"].out / "run.json").read_text())["run"]
    assert sorted(p.name for p in (out / "onnx").iterdir()) == ["cfc-fp32.onnx"]


def test_torch_bf16_drives_like_torch_without_an_export(runs):
    _, cfgs, docs = runs
    _assert_drives_like_torch(docs, "torch-bf16", BF16_LATERAL_RMS_TOLERANCE_M)
    assert [e["metrics"] for e in docs["torch-bf16"]["episodes"]] != [
        e["metrics"] for e in docs["torch"]["episodes"]
    ]  # the bf16 head did drive (rounding shows in the metrics)
    model = docs["torch-bf16"]["models"][1]
    assert model["runtime"] == "torch-bf16" and "export" not in model
    out = cfgs["torch-bf16"].out
    assert json.loads((out / "run.json").read_text())["run"]["runtime"] == "torch-bf16"
    assert not (out / "onnx").exists()
    jobs, _ = plan_jobs(cfgs["torch-bf16"])
    assert {(j.head_precision, j.policy_file) for j in jobs if j.model != EXPERT} == {
        ("bf16", None)
    }


def test_a_worker_keeps_one_onnx_session_across_episodes_and_none_for_the_expert(runs):
    _, cfgs, docs = runs
    jobs, _ = plan_jobs(cfgs["onnx"])
    policy_jobs = [j for j in jobs if j.policy_file is not None]
    assert len(policy_jobs) == 3 and all(j.model != EXPERT for j in policy_jobs)
    worker = EvalWorker()
    try:
        worker.run(next(j for j in jobs if j.model == EXPERT))
        assert worker.drivers == {}  # the expert's episode loads no onnxruntime session
        first = worker.run(policy_jobs[0])
        (session,) = worker.drivers.values()
        assert isinstance(session, OnnxPolicy)
        assert session.path.parent == (cfgs["onnx"].out / "onnx").resolve()
        second = worker.run(policy_jobs[1])
        assert list(worker.drivers.values()) == [session]  # the same session, kept
    finally:
        worker.close()
    episodes = _policy_episodes(docs["onnx"])
    for job, output in ((policy_jobs[0], first), (policy_jobs[1], second)):
        assert output.result.metrics.to_dict() == episodes[(job.spec.town, job.spec.route)]


def test_the_runtime_is_part_of_the_fingerprint_and_a_resume_with_another_is_refused(
    runs, monkeypatch
):
    _, cfgs, _ = runs
    records = {rt: run_record(c, plan_jobs(c)[0]) for rt, c in cfgs.items()}
    assert "runtime" not in records["torch"]  # torch runs keep their earlier fingerprints
    assert len({fingerprint(r) for r in records.values()}) == len(RUNTIMES)
    # the torch run's folder, resumed with onnx-int8: refused before any export
    import driving.model.export

    def no_export(*_args, **_kwargs):
        raise AssertionError("exported before the run folder was checked")

    monkeypatch.setattr(driving.model.export, "export", no_export)
    other = dataclasses.replace(cfgs["torch"], runtime="onnx-int8")
    with pytest.raises(RunFolderError, match=r"differs in: runtime\).*--overwrite"):
        evaluate(other)
    with pytest.raises(RunFolderError, match=r"differs in: runtime"):
        RunFolder(cfgs["onnx"].out, records["torch"]).check()


def test_a_missing_onnxruntime_is_an_error_before_anything_is_written(runs, monkeypatch, tmp_path):
    ck, _, _ = runs
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    cfg = quick_config(tmp_path / "eval", checkpoint=(ck,), runtime="onnx", **SUITE)
    with pytest.raises(RuntimeExportError, match=r"cfc: cannot drive it with --runtime onnx.*pip"):
        evaluate(cfg)
    assert not cfg.out.exists()


def test_a_failed_export_check_is_an_error_before_anything_is_written(runs, monkeypatch, tmp_path):
    ck, _, _ = runs
    import driving.model.export

    monkeypatch.setattr(driving.model.export, "FP32_TOLERANCE", -1.0)  # no graph passes
    cfg = quick_config(tmp_path / "eval", checkpoint=(ck,), runtime="onnx", **SUITE)
    with pytest.raises(RuntimeExportError, match=r"cfc: .*differs from the torch policy"):
        evaluate(cfg)
    assert not cfg.out.exists()


def test_an_unknown_runtime_is_refused(tmp_path):
    with pytest.raises(
        EvalError, match=r"unknown runtime 'tensorrt'; choose one of torch, torch-bf16, onnx"
    ):
        quick_config(tmp_path / "eval", runtime="tensorrt")


def test_expert_only_evaluation_never_imports_onnxruntime(tmp_path):
    code = (
        "import sys; from pathlib import Path; from driving.evaluate.evaluation import evaluate; "
        "from tests.driving.evaluate.helpers import quick_config; "
        "evaluate(quick_config(Path(sys.argv[1]), suite='unseen-weathers', route_km=0.05, "
        "runtime='onnx')); print('onnxruntime' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "eval")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert (tmp_path / "eval" / "metrics.json").is_file()

"""Closed-loop evaluation (driving.evaluate.evaluation): metrics, rollouts, workers, resume."""

import logging
import os

import numpy as np
import pytest

from driving.data import episodes as ep
from driving.evaluate.evaluation import EvalError, evaluate, model_names, plan_jobs
from driving.evaluate.jobs import run_job
from driving.evaluate.report import load_metrics
from driving.evaluate.suites import BUILTIN_SUITES
from tests.driving.evaluate.helpers import quick_config, set_camera, untrained_cfc


def _quick(tmp_path, **overrides):
    return quick_config(tmp_path / "eval", **overrides)


def _metrics(cfg):
    return load_metrics(evaluate(cfg).metrics_path)


@pytest.mark.slow
def test_expert_has_no_interventions_on_every_builtin_suite(tmp_path):
    doc = _metrics(_quick(tmp_path, suite="all", route_km=0.05))
    assert [m["name"] for m in doc["models"]] == ["expert"]
    assert list(dict.fromkeys(e["spec"]["suite"] for e in doc["episodes"])) == list(BUILTIN_SUITES)
    for e in doc["episodes"]:
        m = e["metrics"]
        assert m["interventions"] == 0, e["spec"]
        assert m["route_completion"] == pytest.approx(1.0, abs=0.02), e["spec"]
        assert m["lateral_error_max_m"] < 0.5, e["spec"]
    rates = {e["spec"]["control_rate_hz"] for e in doc["episodes"] if e["spec"]["suite"] == "rate"}
    assert rates == {10.0, 20.0, 30.0}


def test_bad_requests_are_clear_errors(tmp_path):
    with pytest.raises(EvalError, match="unknown suite 'towns'"):
        _quick(tmp_path, suite="towns")
    with pytest.raises(EvalError, match="need --sim carla"):
        _quick(tmp_path, suite="carla-train")
    with pytest.raises(EvalError, match="is not a folder"):
        _quick(tmp_path, checkpoint=(tmp_path / "missing",))
    with pytest.raises(EvalError, match="one server"):
        _quick(tmp_path, suite="carla-train", sim="carla", workers=2)
    with pytest.raises(EvalError, match="alternatives"):
        _quick(tmp_path, workers=2, ray="local")


def test_model_names_are_unique(tmp_path):
    from pathlib import Path

    paths = [Path("a/cfc"), Path("b/cfc"), Path("c/expert"), Path("lstm/best"), Path("gru/last")]
    assert model_names(paths) == ["cfc", "cfc-2", "expert-2", "lstm", "gru-last"]


@pytest.fixture(scope="module")
def cfc(tmp_path_factory):
    """An untrained cfc-ncp checkpoint (weights from a fixed seed)."""
    return untrained_cfc(tmp_path_factory.mktemp("ck") / "cfc-ncp")


@pytest.mark.slow
def test_policy_rollouts_neurons_report_and_process_pool(tmp_path, cfc):
    from driving.evaluate.metrics import metrics_from_columns

    cfg = _quick(
        tmp_path,
        suite="unseen-weathers",
        route_km=0.05,
        checkpoint=(cfc,),
        rollouts="first",
        plots=True,
        workers=2,
    )
    doc = _metrics(cfg)
    assert [m["name"] for m in doc["models"]] == ["expert", "cfc-ncp"]
    runs = [e for e in doc["episodes"] if e["model"] == "cfc-ncp"]
    assert len(runs) == 3 and runs[0]["rollout"] and not any(e["rollout"] for e in runs[1:])

    # the rollout holds what was scored, plus the prediction and all 19 neuron states
    episode = ep.read_episode(cfg.out / runs[0]["rollout"])
    cols = episode.columns
    neurons = [ep.neuron_column(i) for i in range(19)]
    assert ep.CURVATURE_PRED in cols and all(n in cols for n in neurons)
    assert np.abs(np.stack([cols[n] for n in neurons])).max() > 0
    np.testing.assert_allclose(cols[ep.CURVATURE_PRED], cols[ep.CURVATURE_APPLIED], atol=1e-6)
    rescored = metrics_from_columns(
        cols,
        route_length_m=episode.meta["route_length_m"],
        distance_m=episode.meta["distance_m"],
        terminated=episode.meta["terminated"],
    )
    assert rescored.to_dict() == pytest.approx(runs[0]["metrics"])

    # a worker process and this process drive the same episode the same way (alone, this
    # is exact; after some other tests in the same process it has differed by 4e-5 relative)
    jobs, _ = plan_jobs(cfg)
    here = run_job(next(j for j in jobs if j.model == "cfc-ncp" and j.rollout_root is None))
    assert here.result.metrics.interventions == runs[1]["metrics"]["interventions"]
    assert here.result.metrics.to_dict() == pytest.approx(runs[1]["metrics"], rel=1e-3)

    report = (cfg.out / "report.md").read_text()
    assert "| cfc-ncp |" in report and "| **expert** | clean | 3 |" in report
    assert (cfg.out / "bars_unseen-weathers.png").is_file()
    assert (cfg.out / "trajectories_unseen-weathers_clean.png").is_file()


def test_termination_mode_ends_at_the_departure(tmp_path, cfc):
    doc = _metrics(
        _quick(
            tmp_path,
            suite="unseen-weathers",
            route_km=0.3,
            checkpoint=(cfc,),
            mode="termination",
        )
    )
    assert doc["mode"] == "termination"
    runs = {e["model"]: [] for e in doc["episodes"]}
    for e in doc["episodes"]:
        runs[e["model"]].append(e["metrics"])
    assert all(not m["terminated"] and m["route_completion"] == 1.0 for m in runs["expert"])
    ended = [m for m in runs["cfc-ncp"] if m["terminated"]]
    assert ended, "the untrained policy should leave its lane within 300 m"
    assert all(m["interventions"] == 1 and m["route_completion"] < 1.0 for m in ended)


@pytest.mark.slow
@pytest.mark.skipif(
    __import__("importlib").util.find_spec("ray") is None, reason="needs the ray extra"
)
def test_ray_tasks_on_a_local_instance(tmp_path):
    cfg = _quick(tmp_path, suite="unseen-weathers", route_km=0.05, ray="local")
    doc = _metrics(cfg)
    assert len(doc["episodes"]) == 3
    here = run_job(plan_jobs(cfg)[0][0])
    assert here.result.metrics.to_dict() == pytest.approx(doc["episodes"][0]["metrics"])


# ---------------------------------------------------------------------------------------------
# Checked before anything is written; resumed, refused or replaced on a rerun


def test_a_broken_checkpoint_fails_before_anything_is_written(tmp_path, cfc):
    import shutil

    from driving.model.checkpoint import CheckpointError

    broken = tmp_path / "broken"
    shutil.copytree(cfc, broken)
    model = broken / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-100])
    cfg = _quick(tmp_path, suite="unseen-weathers", checkpoint=(broken,))
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        evaluate(cfg)
    assert not cfg.out.exists()  # the expert's episodes did not run first


def test_a_camera_the_checkpoint_was_not_trained_with_is_refused(tmp_path, cfc, caplog):
    import shutil

    from driving.evaluate.evaluation import check_inputs
    from driving.rollout.policies import CameraMismatchError
    from sim.spec import CameraSpec

    ck = tmp_path / "wide"
    shutil.copytree(cfc, ck)
    set_camera(ck, CameraSpec(hfov_deg=90.0).to_dict())
    cfg = _quick(tmp_path, suite="unseen-weathers", checkpoint=(ck,))
    with pytest.raises(CameraMismatchError, match=r"wide.*'hfov_deg': 90\.0.*'hfov_deg': 70\.0"):
        evaluate(cfg)
    assert not cfg.out.exists()

    set_camera(ck, CameraSpec().to_dict())  # the env's camera: accepted without a word
    with caplog.at_level(logging.WARNING):
        check_inputs(plan_jobs(cfg)[0])
    assert "records no camera" not in caplog.text

    set_camera(ck, None)  # an older checkpoint: the image size alone is checked, with a warning
    with caplog.at_level(logging.WARNING):
        check_inputs(plan_jobs(cfg)[0])
    assert "records no camera" in caplog.text
    config = (ck / "config.json").read_text()
    narrow = config.replace('"input_width_px": 200', '"input_width_px": 160', 1)  # preprocess
    (ck / "config.json").write_text(narrow)
    with pytest.raises(CameraMismatchError, match="160"):
        check_inputs(plan_jobs(cfg)[0])


def _episode_files(out):
    return {p: p.stat().st_mtime_ns for p in sorted((out / "episodes").rglob("*.json"))}


def _rollout_episodes(out):
    return sorted(p.relative_to(out) for p in (out / "rollouts").rglob("episode_*"))


def test_a_rerun_resumes_the_same_run_and_refuses_another(tmp_path):
    from driving.evaluate.run_folder import RunFolderError

    cfg = _quick(tmp_path, suite="unseen-weathers", route_km=0.05, rollouts="all")
    first = evaluate(cfg)
    assert (first.planned, first.finished, first.resumed) == (3, 3, 0)
    files = _episode_files(cfg.out)
    rollouts = _rollout_episodes(cfg.out)
    assert len(files) == 3 and len(rollouts) == 3

    # an interrupted run: one episode unfinished, its rollout left half-written
    lost = next(iter(files))
    lost.unlink()
    doc = load_metrics(first.metrics_path)
    lost_rollout = cfg.out / next(
        e["rollout"] for e in doc["episodes"] if e["spec"]["town"] in lost.name
    )
    os.rename(lost_rollout, f"{lost_rollout}.partial")
    again = evaluate(cfg)
    assert (again.finished, again.resumed) == (3, 2)  # one episode driven, two kept
    assert {p: t for p, t in _episode_files(cfg.out).items() if p != lost} == {
        p: t for p, t in files.items() if p != lost
    }
    assert len(_rollout_episodes(cfg.out)) == 3  # the stale one went, none piled up
    assert not any(".partial" in str(p) for p in _rollout_episodes(cfg.out))
    redone = load_metrics(again.metrics_path)["episodes"]
    before_resume = [{**e, "rollout": None} for e in doc["episodes"]]
    assert [{**e, "rollout": None} for e in redone] == before_resume  # deterministic

    other = _quick(tmp_path, suite="unseen-weathers", route_km=0.06, rollouts="all")
    before = sorted(p for p in cfg.out.rglob("*"))
    with pytest.raises(RunFolderError, match=r"another evaluation run.*route_km.*--overwrite"):
        evaluate(other)
    assert sorted(p for p in cfg.out.rglob("*")) == before

    replaced = evaluate(_quick(tmp_path, suite="unseen-weathers", route_km=0.06, overwrite=True))
    assert (replaced.finished, replaced.resumed) == (3, 0)
    assert not (cfg.out / "rollouts").exists()  # the earlier run's rollouts went with it
    doc = load_metrics(replaced.metrics_path)
    assert {e["spec"]["route_length_m"] for e in doc["episodes"]} == {60.0}


def test_outputs_without_a_run_record_are_refused(tmp_path):
    from driving.evaluate.run_folder import RunFolderError

    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    with pytest.raises(RunFolderError, match="without a run record"):
        evaluate(_quick(tmp_path, suite="unseen-weathers", route_km=0.05))
    (out / "notes.txt").write_text("mine")
    summary = evaluate(_quick(tmp_path, suite="unseen-weathers", route_km=0.05, overwrite=True))
    assert summary.finished == 3 and (out / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("ray") is not None, reason="ray is installed"
)
def test_ray_without_the_extra_is_named_before_anything_is_written(tmp_path):
    from driving.rollout.runner import RayNotInstalledError

    cfg = _quick(tmp_path, suite="unseen-weathers", ray="local")
    with pytest.raises(RayNotInstalledError, match=r"\[ray\]"):
        evaluate(cfg)
    assert not cfg.out.exists()

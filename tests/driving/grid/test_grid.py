"""The grid: bad requests, resuming after a kill, half-finished folders, workers and Ray."""

import importlib.util
import json
import shutil
import socket

import pytest

import driving.train.trainer as trainer
import tools.grid as tool
from driving.evaluate.run_folder import RunFolderError
from driving.grid.config import GridConfig, GridError, parse_recipe, parse_seeds
from driving.grid.plan import DONE_FILE, plan_grid
from driving.grid.run import run_grid
from driving.model.checkpoint import BEST_DIR, LAST_DIR, read_checkpoint_config
from liquid_drive.errors import LiquidDriveError

TRAIN = (
    "batch_size=4", "window_steps=8", "val_fraction=0.34", "val_every=2", "save_every=2",
    "log_every=2", "warmup_steps=1", "augment.enabled=false", "tensorboard=false",
)  # fmt: skip
"""The tiny task of tests/driving/train/tiny.py, as grid overrides."""
SUITE = "unseen-weathers"


def _grid(data, out, **kw):
    base = dict(
        data=(data,), out=out, models=("cfc-ncp",), seeds="0-1", suites=(SUITE,), train=TRAIN,
        steps=4, routes=1, route_km=0.05, plots=False, progress=False,
    )  # fmt: skip
    return GridConfig(**{**base, **kw})


def _listed(summary, families):
    """Asserts the compare table has one row per family with seeds 0 and 1."""
    rows = summary.tables[SUITE].splitlines()[2:]
    assert [r.split(" | ")[0].strip("| ") for r in rows] == ["expert", *families]
    assert all(r.split(" | ")[1] == "0, 1" for r in rows[1:])
    assert summary.missing[SUITE] == []


@pytest.fixture(scope="module")
def finished(tiny_data, tmp_path_factory):
    """A finished 1 model x 2 seeds grid (tests copy it before changing it)."""
    out = tmp_path_factory.mktemp("grid") / "grid"
    summary = run_grid(_grid(tiny_data, out))
    assert not summary.stopped and len(summary.results) == 4
    return out


def _copy(finished, tmp_path):
    out = tmp_path / "grid"
    shutil.copytree(finished, out)
    return out


# ---------------------------------------------------------------------------------------------
# Bad requests: clear errors before anything is written


def test_seed_specs_and_recipes_parse():
    assert parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("0,2") == (0, 2)
    assert parse_seeds("0-1, 7") == (0, 1, 7)
    assert parse_recipe("base") == ("base", {})
    name, overrides = parse_recipe('wide:lr=0.001,val_towns=["a","b"],policy.label_scale=5')
    assert name == "wide" and overrides == {
        "lr": 0.001, "val_towns": ["a", "b"], "policy.label_scale": 5,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"models": ("cfc-ncp", "transformer")}, "unknown model 'transformer'; choose from"),
        ({"seeds": "3-1"}, r"the range 3-1 is empty"),
        ({"seeds": ""}, "no seeds given"),
        ({"seeds": "0,x"}, "'x' is not a seed"),
        ({"seeds": "0-2,1"}, "seed '1' is given twice"),
        ({"suites": ("carla-train",)}, "unknown suite 'carla-train'"),
        ({"suites": ()}, "no --suites"),
        ({"recipes": ("a-b",)}, "may hold only letters"),
        ({"recipes": ("a", "a:lr=0.1")}, "recipe 'a' is given twice"),
        ({"train": ("steps",)}, "is not FIELD=VALUE"),
        ({"workers": 2, "ray": "local"}, "alternatives"),
    ],
)
def test_bad_requests_are_refused(tmp_path, kw, message):
    with pytest.raises(LiquidDriveError, match=message):  # GridError, RunnerConfigError
        _grid(tmp_path / "data", tmp_path / "grid", **kw)


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"train": ("lrate=0.1",)}, GridError, "'lrate' is not a field of TrainConfig"),
        ({"train": ("seed=3",)}, GridError, "seed is set by the grid"),
        ({"recipes": ("x:policy.core=lstm",)}, GridError, "policy.core is set by the grid"),
        ({"recipes": ("x:lr=-1",)}, ValueError, "lr must be positive"),
        ({"data": ("missing",)}, GridError, "not a folder"),
    ],
)
def test_bad_overrides_and_data_are_refused_before_anything_is_written(
    tiny_data, tmp_path, kw, error, message
):
    cfg = _grid(kw.pop("data", (tiny_data,))[0], tmp_path / "grid", **kw)
    with pytest.raises(error, match=message):
        run_grid(cfg)
    assert not (tmp_path / "grid").exists()


def test_a_ray_address_that_does_not_answer_is_an_error_before_anything_is_written(
    tiny_data, tmp_path
):
    pytest.importorskip("ray")
    from driving.rollout.runner import RayUnreachableError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RayUnreachableError, match=f"127.0.0.1:{port}"):
        run_grid(_grid(tiny_data, tmp_path / "grid", ray=f"127.0.0.1:{port}"))
    assert not (tmp_path / "grid").exists()


def test_the_tool_refuses_a_bad_request_with_exit_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tool.main(["--data", str(tmp_path), "--models", "rnn", "--seeds", "0-1"])
    assert exit_info.value.code == 2
    assert "unknown model 'rnn'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Resuming: finished cells skipped, a killed training resumed, half-finished folders


def test_a_killed_grid_resumes_skipping_finished_cells(tiny_data, tmp_path, monkeypatch):
    cfg = _grid(tiny_data, tmp_path / "grid")
    second = cfg.out.resolve() / "runs" / "cfc-ncp-s1"
    real_loss = trainer.window_loss

    def dying_loss(*args, **kwargs):  # killed in seed 1's training, after its first save
        if (second / LAST_DIR).exists():
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(trainer, "window_loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        run_grid(cfg)
    monkeypatch.setattr(trainer, "window_loss", real_loss)
    first = cfg.out / "runs" / "cfc-ncp-s0"
    first_done = (first / DONE_FILE).read_text()
    assert not (second / DONE_FILE).exists()
    assert read_checkpoint_config(second / LAST_DIR)["training"]["step"] == 2

    summary = run_grid(cfg)
    ran = {(r.kind, r.cell): r.resumed for r in summary.results}
    assert ran == {("train", "cfc-ncp-s1"): True, ("eval", "cfc-ncp-s1"): False}
    assert summary.skipped == 2  # seed 0's training and evaluation
    assert (first / DONE_FILE).read_text() == first_done
    assert read_checkpoint_config(second / LAST_DIR)["training"]["step"] == 4
    _listed(summary, ["cfc-ncp"])
    assert (
        len(json.loads((cfg.out / "results" / SUITE / "results.json").read_text())["sources"]) == 2
    )


def test_a_finished_grid_reruns_nothing_and_lists_every_cell(tiny_data, finished, tmp_path):
    summary = run_grid(_grid(tiny_data, _copy(finished, tmp_path)))
    assert summary.results == () and summary.skipped == 4
    _listed(summary, ["cfc-ncp"])
    assert "cfc-ncp | 0, 1" in summary.format()


def test_a_training_killed_before_its_first_save_is_trained_afresh(tiny_data, finished, tmp_path):
    out = _copy(finished, tmp_path)
    run = out / "runs" / "cfc-ncp-s1"
    shutil.rmtree(run / LAST_DIR)  # best/ and metrics.jsonl without last/: nothing to resume
    (run / DONE_FILE).unlink()
    before = json.loads((out / "results" / SUITE / "cfc-ncp-s1" / "metrics.json").read_text())
    summary = run_grid(_grid(tiny_data, out))
    ran = {(r.kind, r.cell): r.resumed for r in summary.results}
    assert ran == {("train", "cfc-ncp-s1"): False, ("eval", "cfc-ncp-s1"): False}
    after = json.loads((out / "results" / SUITE / "cfc-ncp-s1" / "metrics.json").read_text())
    assert after["episodes"] == before["episodes"]  # the same deterministic training
    _listed(summary, ["cfc-ncp"])


def test_a_half_finished_evaluation_is_resumed_and_only_then_listed(tiny_data, finished, tmp_path):
    out = _copy(finished, tmp_path)
    folder = out / "results" / SUITE / "cfc-ncp-s0"
    (folder / DONE_FILE).unlink()
    (folder / "metrics.json").unlink()
    next((folder / "episodes" / "cfc-ncp-s0").rglob("*.json")).unlink()
    cfg = _grid(tiny_data, out)
    assert [(t.cell, t.suite) for t in plan_grid(cfg).evals] == [("cfc-ncp-s0", SUITE)]
    summary = run_grid(cfg)
    assert [(r.kind, r.cell) for r in summary.results] == [("eval", "cfc-ncp-s0")]
    _listed(summary, ["cfc-ncp"])


def test_folders_of_other_settings_are_refused(tiny_data, finished, tmp_path):
    out = _copy(finished, tmp_path)
    with pytest.raises(GridError, match=r"other settings \(they differ in: steps\)"):
        plan_grid(_grid(tiny_data, out, steps=6))
    with pytest.raises(RunFolderError, match="holds another evaluation run"):
        plan_grid(_grid(tiny_data, out, route_km=0.06))
    # a killed training whose stored settings differ from the request: the trainer's check
    for seed in (0, 1):
        (out / "runs" / f"cfc-ncp-s{seed}" / DONE_FILE).unlink()
    with pytest.raises(ValueError, match="--resume with settings that differ"):
        plan_grid(_grid(tiny_data, out, train=(*TRAIN, "lr=0.01")))
    assert (out / "runs" / "cfc-ncp-s1" / BEST_DIR).is_dir()


# ---------------------------------------------------------------------------------------------
# Executors: worker processes and a local Ray instance (2 models x 2 seeds)


def _check_two_by_two(summary):
    assert not summary.stopped
    assert sorted((r.kind, r.cell) for r in summary.results) == sorted(
        (kind, f"{m}-s{s}") for kind in ("train", "eval") for m in ("cfc-ncp", "lstm")
        for s in (0, 1)
    )  # fmt: skip
    _listed(summary, ["cfc-ncp", "lstm"])


@pytest.mark.slow
def test_two_worker_processes_run_a_tiny_grid(tiny_data, tmp_path):
    cfg = _grid(tiny_data, tmp_path / "grid", models=("cfc-ncp", "lstm"), steps=2, workers=2)
    _check_two_by_two(run_grid(cfg))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs the ray extra")
def test_a_local_ray_instance_runs_a_tiny_grid(tiny_data, tmp_path):
    cfg = _grid(tiny_data, tmp_path / "grid", models=("cfc-ncp", "lstm"), steps=2, ray="local")
    _check_two_by_two(run_grid(cfg))

"""The unseen-towns-weathers and speed suites, the development routes, old metrics files."""

import json
from pathlib import Path

import pytest

import sim
from driving.evaluate.compare import (
    CompareConfig,
    CompareError,
    collect_runs,
    compare,
    render_table,
    seed_table,
)
from driving.evaluate.evaluation import plan_jobs, run_record
from driving.evaluate.report import (
    EXPERT,
    EpisodeResult,
    build_document,
    load_metrics,
    render_markdown,
    write_metrics,
)
from driving.evaluate.suites import (
    BUILTIN_SUITES,
    CARLA_SUITES,
    DEV_ROUTE_SEEDS,
    EXTRA_SUITES,
    MAX_ROUTES,
    ROUTE_SEEDS,
    SUITES,
    EpisodeSpec,
    SuiteError,
    build_suite,
    suite_conditions,
)
from sim.spec import TownWeatherSplit
from tests.driving.evaluate.helpers import quick_config
from tests.driving.evaluate.test_report import _metrics

SPLIT = sim.split("builtin")


@pytest.mark.parametrize("routes", [None, 1, 2])
def test_unseen_towns_weathers_drives_every_held_out_pair(routes):
    specs = build_suite("unseen-towns-weathers", SPLIT, routes=routes)
    pairs = {(s.town, s.weather) for s in specs}
    assert pairs == {(t, w) for t in SPLIT.unseen_towns for w in SPLIT.unseen_weathers}
    assert len(specs) == len(SPLIT.unseen_towns) * max(routes or 3, len(SPLIT.unseen_weathers))


def test_speed_suite_drives_training_towns_outside_their_speed_range():
    specs = build_suite("speed", SPLIT)
    assert [c for _, c in suite_conditions(specs)] == ["0.6x slowest", "1.3x fastest"]
    assert {s.town for s in specs} == set(SPLIT.train_towns)
    assert {s.weather for s in specs} == set(SPLIT.train_weathers)
    for s in specs:
        lo, hi = SPLIT.speed_range_mps(s.town)
        slow = s.condition.endswith("slowest")
        assert s.target_speed_mps == pytest.approx(0.6 * lo if slow else 1.3 * hi)
        assert s.target_speed_mps < lo if slow else s.target_speed_mps > hi
        assert s.env_kwargs()["target_speed_mps"] == s.target_speed_mps
        assert s.to_dict()["target_speed_mps"] == s.target_speed_mps
    no_speeds = TownWeatherSplit(("t",), ("u",), ("w",), ("x",))
    with pytest.raises(SuiteError, match="speed range"):
        build_suite("speed", no_speeds)


def test_the_env_holds_the_specs_cruise_speed():
    spec = build_suite("speed", SPLIT, routes=1, route_km=0.1)[-1]
    env = sim.make_env("builtin", **spec.env_kwargs())
    try:
        _, info = env.reset(seed=spec.seed)
    finally:
        env.close()
    assert info["target_speed_mps"] == spec.target_speed_mps


def test_specs_without_a_speed_keep_their_earlier_form():
    spec = build_suite("train-towns", SPLIT)[0]
    assert "target_speed_mps" not in spec.to_dict() and "target_speed_mps" not in spec.env_kwargs()
    assert EpisodeSpec(**spec.to_dict()) == spec


def test_all_enumerates_every_builtin_suite():
    assert (*BUILTIN_SUITES, "all", *CARLA_SUITES, *EXTRA_SUITES) == SUITES
    assert {"unseen-towns-weathers", "speed"} <= set(BUILTIN_SUITES)
    everything = build_suite("all", SPLIT, routes=1, route_km=0.1)
    assert list(dict.fromkeys(s.suite for s in everything)) == list(BUILTIN_SUITES)
    for name in BUILTIN_SUITES:
        assert [s for s in everything if s.suite == name] == build_suite(
            name, SPLIT, routes=1, route_km=0.1
        )


@pytest.mark.parametrize("routes", [1, 3, 40])
def test_dev_routes_never_drive_a_test_road(routes):
    assert not set(DEV_ROUTE_SEEDS) & set(ROUTE_SEEDS)
    for name in (*BUILTIN_SUITES, *CARLA_SUITES):
        test = build_suite(name, SPLIT, routes=routes)
        dev = build_suite(name, SPLIT, routes=routes, route_set="dev")
        assert not {s.seed for s in test} & {s.seed for s in dev}
        assert [(s.suite, s.condition, s.town) for s in test] == [
            (s.suite, s.condition, s.town) for s in dev
        ]
    assert {s.seed for s in build_suite("train-towns", SPLIT, route_set="dev")} == set(
        DEV_ROUTE_SEEDS
    )
    with pytest.raises(SuiteError, match="must not meet"):
        build_suite("train-towns", SPLIT, routes=MAX_ROUTES + 1)
    with pytest.raises(SuiteError, match="route_set"):
        build_suite("train-towns", SPLIT, route_set="val")


def test_run_record_and_metrics_name_the_dev_route_set(tmp_path):
    test_cfg = quick_config(tmp_path / "t", suite="train-towns")
    dev_cfg = quick_config(tmp_path / "d", suite="train-towns", route_set="dev")
    test_jobs, _ = plan_jobs(test_cfg)
    dev_jobs, _ = plan_jobs(dev_cfg)
    assert "route_set" not in run_record(test_cfg, test_jobs)  # earlier fingerprints stay
    record = run_record(dev_cfg, dev_jobs)
    assert record["route_set"] == "dev"
    assert {e["seed"] for e in record["episodes"]} <= set(range(9001, 9001 + MAX_ROUTES))


def _write(path: Path, suite: str, route_set: str | None, model: str = "cfc-ncp-s0") -> Path:
    spec = build_suite(suite, SPLIT, routes=1, route_km=0.1)[0]
    results = [EpisodeResult(m, spec, _metrics(interventions=1, lat=0.1)) for m in (EXPERT, model)]
    models = [{"name": EXPERT, "checkpoint": None}, {"name": model, "checkpoint": "/c"}]
    kwargs = {} if route_set is None else {"route_set": route_set}
    doc = build_document(
        results, models=models, sim="builtin", mode="intervention", suite=suite, **kwargs
    )
    if route_set is None:  # as written before route sets existed
        del doc["route_set"]
    path.mkdir(parents=True, exist_ok=True)
    return write_metrics(doc, path / "metrics.json")


def test_old_metrics_without_new_suites_or_route_set_still_compare(tmp_path):
    old = _write(tmp_path / "old", "unseen-towns", None)
    new = _write(tmp_path / "new", "speed", "test", model="cfc-ncp-s1")
    assert "route_set" not in json.loads(old.read_text())
    doc = compare(CompareConfig(metrics=(old, new), out=tmp_path / "cmp"))
    assert doc["route_set"] == "test" and doc["suites"] == list(BUILTIN_SUITES)
    cfc = next(e for e in doc["models"] if e["model"] == "cfc-ncp")
    assert set(cfc["suites"]) == {"unseen-towns", "speed"}
    header = render_table(doc["models"], doc["suites"]).splitlines()[0]
    assert "| speed |" in header and "unseen-towns-weathers" in header and "(dev)" not in header


def test_dev_results_say_dev_and_never_mix_with_test_results(tmp_path):
    dev = _write(tmp_path / "dev", "train-towns", "dev")
    test = _write(tmp_path / "test", "train-towns", "test", model="cfc-ncp-s1")
    with pytest.raises(CompareError, match=r"route set 'test'.*route set 'dev'"):
        collect_runs([dev, test])
    doc = compare(CompareConfig(metrics=(dev,), out=tmp_path / "cmp", suites=("train-towns",)))
    assert doc["route_set"] == "dev"
    assert "train-towns (dev)" in (tmp_path / "cmp" / "results.md").read_text()
    table = seed_table(collect_runs([dev]), ["train-towns"])
    assert "| train-towns (dev) |" in render_table(table, ["train-towns"], "dev")
    report = render_markdown(load_metrics(dev))
    assert report.startswith("# Closed-loop evaluation (dev routes)")
    assert "not the test set" in report and "## Suite `train-towns` (dev routes)" in report
    assert "dev" not in render_markdown(load_metrics(test)).splitlines()[0]

"""Aggregation, metrics.json, the markdown report and plots, from synthetic results."""

import json
import math

import numpy as np
import pytest

from driving.evaluate.metrics import episode_metrics
from driving.evaluate.report import (
    EXPERT,
    EpisodeResult,
    ReportError,
    TrajectoryTrace,
    aggregate,
    build_document,
    load_metrics,
    metric_stats,
    results_from_document,
    summarize,
    write_metrics,
)
from driving.evaluate.report_plots import write_report
from driving.evaluate.suites import EpisodeSpec

MODELS = [{"name": EXPERT, "checkpoint": None}, {"name": "cfc", "checkpoint": "/ck/cfc"}]


def _metrics(km=1.0, interventions=0, lat=0.1, dt=0.05, speed=10.0):
    n = round(1000 * km / speed / dt) + 1
    t = np.arange(n) * dt
    flags = np.zeros(n, dtype=bool)
    flags[np.linspace(1, n - 1, interventions, dtype=int)] = True
    return episode_metrics(
        t_s=t,
        command=np.zeros(n),
        lateral_offset_m=np.full(n, lat),
        heading_error_rad=np.zeros(n),
        progress_m=speed * t,
        intervention=flags,
        route_length_m=1000 * km,
    )


def _spec(suite="train-towns", condition="clean", town="a", weather="sun", route=0):
    return EpisodeSpec(suite, condition, town, weather, route, 7001 + route, 1000.0)


def _results():
    out = []
    for route, (n_int, lat) in enumerate([(1, 0.2), (3, 0.4)]):
        rollout = "rollouts/cfc/train-towns/clean/episodes/episode_000000" if route == 0 else None
        out.append(EpisodeResult("cfc", _spec(route=route), _metrics(1.0, n_int, lat), rollout))
        out.append(EpisodeResult(EXPERT, _spec(route=route), _metrics(1.0, 0, 0.05)))
    for cond in ("noise 0.1", "noise 0.2"):
        out.append(EpisodeResult("cfc", _spec("noise", cond, town="b"), _metrics(0.5, 2, 0.5)))
        out.append(EpisodeResult(EXPERT, _spec("noise", cond, town="b"), _metrics(0.5, 0, 0.05)))
    return out


def test_metric_stats_mean_sample_std_and_nulls():
    s = metric_stats([1.0, 3.0, None])
    assert s == {"mean": 2.0, "std": pytest.approx(math.sqrt(2)), "min": 1.0, "max": 3.0, "n": 2}
    assert metric_stats([5.0])["std"] is None
    assert metric_stats([None])["mean"] is None


def test_aggregate_pools_rates_over_episodes():
    rs = [r for r in _results() if r.model == "cfc" and r.spec.suite == "train-towns"]
    a = aggregate(rs)
    assert a["n_episodes"] == 2
    assert a["distance_km"] == pytest.approx(2.0)
    assert a["interventions"] == 4
    assert a["interventions_per_km"] == pytest.approx(2.0)
    assert a["km_per_intervention"] == pytest.approx(0.5)
    lat = a["stats"]["lateral_error_mean_m"]
    assert lat["mean"] == pytest.approx(0.3)
    assert lat["std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    per_km = a["stats"]["interventions_per_km"]
    assert (per_km["mean"], per_km["min"], per_km["max"]) == pytest.approx((2.0, 1.0, 3.0))


def test_aggregate_without_interventions_has_no_distance_between_them():
    rs = [r for r in _results() if r.model == EXPERT]
    a = aggregate(rs)
    assert a["interventions"] == 0
    assert a["km_per_intervention"] is None
    assert a["stats"]["km_per_intervention"]["n"] == 0
    with pytest.raises(ReportError, match="empty"):
        aggregate([])


def test_summary_groups_by_suite_condition_town_weather():
    rows = summarize(_results())
    keys = [(r["model"], r["suite"], r["group"], r["key"]) for r in rows]
    assert keys[0] == ("cfc", "train-towns", "suite", None)
    assert ("cfc", "noise", "condition", "noise 0.2") in keys
    assert (EXPERT, "noise", "town", "b") in keys
    assert (EXPERT, "train-towns", "weather", "sun") in keys
    noise = next(
        r for r in rows if r["model"] == "cfc" and r["suite"] == "noise" and r["group"] == "suite"
    )
    assert noise["n_episodes"] == 2
    assert noise["interventions_per_km"] == pytest.approx(4.0)


def test_metrics_json_round_trip_and_errors(tmp_path):
    results = _results()
    doc = build_document(results, models=MODELS, sim="builtin", mode="intervention", suite="all")
    path = write_metrics(doc, tmp_path / "metrics.json")
    loaded = load_metrics(path)
    assert loaded == json.loads(json.dumps(doc))
    assert results_from_document(loaded) == results

    with pytest.raises(ReportError, match="not in"):
        build_document(results, models=MODELS[:1], sim="builtin", mode="intervention", suite="x")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ReportError, match=r"bad\.json: not valid JSON"):
        load_metrics(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"format": "something"}')
    with pytest.raises(ReportError, match="not a liquid-drive-eval"):
        load_metrics(tmp_path / "other.json")
    with pytest.raises(ReportError, match="no such"):
        load_metrics(tmp_path / "missing.json")


def test_report_has_tables_and_plots(tmp_path):
    results = _results()
    doc = build_document(results, models=MODELS, sim="builtin", mode="intervention", suite="all")
    s = np.linspace(0, 2 * np.pi, 200)
    traces = [
        TrajectoryTrace(
            r.model,
            r.spec,
            100 * np.cos(s),
            100 * np.sin(s) + (r.model == "cfc"),
            departures_xy_m=np.array([[0.0, 100.0], [-100.0, 0.0]] if r.model == "cfc" else []),
        )
        for r in results
    ]
    report = write_report(doc, tmp_path, traces)
    text = report.read_text()
    assert "## Overview: interventions per km" in text
    assert "| cfc | 2.00 | 4.00 |" in text  # train-towns 4 / 2 km, noise 4 / 1 km
    assert "| **expert** | clean | 2 | 2.00 | 0 | 0.00 | none in 2.00 km |" in text
    assert "noise 0.2" in text
    assert (
        "| cfc | train-towns | clean | a | sun | 0 | 1 | `rollouts/cfc/train-towns/clean/" in text
    )
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == [
        "bars_noise.png",
        "bars_train-towns.png",
        "trajectories_noise_noise-0.1.png",
        "trajectories_noise_noise-0.2.png",
        "trajectories_train-towns_clean.png",
    ]
    for png in pngs:
        assert f"![{png}]({png})" in text
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

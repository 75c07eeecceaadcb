"""driving/evaluate/conditions.py and its table in compare: a suite's conditions over seeds."""

from pathlib import Path

import pytest

from driving.evaluate.compare import CompareConfig, compare
from driving.evaluate.conditions import render_conditions, suite_conditions
from driving.evaluate.evidence import StatsConfig
from driving.evaluate.report import EXPERT, EpisodeResult, build_document, write_metrics
from driving.evaluate.suites import EpisodeSpec
from tests.driving.evaluate.test_report import _metrics

RATES = {"10 Hz": 10.0, "20 Hz": 20.0}


def _rate_evaluation(path: Path, models: dict[str, dict[str, list[tuple[int, float]]]]) -> Path:
    """A ``rate`` metrics.json: per model and condition, (interventions, lateral offset m) of
    each 1 km episode; the expert drives every episode at 0.01 m."""
    expert = {c: [(0, 0.01)] * len(next(iter(models.values()))[c]) for c in RATES}
    results = []
    for name, conditions in {EXPERT: expert, **models}.items():
        for condition, episodes in conditions.items():
            for route, (n_int, lat) in enumerate(episodes):
                spec = EpisodeSpec(
                    "rate", condition, "suburb", "clear_noon", route, 7001 + route, 1000.0,
                    control_rate_hz=RATES[condition],
                )  # fmt: skip
                results.append(EpisodeResult(name, spec, _metrics(interventions=n_int, lat=lat)))
    names = [{"name": EXPERT, "checkpoint": None}] + [
        {"name": n, "checkpoint": f"/runs/{n}"} for n in models
    ]
    doc = build_document(results, models=names, sim="builtin", mode="intervention", suite="rate")
    path.mkdir(parents=True, exist_ok=True)
    return write_metrics(doc, path / "metrics.json")


def _records(condition: str, episodes: list[tuple[int, float]]) -> list[dict]:
    return [
        {"spec": {"condition": condition}, "metrics": _metrics(interventions=n, lat=lat).to_dict()}
        for n, lat in episodes
    ]


def test_each_condition_gets_its_own_mean_over_seeds():
    seed0 = _records("10 Hz", [(1, 0.2), (0, 0.4)]) + _records("20 Hz", [(0, 0.1)] * 2)
    seed1 = _records("10 Hz", [(0, 0.4), (0, 0.4)]) + _records("20 Hz", [(0, 0.3)] * 2)
    table = suite_conditions({"cfc-ncp": [seed0, seed1]})
    assert table["conditions"] == ["10 Hz", "20 Hz"]
    ten, twenty = table["models"]["cfc-ncp"]["10 Hz"], table["models"]["cfc-ncp"]["20 Hz"]
    assert ten["lateral_error_rms_m"]["values"] == pytest.approx([0.3, 0.4])
    assert ten["lateral_error_rms_m"]["mean"] == pytest.approx(0.35)
    assert twenty["lateral_error_rms_m"]["mean"] == pytest.approx(0.2)
    km = seed0[0]["metrics"]["distance_km"]
    assert ten["interventions_per_km"]["values"] == pytest.approx([1 / (2 * km), 0.0])
    assert "ci" not in ten["lateral_error_rms_m"]  # no stats asked for
    one = suite_conditions({"cfc-ncp": [_records("clean", [(0, 0.1)])]})
    assert one is None  # a single condition is the main table's cell already


def test_the_bootstrap_interval_brackets_the_mean_and_the_table_shows_it():
    seeds = [
        _records("10 Hz", [(0, 0.2 + 0.1 * s)] * 2) + _records("20 Hz", [(0, 0.1)] * 2)
        for s in range(3)
    ]
    table = suite_conditions({"gru": seeds}, StatsConfig(resamples=400))
    lat = table["models"]["gru"]["10 Hz"]["lateral_error_rms_m"]
    assert lat["ci"][0] <= lat["mean"] <= lat["ci"][1]
    assert lat["ci"][0] >= 0.2 - 1e-9 and lat["ci"][1] <= 0.4 + 1e-9
    lines = render_conditions({"rate": table}, " (dev routes)")
    assert "Per condition, rate (dev routes)" in "\n".join(lines)
    assert "| model | 10 Hz | 20 Hz |" in lines
    row = next(line for line in lines if line.startswith("| gru |"))
    assert f"**0.00** / 0.300 [{lat['ci'][0]:.3f}, {lat['ci'][1]:.3f}]" in row


def test_compare_writes_the_per_condition_table_for_a_suite_of_several_conditions(tmp_path):
    a = _rate_evaluation(
        tmp_path / "a",
        {
            "cfc-ncp-s0": {"10 Hz": [(0, 0.2)] * 2, "20 Hz": [(0, 0.02)] * 2},
            "cfc-ncp-s1": {"10 Hz": [(0, 0.4)] * 2, "20 Hz": [(0, 0.02)] * 2},
        },
    )
    doc = compare(
        CompareConfig(
            metrics=(a,), out=tmp_path / "out", suites=("rate",), stats=StatsConfig(resamples=200)
        )
    )
    cells = doc["conditions"]["rate"]["models"]
    assert set(cells) == {EXPERT, "cfc-ncp"}
    assert cells["cfc-ncp"]["10 Hz"]["lateral_error_rms_m"]["mean"] == pytest.approx(0.3)
    assert cells["cfc-ncp"]["20 Hz"]["lateral_error_rms_m"]["mean"] == pytest.approx(0.02)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| model | 10 Hz | 20 Hz |" in md
    assert "| cfc-ncp | **0.00** / 0.300 [" in md

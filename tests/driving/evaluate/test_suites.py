"""Evaluation suites: towns, weathers, routes and conditions as plain data."""

import pytest

import sim
from driving.evaluate.suites import (
    BUILTIN_SUITES,
    CARLA_SUITES,
    NOISE_STDS,
    ROUTE_SEEDS,
    SuiteError,
    build_suite,
    suite_conditions,
)
from sim.spec import ContractError, TownWeatherSplit

SPEEDS = (("t1", 8.0, 12.0), ("t2", 15.0, 20.0), ("u1", 5.0, 6.0))
SPLIT = TownWeatherSplit(
    ("t1", "t2"), ("u1",), ("w1", "w2", "w3"), ("x1", "x2"), town_speeds_mps=SPEEDS
)


def test_suites_cover_towns_weathers_and_three_two_km_routes():
    specs = build_suite("train-towns", SPLIT)
    assert {s.town for s in specs} == {"t1", "t2"}
    assert {s.weather for s in specs} == {"w1", "w2", "w3"}
    assert all(s.route_length_m == 2000.0 for s in specs)
    for town in ("t1", "t2"):
        assert sorted(s.seed for s in specs if s.town == town) == list(ROUTE_SEEDS)
    unseen = build_suite("unseen-towns", SPLIT)
    assert {s.town for s in unseen} == {"u1"}
    assert {s.weather for s in unseen} == {"w1", "w2", "w3"}
    weathers = build_suite("unseen-weathers", SPLIT)
    assert {s.town for s in weathers} == {"t1", "t2"}
    assert {s.weather for s in weathers} == {"x1", "x2"}


def test_noise_and_rate_conditions():
    noise = build_suite("noise", SPLIT)
    assert sorted({s.image_noise_std for s in noise}) == list(NOISE_STDS)
    assert [c for _, c in suite_conditions(noise)] == ["noise 0.05", "noise 0.1", "noise 0.2"]
    assert noise[0].env_kwargs()["image_noise_std"] == 0.05
    rate = build_suite("rate", SPLIT)
    assert [c for _, c in suite_conditions(rate)] == ["10 Hz", "20 Hz", "30 Hz", "20 Hz jitter 0.5"]
    assert {(s.control_rate_hz, s.frame_time_jitter) for s in rate} == {
        (10.0, 0.0),
        (20.0, 0.0),
        (30.0, 0.0),
        (20.0, 0.5),
    }
    clean = build_suite("train-towns", SPLIT)[0].env_kwargs()
    assert clean == {"town": "t1", "weather": "w1", "route_length_m": 2000.0}


def test_all_is_the_builtin_suites_in_order_and_overrides_shorten_it():
    everything = build_suite("all", SPLIT, routes=1, route_km=0.1)
    assert list(dict.fromkeys(s.suite for s in everything)) == list(BUILTIN_SUITES)
    assert all(s.route_length_m == pytest.approx(100.0) for s in everything)
    # one route per town, but enough routes for every weather to be driven: ceil(3 / 2) = 2
    short = build_suite("train-towns", SPLIT, routes=1)
    assert [(s.town, s.weather, s.seed) for s in short] == [
        ("t1", "w1", 7001),
        ("t1", "w2", 7002),
        ("t2", "w3", 7001),
        ("t2", "w1", 7002),
    ]
    assert len(build_suite("unseen-towns", SPLIT, routes=1)) == 3


def test_carla_suites_use_carla_split_without_a_builtin_split():
    for name in CARLA_SUITES:
        specs = build_suite(name)
        assert specs and all(s.suite == name for s in specs)
    assert {s.town for s in build_suite("carla-new-town-weather")} == {"Town02"}
    assert {s.weather for s in build_suite("carla-train")} == {
        "ClearNoon",
        "WetNoon",
        "HardRainNoon",
        "ClearSunset",
    }
    assert {s.town for s in build_suite("carla-new-weather")} == {"Town01"}


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("nope", SPLIT), {}, "unknown suite 'nope'"),
        (("train-towns",), {}, "needs the builtin"),
        (("train-towns", SPLIT), {"routes": 0}, "routes must be >= 1"),
        (("train-towns", SPLIT), {"route_km": -1.0}, "route_km must be positive"),
    ],
)
def test_bad_suite_requests_are_clear_errors(args, kwargs, match):
    with pytest.raises(SuiteError, match=match):
        build_suite(*args, **kwargs)


def test_split_must_not_overlap():
    with pytest.raises(ContractError, match="overlap"):
        TownWeatherSplit(("a",), ("a",), ("w",), ("x",))


def test_carla_suites_drive_the_carla_backends_conditions():
    from sim.carla import suites as carla_suites

    for name in CARLA_SUITES:
        pairs = {(s.town, s.weather) for s in build_suite(name)}
        assert pairs == set(carla_suites.suite_conditions(name))


def test_builtin_suites_from_the_simulators_split():
    split = sim.split("builtin")
    specs = build_suite("unseen-towns", split)
    assert {s.town for s in specs} == set(split.unseen_towns)
    assert {s.weather for s in specs} == set(split.train_weathers)

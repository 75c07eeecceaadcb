"""Evaluation suites and the evaluate tool."""

import numpy as np
import pytest

from driving.evaluate.suites import (
    BUILTIN_SUITES,
    CARLA_SUITES,
    NOISE_STDS,
    ROUTE_SEEDS,
    SuiteError,
    TownWeatherSplit,
    build_suite,
    suite_conditions,
)

SPLIT = TownWeatherSplit(("t1", "t2"), ("u1",), ("w1", "w2", "w3"), ("x1", "x2"))


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
    with pytest.raises(SuiteError, match="overlap"):
        TownWeatherSplit(("a",), ("a",), ("w",), ("x",))


def test_carla_split_matches_the_carla_backend():
    from driving.evaluate.suites import CARLA_SPLIT
    from sim.carla import suites as carla_suites

    assert CARLA_SPLIT.train_towns == carla_suites.TRAIN_TOWNS
    assert CARLA_SPLIT.unseen_towns == carla_suites.UNSEEN_TOWNS
    assert CARLA_SPLIT.train_weathers == carla_suites.TRAIN_WEATHERS
    assert CARLA_SPLIT.unseen_weathers == carla_suites.UNSEEN_WEATHERS
    for name in CARLA_SUITES:
        pairs = {(s.town, s.weather) for s in build_suite(name)}
        assert pairs == set(carla_suites.suite_conditions(name))


# ---------------------------------------------------------------------------------------------
# The evaluate tool


def _quick(tmp_path, **overrides):
    from tools.evaluate import EvalConfig

    kwargs = dict(routes=1, route_km=0.1, out=tmp_path / "eval", rollouts="none", plots=False)
    kwargs.update(overrides)
    return EvalConfig(**kwargs)


def test_expert_has_no_interventions_on_every_builtin_suite(tmp_path):
    from driving.evaluate.report import load_metrics
    from tools.evaluate import evaluate

    doc = load_metrics(evaluate(_quick(tmp_path, suite="all", route_km=0.05)))
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
    from tools.evaluate import EvalError

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

    from tools.evaluate import model_names

    paths = [Path("a/cfc"), Path("b/cfc"), Path("c/expert"), Path("lstm/best"), Path("gru/last")]
    assert model_names(paths) == ["cfc", "cfc-2", "expert-2", "lstm", "gru-last"]


@pytest.fixture(scope="module")
def untrained_cfc(tmp_path_factory):
    """An untrained cfc-ncp checkpoint (weights from a fixed seed)."""
    import torch

    from driving.model.checkpoint import save_checkpoint
    from driving.model.policy import PolicyConfig, SteeringPolicy

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ck") / "cfc-ncp"
    return save_checkpoint(folder, SteeringPolicy(PolicyConfig(core="cfc-ncp")))


def test_policy_rollouts_neurons_report_and_process_pool(tmp_path, untrained_cfc):
    from driving.data import episodes as ep
    from driving.evaluate.metrics import metrics_from_columns
    from driving.evaluate.report import load_metrics
    from tools.evaluate import evaluate, plan_jobs, run_job

    cfg = _quick(
        tmp_path,
        suite="unseen-weathers",
        route_km=0.05,
        checkpoint=(untrained_cfc,),
        rollouts="first",
        plots=True,
        workers=2,
    )
    doc = load_metrics(evaluate(cfg))
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


def test_termination_mode_ends_at_the_departure(tmp_path, untrained_cfc):
    from driving.evaluate.report import load_metrics
    from tools.evaluate import evaluate

    doc = load_metrics(
        evaluate(
            _quick(
                tmp_path,
                suite="unseen-weathers",
                route_km=0.3,
                checkpoint=(untrained_cfc,),
                mode="termination",
            )
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


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("ray") is None, reason="needs the ray extra"
)
def test_ray_tasks_on_a_local_instance(tmp_path):
    from driving.evaluate.report import load_metrics
    from tools.evaluate import evaluate, plan_jobs, run_job

    cfg = _quick(tmp_path, suite="unseen-weathers", route_km=0.05, ray="local")
    doc = load_metrics(evaluate(cfg))
    assert len(doc["episodes"]) == 3
    here = run_job(plan_jobs(cfg)[0][0])
    assert here.result.metrics.to_dict() == pytest.approx(doc["episodes"][0]["metrics"])

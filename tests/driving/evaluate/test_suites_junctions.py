"""The junctions suite on a fake split, the refusal of command-less checkpoints, compare."""

import dataclasses
import json
from types import SimpleNamespace

import pytest

import sim
from driving.evaluate.commands import CommandInputError, check_command_inputs, command_input
from driving.evaluate.compare import CompareConfig, compare
from driving.evaluate.report import EXPERT, build_document, write_metrics
from driving.evaluate.suites import (
    DEV_ROUTE_SEEDS,
    EXTRA_SUITES,
    JUNCTION_CONDITIONS,
    ROUTE_SEEDS,
    SuiteError,
    build_suite,
)
from tests.driving.evaluate.helpers import quick_config, untrained_cfc
from tests.driving.evaluate.test_junction_metrics import _results

REAL_SPLIT = sim.split("builtin")
SPLIT = dataclasses.replace(
    REAL_SPLIT, junction_train_towns=("village", "farmland"), junction_unseen_towns=("old_town",)
)
_JUNCTION_TOWNS = (*REAL_SPLIT.junction_train_towns, *REAL_SPLIT.junction_unseen_towns)
LANE_ONLY = dataclasses.replace(
    REAL_SPLIT,
    junction_train_towns=(),
    junction_unseen_towns=(),
    town_speeds_mps=tuple(e for e in REAL_SPLIT.town_speeds_mps if e[0] not in _JUNCTION_TOWNS),
)


@pytest.fixture
def fake_split(monkeypatch):
    real = sim.split
    monkeypatch.setattr(sim, "split", lambda name: SPLIT if name == "builtin" else real(name))


def test_the_suite_drives_seen_and_held_out_junction_towns_on_the_fixed_seeds():
    specs = build_suite("junctions", SPLIT)
    by_condition = {c: [s for s in specs if s.condition == c] for c in JUNCTION_CONDITIONS}
    assert [s.town for s in by_condition["train towns"]] == ["village"] * 3 + ["farmland"] * 3
    # one held-out town drives a route per training weather (so each weather is driven)
    unseen = by_condition["unseen towns"]
    assert {s.town for s in unseen} == {"old_town"}
    assert len(unseen) == max(len(ROUTE_SEEDS), len(SPLIT.train_weathers))
    assert {s.weather for s in unseen} == set(SPLIT.train_weathers)
    assert [s.seed for s in unseen] == [ROUTE_SEEDS[0] + r for r in range(len(unseen))]
    assert {s.seed for s in by_condition["train towns"]} == set(ROUTE_SEEDS)
    assert {s.suite for s in specs} == {"junctions"}
    dev = build_suite("junctions", SPLIT, routes=2, route_km=0.5, route_set="dev")
    train = [s for s in dev if s.condition == "train towns"]
    assert [s.seed for s in train] == [*DEV_ROUTE_SEEDS[:2]] * 2
    assert min(s.seed for s in dev) == DEV_ROUTE_SEEDS[0]
    assert {s.route_length_m for s in dev} == {500.0}


def test_the_suite_is_not_part_of_all_and_needs_junction_towns():
    assert "junctions" in EXTRA_SUITES
    assert all(s.suite != "junctions" for s in build_suite("all", SPLIT, routes=1))
    with pytest.raises(SuiteError, match=r"needs junction towns.*CARLA"):
        build_suite("junctions", LANE_ONLY)


def test_a_checkpoint_without_command_input_is_refused_on_junction_towns(fake_split, tmp_path):
    from driving.evaluate.evaluation import check_inputs, plan_jobs

    ck = untrained_cfc(tmp_path / "ck")
    cfg = quick_config(tmp_path / "out", checkpoint=(ck,), suite="junctions")
    # refused before the probe env is built (the builtin sim of this branch lacks these towns)
    with pytest.raises(CommandInputError) as e:
        check_inputs(plan_jobs(cfg)[0])
    message = str(e.value)
    assert str(ck.resolve()) in message
    assert "village, farmland, old_town" in message
    assert "--model.command-input embed" in message
    assert not (tmp_path / "out").exists()


def test_the_cli_says_error_and_writes_nothing(fake_split, tmp_path, capsys):
    from tools.evaluate import main

    ck = untrained_cfc(tmp_path / "ck")
    argv = ["--checkpoint", str(ck), "--suite", "junctions", "--out", str(tmp_path / "out")]
    assert main([*argv, "--routes", "1", "--route-km", "0.1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no command input" in err
    assert not (tmp_path / "out").exists()


def test_lane_keeping_towns_and_command_inputs_are_allowed():
    old = SimpleNamespace()  # a config from before command_input existed
    assert command_input(old) == "none"
    check_command_inputs([("ck", old)], SPLIT.train_towns, SPLIT, "train-towns")
    embed = SimpleNamespace(command_input="embed")
    check_command_inputs([("ck", embed)], ("village", "old_town"), SPLIT, "junctions")
    with pytest.raises(CommandInputError, match="old_town"):
        check_command_inputs([("ck", embed), ("ck2", old)], ("old_town",), SPLIT, "junctions")


def test_compare_adds_junction_success_columns(tmp_path):
    paths = []
    for seed in (0, 1):
        results = [
            dataclasses.replace(r, model=f"cmd-s{seed}") if r.model != EXPERT else r
            for r in _results()
        ]
        models = [
            {"name": EXPERT, "checkpoint": None},
            {"name": f"cmd-s{seed}", "checkpoint": None},
        ]
        doc = build_document(results, models=models, sim="builtin", mode="intervention", suite="j")
        paths.append(write_metrics(doc, tmp_path / f"m{seed}.json"))
    out = compare(CompareConfig(metrics=tuple(paths), out=tmp_path / "cmp", suites=("junctions",)))
    cmd = next(m for m in out["models"] if m["model"] == "cmd")
    j = cmd["suites"]["junctions"]["junctions"]
    assert j["all"] == {"n": 8, "succeeded": 6, "success_rate": 0.75}
    assert j["right"] == {"n": 4, "succeeded": 2, "success_rate": 0.5}
    assert j["seed_success_rates"] == [0.75, 0.75]
    md = (tmp_path / "cmp" / "results.md").read_text()
    assert "| expert | - | 100 % (4/4) | 100 % (2/2) | 100 % (2/2) | – |" in md
    assert "| cmd | 0, 1 | 75 % (6/8) | 100 % (4/4) | 50 % (2/4) | – |" in md
    assert json.loads((tmp_path / "cmp" / "results.json").read_text())["models"][0]["suites"]

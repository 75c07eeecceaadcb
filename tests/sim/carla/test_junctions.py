"""Route planning, junction commands and the expert on real OpenDRIVE junctions.

The network (``junctions_xodr.py``) has an X junction and a T junction; the real wheel's
offline ``carla.Map`` parses it, and the stand-in server serves it. Skipped when the real
``carla`` wheel is not installed.
"""

from __future__ import annotations

import collections
import importlib
import sys

import numpy as np
import pytest

import sim
from sim import spec
from sim.carla.planner import LaneGraph, RoutePlanError, RouteRequest, plan_route, turn_command
from tests.sim.carla import standin
from tests.sim.carla.checks import assert_clean
from tests.sim.carla.junctions_xodr import junctions_xodr

C = spec.Command
X, T = 1000, 2000


@pytest.fixture(scope="module")
def real_carla():
    try:
        return importlib.import_module("carla")
    except ImportError:
        pytest.skip("the real carla wheel is not installed")


@pytest.fixture(scope="module")
def cmap(real_carla):
    return real_carla.Map("test_junctions", junctions_xodr())


@pytest.fixture(scope="module")
def graph(cmap):
    return LaneGraph(cmap)


def _plan(graph, start, length_m, seed):
    request = RouteRequest(length_m, "test_junctions", seed)
    return plan_route(graph, start, request, np.random.default_rng(seed))


def _turns(route):
    return tuple((j.junction_id, j.command) for j in route.junctions)


def test_turn_command_thresholds():
    assert turn_command(0.0, 0.3) == C.STRAIGHT
    assert turn_command(0.0, 1.5) == C.LEFT
    assert turn_command(3.0, 3.0 - 1.5) == C.RIGHT
    assert turn_command(3.1, -3.1) == C.STRAIGHT  # wraps through +-pi


def test_planner_takes_every_branch_with_its_command(cmap, graph):
    eastbound = cmap.get_waypoint_xodr(1, -1, 20.0)  # 80 m before the X junction
    seen = collections.Counter(_turns(_plan(graph, eastbound, 250.0, s)) for s in range(12))
    # 250 m is only reachable straight on at X (its other arms end 100 m after it), then
    # left (north) or right (south) at T.
    assert set(seen) == {((X, C.STRAIGHT), (T, C.LEFT)), ((X, C.STRAIGHT), (T, C.RIGHT))}
    short = {_turns(_plan(graph, eastbound, 150.0, s)) for s in range(12)}
    assert short == {((X, C.LEFT),), ((X, C.RIGHT),), ((X, C.STRAIGHT),)}
    southbound = cmap.get_waypoint_xodr(5, 1, 50.0)  # road 5 towards T from the north
    from_north = {_turns(_plan(graph, southbound, 120.0, s)) for s in range(12)}
    assert from_north == {((T, C.STRAIGHT),), ((T, C.RIGHT),)}


def test_route_is_reproducible_per_seed_and_ends_outside_a_junction(cmap, graph):
    start = cmap.get_waypoint_xodr(1, -1, 20.0)
    a, b = _plan(graph, start, 150.0, 7), _plan(graph, start, 150.0, 7)
    assert np.array_equal(a.x, b.x) and a.commands == b.commands
    assert not a.junction[-1] and a.length_m >= 150.0 - 1.0


def test_junction_extent_and_command_window(cmap, graph):
    start = cmap.get_waypoint_xodr(1, -1, 20.0)
    route = next(
        r for r in (_plan(graph, start, 150.0, s) for s in range(12)) if r.commands == (C.RIGHT,)
    )
    (j,) = route.junctions
    assert j.entry_s_m == pytest.approx(80.0, abs=0.05)  # the X junction's box starts 80 m on
    # The right turn's lane: a quarter circle of radius 10 - 1.75 m.
    assert j.exit_s_m - j.entry_s_m == pytest.approx(8.25 * np.pi / 2, rel=0.02)
    lead = spec.COMMAND_LEAD_M
    assert route.command_at(j.entry_s_m - lead - 0.01) == (-1, C.FOLLOW_LANE)
    assert route.command_at(j.entry_s_m - lead + 0.01) == (0, C.RIGHT)
    assert route.command_at(j.exit_s_m - 0.01) == (0, C.RIGHT)
    assert route.command_at(j.exit_s_m + 0.01) == (-1, C.FOLLOW_LANE)


def test_unplannable_routes_are_clear_errors(cmap, graph):
    start = cmap.get_waypoint_xodr(1, -1, 20.0)
    with pytest.raises(RoutePlanError, match=r"test_junctions, seed 3.*reaches 400 m"):
        _plan(graph, start, 400.0, 3)
    near_end = cmap.get_waypoint_xodr(4, -1, 90.0)  # northbound, 10 m before road 4 ends
    with pytest.raises(RoutePlanError, match=r"seed 5.*dead-ends after 10 m"):
        _plan(graph, near_end, 50.0, 5)


@pytest.fixture
def junction_server(real_carla, monkeypatch):
    monkeypatch.setitem(sys.modules, "carla", standin)
    real = standin.RealMap(real_carla, "test_junctions", junctions_xodr(), spawn_at=[(1, -1, 20.0)])
    srv = standin.Server(port=23100, town="test_junctions", real_map=real)
    yield srv
    srv.stop()


def _drive(env, seed):
    expert = sim.make_expert(env)
    obs, info = env.reset(seed=seed)
    rows = [(info[spec.INFO_PROGRESS_M], int(obs[spec.COMMAND][0]), info[spec.INFO_JUNCTION])]
    commands, offsets, state, done = info[spec.RESET_INFO_ROUTE_COMMANDS], [], expert.reset(), False
    while not done:
        action, state = expert.act(obs, state)
        obs, _, term, trunc, info = env.step(action)
        assert not term, info
        done = trunc
        rows.append(
            (info[spec.INFO_PROGRESS_M], int(obs[spec.COMMAND][0]), info[spec.INFO_JUNCTION])
        )
        offsets.append(abs(info[spec.INFO_LATERAL_OFFSET_M]))
    return commands, np.array(rows), max(offsets), env.route


def test_env_commands_and_expert_through_the_junctions(junction_server):
    srv = junction_server
    kw = {"port": srv.port, "town": "test_junctions", "timeout_s": 2.0, "settle_time_s": 0.2}
    seen = set()
    with sim.make_env("carla", **kw, route_length_m=210.0, target_speed_mps=6.0) as env:
        for seed in range(4):
            commands, rows, max_offset, route = _drive(env, seed)
            seen.add(commands)
            assert (
                len(commands) == 2 and commands[0] == C.STRAIGHT
            )  # 210 m: straight at X, through T
            # The expert stays in its lane through both turns.
            assert max_offset < 0.6, (commands, max_offset)  # measured: 0.36-0.44 m
            start_s = route.s[0]
            for k, j in enumerate(route.junctions[: len(commands)]):
                active = rows[rows[:, 2] == k]
                # On from 20 m before the entry (within one step) until the exit.
                step = 6.0 * 0.05 + 1e-6
                assert active[0, 0] == pytest.approx(j.entry_s_m - start_s - 20.0, abs=step)
                assert active[-1, 0] == pytest.approx(j.exit_s_m - start_s, abs=step)
                assert set(active[:, 1]) == {int(commands[k])}
            assert set(rows[rows[:, 2] == -1, 1]) == {int(C.FOLLOW_LANE)}
    assert {c[1] for c in seen} <= {C.LEFT, C.RIGHT} and len(seen) == 2
    assert_clean(srv)


def test_env_refuses_a_spawn_point_without_a_route(junction_server):
    srv = junction_server
    srv.real_map.spawn_at = [(4, -1, 90.0)]
    kw = {"port": srv.port, "town": "test_junctions", "timeout_s": 2.0, "settle_time_s": 0.2}
    env = sim.make_env("carla", **kw, route_length_m=100.0)
    with pytest.raises(RoutePlanError, match=r"test_junctions.*seed 1.*dead-ends"):
        env.reset(seed=1)
    env.close()
    assert_clean(srv)

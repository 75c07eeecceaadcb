"""Junction towns: networks, the route planner, commands, speed at turns, props, the expert."""

import hashlib
import math
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim
from sim import spec
from sim.builtin.env import BuiltinDrivingEnv, EnvConfigError
from sim.builtin.network import (
    EAST,
    NORTH,
    SOUTH,
    WEST,
    JunctionLayout,
    NetworkNode,
    RoadNetwork,
    RoutePlanningError,
)
from sim.builtin.route_plan import build_route, plan_route, stub_clearance_m
from sim.builtin.towns import JUNCTION_TOWNS, get_town

SEEDS = (0, 1, 2)


def _route(town: str, seed: int, length_m: float = 1500.0):
    env = BuiltinDrivingEnv(town=town, route_length_m=length_m)
    env.reset(seed=seed)
    return env


def test_same_town_and_seed_give_the_same_route_and_frames():
    def run() -> tuple[str, tuple]:
        env = _route("village", 5, 600.0)
        obs, info = env.reset(seed=5)
        digest = hashlib.sha256(obs[spec.IMAGE].tobytes())
        expert = env.make_expert()
        for _ in range(200):
            obs, *_ = env.step(expert.act(obs, None)[0])
            digest.update(obs[spec.IMAGE].tobytes())
        return digest.hexdigest(), info[spec.RESET_INFO_ROUTE_COMMANDS]

    assert run() == run()
    a = build_route(get_town("farmland").junctions, 1000.0, 3.4, np.random.default_rng([7, 1]))
    b = build_route(get_town("farmland").junctions, 1000.0, 3.4, np.random.default_rng([7, 1]))
    assert np.array_equal(a.road.curvature, b.road.curvature) and a.junctions == b.junctions
    assert a.arms == b.arms


@pytest.mark.parametrize("town", JUNCTION_TOWNS)
def test_turns_are_curvature_continuous_quarter_turns_inside_the_box(town):
    layout = get_town(town).junctions
    for seed in SEEDS:
        route = _route(town, seed).route
        k = route.road.curvature
        # no jump: the steepest clothoid changes curvature by (1/R_min) / L_min per metre
        sharpest = 1.0 / (layout.turn_radius_m[0] * layout.clothoid_m[0]) * 1.3
        assert np.max(np.abs(np.diff(k))) / 0.5 <= sharpest
        assert route.junctions and stub_clearance_m(route) >= layout.clearance_m
        for j in route.junctions:
            h_in = route.road.locate_scalar(j.entry_s_m)[2]
            h_out = route.road.locate_scalar(j.exit_s_m)[2]
            turn = {spec.Command.LEFT: 90.0, spec.Command.RIGHT: -90.0}.get(j.command, 0.0)
            assert math.degrees(h_out - h_in) == pytest.approx(turn, abs=1e-6)
            assert math.remainder(j.branch_rad - h_out, math.tau) == pytest.approx(0, abs=1e-6)
            # the route's markings stop at the box: no curvature before the entry
            assert k[int(j.entry_s_m / 0.5)] == 0.0 and k[int(j.exit_s_m / 0.5)] == 0.0
            x, y, _ = route.road.locate_scalar(j.exit_s_m)
            assert math.hypot(x - j.centre_m[0], y - j.centre_m[1]) == pytest.approx(
                j.box_half_m, abs=0.05
            )


def test_commands_switch_at_the_lead_distance_and_back_at_the_exit():
    env = _route("old_town", 2)
    route, eps = env.route, 1e-6
    for j in env.junctions:
        start = j.entry_s_m - spec.COMMAND_LEAD_M
        assert route.junction_at(start - eps) == -1
        assert route.junction_at(start) == j.index
        assert route.command_at(j.exit_s_m - eps) == j.command
        assert route.junction_at(j.exit_s_m) == -1
        assert route.command_at(j.exit_s_m) == spec.Command.FOLLOW_LANE


def test_observation_command_info_junction_and_route_commands_agree():
    env = BuiltinDrivingEnv(town="farmland", route_length_m=900.0)
    obs, info = env.reset(seed=3)
    commands = info[spec.RESET_INFO_ROUTE_COMMANDS]
    assert commands and all(c in (1, 2, 3) for c in commands)
    assert commands == tuple(int(j.command) for j in env.junctions)
    assert info[spec.INFO_JUNCTION] == -1 and obs[spec.COMMAND][0] == 0
    expert, seen = env.make_expert(), set()
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert.act(obs, None)[0])
        done = terminated or truncated
        j = info[spec.INFO_JUNCTION]
        expected = commands[j] if j >= 0 else 0
        assert obs[spec.COMMAND].dtype == np.int64 and obs[spec.COMMAND][0] == expected
        assert j == env.route.junction_at(env._s)
        seen.add(j)
    assert seen == {-1, *range(len(commands))}


def test_lane_keeping_towns_have_no_commands():
    env = BuiltinDrivingEnv(town="suburb", route_length_m=100.0)
    obs, info = env.reset(seed=0)
    assert info[spec.RESET_INFO_ROUTE_COMMANDS] == () and info[spec.INFO_JUNCTION] == -1
    assert env.route is None and env.junctions == () and obs[spec.COMMAND][0] == 0


def _node(*arms: int) -> NetworkNode:
    return NetworkNode(frozenset(arms))


def test_planner_refuses_a_dead_end_and_a_disconnected_network():
    dead_end = RoadNetwork(
        nodes=(_node(EAST, NORTH, WEST, SOUTH), _node(WEST, NORTH, EAST)),
        links=((0, EAST, 1, 150.0),),
    )
    rng = np.random.default_rng(0)
    with pytest.raises(RoutePlanningError, match="dead end at node 1"):
        plan_route(dead_end, 1000.0, rng)
    assert plan_route(dead_end, 100.0, rng)[0].command == spec.Command.STRAIGHT
    with pytest.raises(RoutePlanningError, match="disconnected network: nodes \\[2\\]"):
        RoadNetwork(
            nodes=(_node(EAST, WEST, SOUTH), _node(WEST, NORTH, EAST), _node(EAST, WEST, NORTH)),
            links=((0, EAST, 1, 150.0),),
        )
    with pytest.raises(RoutePlanningError, match="an arm a node does not have"):
        RoadNetwork(
            nodes=(_node(EAST, WEST, SOUTH), _node(EAST, NORTH, SOUTH)),
            links=((0, EAST, 1, 150.0),),
        )
    assert issubclass(RoutePlanningError, spec.SimConfigError)
    with pytest.raises(spec.SimConfigError, match="spacing_m"):
        JunctionLayout(spacing_m=(50.0, 80.0))


@pytest.mark.parametrize("town", JUNCTION_TOWNS)
def test_no_props_stand_in_a_junction_or_on_an_arm(town):
    env = _route(town, 4)
    props, route = env.props, env.route
    outer = route.road.lane_width_m + 0.3 + get_town(town).theme.shoulder_width_m
    assert len(props) > 50
    for arm in route.arms:
        c, s = math.cos(arm.heading_rad), math.sin(arm.heading_rad)
        dx, dy = props.x - arm.x_m, props.y - arm.y_m
        along, across = c * dx + s * dy, np.abs(-s * dx + c * dy)
        on = (along > 0) & (along < arm.length_m) & (across < outer + 0.5 * props.width)
        assert not on.any()
    for j in route.junctions:
        d = np.hypot(props.x - j.centre_m[0], props.y - j.centre_m[1])
        assert d.min() > j.box_half_m


def test_speed_at_turns_respects_the_lateral_acceleration_limit():
    env = BuiltinDrivingEnv(town="village", route_length_m=1200.0, target_speed_mps=14.0)
    obs, info = env.reset(seed=1)
    limit = get_town("village").junctions.a_lat_max_mps2
    expert, worst, slowest = env.make_expert(), 0.0, 99.0
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert.act(obs, None)[0])
        done = terminated or truncated
        v = env.vehicle.state.speed_mps
        worst = max(worst, v * v * abs(info[spec.INFO_ROAD_CURVATURE]))
        slowest = min(slowest, v)
        assert info[spec.INFO_TARGET_SPEED_MPS] == 14.0
    assert worst <= limit * 1.05  # the proportional cruise control lags by a few per cent
    assert slowest < 0.5 * 14.0  # it did slow down for the turns


@pytest.mark.slow
def test_expert_keeps_its_lane_over_10_km_of_junction_routes(capsys):
    driven, worst_lat, worst_acc, junctions = 0.0, 0.0, 0.0, 0
    for town in JUNCTION_TOWNS:
        for seed in (11, 12):
            env = BuiltinDrivingEnv(town=town, route_length_m=1700.0)
            obs, info = env.reset(seed=seed)
            junctions += len(info[spec.RESET_INFO_ROUTE_COMMANDS])
            half = info[spec.INFO_LANE_HALF_WIDTH_M]
            expert, done = env.make_expert(), False
            while not done:
                obs, _, terminated, truncated, info = env.step(expert.act(obs, None)[0])
                done = terminated or truncated
                assert not terminated
                worst_lat = max(worst_lat, abs(info[spec.INFO_LATERAL_OFFSET_M]))
                v = env.vehicle.state.speed_mps
                worst_acc = max(worst_acc, v * v * abs(env.vehicle.curvature_per_m))
            driven += info[spec.INFO_PROGRESS_M]
    with capsys.disabled():
        print(
            f"\nexpert over {driven / 1000:.2f} km, {junctions} junctions: max |lateral offset| "
            f"{worst_lat:.3f} m, max lateral acceleration {worst_acc:.2f} m/s^2"
        )
    assert driven >= 10_000.0 and worst_lat < 0.5 * half


def test_check_env_passes_on_a_junction_town():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gymnasium.make(sim.BUILTIN_ENV_ID, town="old_town", route_length_m=200.0)
        check_env(env.unwrapped)
    env.close()


def test_randomize_refuses_junction_towns():
    with pytest.raises(EnvConfigError, match="junction towns"):
        BuiltinDrivingEnv(town="village", randomize=True)

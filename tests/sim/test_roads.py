import math

import numpy as np
import pytest

from sim.builtin.env import BuiltinDrivingEnv
from sim.builtin.roads import DS_M, Road, RoadLayout, curvature_profile, generate_road
from sim.builtin.towns import TOWNS, TRAIN_TOWNS, UNSEEN_TOWNS, get_town, place_props


@pytest.mark.parametrize("town", TOWNS)
def test_roads_of_every_town_are_curvature_continuous_bounded_and_long(town):
    t = get_town(town)
    road = generate_road(t.layout, 2200.0, 3.5, np.random.default_rng(0))
    assert road.length_m >= 2200.0
    k = road.curvature
    assert np.abs(k).max() <= t.layout.max_curvature_per_m + 1e-12
    # continuous curvature: a bounded slope (clothoid sharpness), no jumps
    assert np.abs(np.diff(k)).max() <= t.layout.max_sharpness_per_m2 * DS_M * 1.01 + 1e-9
    # heading bounded -> x strictly increasing -> the road never crosses itself
    assert np.abs(road.heading).max() <= t.layout.max_heading_rad + 0.05
    assert np.all(np.diff(road.x) > 0)
    # heading is the integral of curvature, positions follow the heading
    dx, dy = np.diff(road.x), np.diff(road.y)
    np.testing.assert_allclose(np.hypot(dx, dy), DS_M, rtol=1e-9)


def test_tight_town_reaches_about_one_over_25m():
    t = get_town("mountain_pass")
    k = curvature_profile(t.layout, 3000.0, np.random.default_rng(1))
    assert np.abs(k).max() > 1 / 30


def test_same_town_and_seed_give_the_same_road_and_other_seeds_differ():
    def road(seed, town="suburb"):
        env = BuiltinDrivingEnv(town=town, route_length_m=2000.0)
        env.reset(seed=seed)
        return env.road

    a, b, c = road(5), road(5), road(6)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.lane_width_m == b.lane_width_m
    assert not np.array_equal(a.curvature[: c.curvature.size], c.curvature[: a.curvature.size])
    assert 3.0 <= a.lane_width_m <= 3.75


def test_projection_recovers_arc_length_and_offset_on_a_circle():
    kappa = 1.0 / 40.0
    road = Road(np.full(400, kappa), lane_width_m=3.5)
    hint = 0
    for s_true in np.linspace(5.0, 190.0, 20):
        for off in (-2.0, 0.0, 1.5):
            x, y, _ = road.locate(s_true, off)
            i, s, lat, heading, k = road.project(x, y, hint)
            assert s == pytest.approx(s_true, abs=0.02)
            assert lat == pytest.approx(off, abs=1e-3)
            assert heading == pytest.approx(s_true * kappa, abs=1e-3)
            assert k == pytest.approx(kappa)
        hint = i
    # the road is an exact circle of radius 40 about (0, 40)
    np.testing.assert_allclose(np.hypot(road.x, road.y - 40.0), 40.0, atol=1e-3)


def test_town_split():
    assert len(TOWNS) >= 6 and len(TRAIN_TOWNS) == 3 and len(UNSEEN_TOWNS) == 3
    assert set(TRAIN_TOWNS).isdisjoint(UNSEEN_TOWNS)


def test_bad_layout_is_an_error():
    with pytest.raises(ValueError, match="max_heading_rad"):
        RoadLayout(max_heading_rad=math.pi)


@pytest.mark.parametrize("town", TOWNS)
def test_roadside_objects_stand_clear_of_the_whole_road(town):
    t = get_town(town)
    road = generate_road(t.layout, 1500.0, 3.4, np.random.default_rng(3))
    props = place_props(road, t, (3,))
    assert len(props) > 50
    assert np.all(np.diff(props.s) >= 0)
    edge = road.lane_width_m + 0.3 + t.theme.shoulder_width_m
    d = np.sqrt(
        ((props.x[:, None] - road.x[None, :]) ** 2 + (props.y[:, None] - road.y[None, :]) ** 2).min(
            axis=1
        )
    )
    assert np.all(d >= edge + 0.5 * props.width - 0.1)


def test_a_longer_route_of_the_same_seed_has_the_same_road_and_props_where_they_overlap():
    def world(length):
        env = BuiltinDrivingEnv(town="suburb", route_length_m=length)
        env.reset(seed=9)
        return env.road, env.props

    (ra, pa), (rb, pb) = world(600.0), world(1500.0)
    n = ra.num_samples - 400  # the end of the shorter road ramps down differently
    np.testing.assert_array_equal(ra.x[:n], rb.x[:n])
    np.testing.assert_array_equal(ra.y[:n], rb.y[:n])
    near_a = pa.s < 400.0
    near_b = pb.s < 400.0
    np.testing.assert_array_equal(pa.x[near_a], pb.x[near_b])
    np.testing.assert_array_equal(pa.colour[near_a], pb.colour[near_b])

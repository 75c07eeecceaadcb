"""Domain randomisation of the builtin world: off = unchanged, draws, held-out values, camera."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import sim
from sim import spec
from sim.builtin.env import BuiltinDrivingEnv, EnvConfigError
from sim.builtin.randomize import (
    GROUPS,
    DomainRandomization,
    RandomizationError,
    car_limit_radius_m,
    draw_world,
    training_ranges,
)
from sim.builtin.towns import TRAIN_TOWNS, UNSEEN_TOWNS, get_town
from sim.builtin.vehicle import VehicleParams
from sim.builtin.weather import TRAIN_WEATHERS, UNSEEN_WEATHERS, get_weather

FAST = {"route_length_m": 60.0, "supersample": 1}


def _first_frames(n: int = 3, **kwargs) -> tuple[np.ndarray, dict]:
    env = BuiltinDrivingEnv(town="suburb", weather="sunset", **FAST, **kwargs)
    obs, info = env.reset(seed=11)
    images = [obs[spec.IMAGE]]
    for _ in range(n):
        obs, *_rest, info = env.step(np.array([0.0], np.float32))
        images.append(obs[spec.IMAGE])
    env.close()
    return np.stack(images), info


def test_off_is_unchanged_and_reports_no_factors():
    base, _ = _first_frames()
    off, _ = _first_frames(randomize=None, camera_offset=spec.CameraOffset())
    assert np.array_equal(base, off)
    env = BuiltinDrivingEnv(**FAST)
    _, info = env.reset(seed=3)
    assert spec.RESET_INFO_WORLD_FACTORS not in info
    assert spec.RESET_INFO_WORLD_FACTORS not in spec.ALL_INFO_KEYS


def test_on_changes_the_world_and_keeps_the_env_rng_untouched():
    base, base_info = _first_frames()
    only_looks = DomainRandomization(weather=False, geometry=False, camera=False)
    rnd, rnd_info = _first_frames(randomize=only_looks)
    assert not np.array_equal(base, rnd)
    # the env's own per-episode draws (target speed) and the road are the same
    assert rnd_info[spec.INFO_TARGET_SPEED_MPS] == base_info[spec.INFO_TARGET_SPEED_MPS]
    assert rnd_info[spec.INFO_POSE] == base_info[spec.INFO_POSE]


def test_draws_are_deterministic_per_seed_and_json_plain():
    cfg = DomainRandomization()
    a = draw_world(cfg, "countryside", "overcast", 5)
    b = draw_world(cfg, "countryside", "overcast", 5)
    c = draw_world(cfg, "countryside", "overcast", 6)
    assert a.factors == b.factors and a.town == b.town and a.weather == b.weather
    assert a.factors != c.factors
    assert json.loads(json.dumps(a.factors)) == a.factors
    assert a.factors["groups"] == list(GROUPS)


def test_a_group_switched_off_leaves_the_other_groups_draws_alone():
    full = draw_world(DomainRandomization(), "highway", "clear_noon", 9).factors
    part = draw_world(DomainRandomization(weather=False), "highway", "clear_noon", 9).factors
    assert "weather" not in part and part["groups"] == ["appearance", "geometry", "camera"]
    for group in ("appearance", "geometry", "camera"):
        assert part[group] == full[group]
    off = draw_world(DomainRandomization(geometry=False), "highway", "clear_noon", 9)
    assert off.town.layout == get_town("highway").layout


@pytest.mark.parametrize("seed", range(40))
def test_factors_stay_within_their_ranges(seed):
    cfg = DomainRandomization()
    town, weather = TRAIN_TOWNS[seed % 3], TRAIN_WEATHERS[seed % 4]
    d = draw_world(cfg, town, weather, seed)
    f = d.factors
    g = f["geometry"]
    assert cfg.min_bend_radius_m[0] <= g["min_bend_radius_m"] <= cfg.min_bend_radius_m[1]
    assert cfg.lane_width_m[0] <= g["lane_width_m"] <= cfg.lane_width_m[1]
    assert d.town.layout.max_curvature_per_m == pytest.approx(1 / g["min_bend_radius_m"])
    cap = math.sqrt(cfg.max_lateral_accel_mps2 * g["min_bend_radius_m"])
    assert d.town.speed_range_mps[1] <= cap + 1e-9
    assert cfg.fog_per_m[0] <= f["weather"]["fog_per_m"] <= cfg.fog_per_m[1]
    assert f["weather"]["rain"] <= cfg.rain[1]
    assert cfg.exposure[0] <= f["weather"]["exposure"] <= cfg.exposure[1]
    assert cfg.marking_opacity[0] <= f["appearance"]["marking_opacity"] <= 1.0
    ground = np.asarray(f["appearance"]["ground_rgb"])
    base = np.asarray(get_town(town).theme.ground)
    assert np.all(np.abs(ground - base) <= cfg.ground_jitter_rgb + 0.5)
    for name, limit in (("pitch_deg", 1.5), ("yaw_deg", 1.5), ("height_m", 0.08)):
        assert abs(f["camera"][name]) <= limit
    assert {p.kind for p in d.town.theme.props} <= {"tree", "pole", "lamp", "sign", "house"}
    assert not d.weather.headlights


def test_held_out_presets_are_never_a_starting_point():
    for town in UNSEEN_TOWNS:
        with pytest.raises(RandomizationError, match="training presets only"):
            draw_world(DomainRandomization(), town, "clear_noon", 1)
    for weather in UNSEEN_WEATHERS:
        with pytest.raises(RandomizationError, match="training presets only"):
            draw_world(DomainRandomization(), "suburb", weather, 1)
    with pytest.raises(RandomizationError, match="training presets only"):
        BuiltinDrivingEnv(town="desert", randomize=True)


def _town_outside(name: str, r: dict) -> list[str]:
    """The factor values of a held-out town that no training draw can produce."""
    th = get_town(name).theme
    out = []
    if not any(
        all(lo <= v <= hi for v, lo, hi in zip(th.ground, box_lo, box_hi, strict=True))
        for box_lo, box_hi in r["ground_boxes"]
    ):
        out.append("ground colour")
    if {p.kind for p in th.props} - set(r["prop_kinds"]):
        out.append("prop kinds")
    if th.markings.opacity < r["marking_opacity"][0]:
        out.append("faded paint")
    b = th.backdrop
    if b is not None and (
        b.height_deg > r["backdrop_height_deg"][1] or b.cap_colour is not None or b.flat_tops > 0
    ):
        out.append("skyline")
    return out


def _weather_outside(name: str, r: dict) -> list[str]:
    w = get_weather(name)
    out = []
    if min(w.light) < r["light_min"] or w.headlights:
        out.append("darkness")
    if w.haze_per_m > r["fog_per_m"][1]:
        out.append("fog")
    if w.rain > r["rain"][1] or w.wet > r["wet"][1]:
        out.append("rain")
    return out


def test_every_held_out_preset_keeps_factor_values_never_drawn_in_training():
    r = training_ranges(DomainRandomization())
    towns = {t: _town_outside(t, r) for t in UNSEEN_TOWNS}
    weathers = {w: _weather_outside(w, r) for w in UNSEEN_WEATHERS}
    assert all(towns.values()), towns
    assert all(weathers.values()), weathers
    assert "ground colour" in towns["mountain_pass"] and "prop kinds" in towns["desert"]
    assert weathers["night"] == ["darkness"] and "fog" in weathers["fog"]
    # the check can fail: the training presets themselves are inside every range
    assert not any(_town_outside(t, r) for t in TRAIN_TOWNS)
    assert not any(_weather_outside(w, r) for w in TRAIN_WEATHERS)
    wide = training_ranges(DomainRandomization(fog_per_m=(0.0, 0.05)))
    assert "fog" not in _weather_outside("fog", wide)


def test_the_drawn_ground_never_falls_in_a_held_out_towns_colour():
    cfg = DomainRandomization()
    for seed in range(60):
        d = draw_world(cfg, TRAIN_TOWNS[seed % 3], "overcast", seed)
        for name in UNSEEN_TOWNS:
            assert d.town.theme.ground != get_town(name).theme.ground


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("fog_per_m", (0.02, 0.01), "lo <= hi"),
        ("min_bend_radius_m", (6.0, 100.0), "car's limit"),
        ("lane_width_m", (1.5, 3.0), "lane_width_m"),
        ("marking_opacity", (0.5, 1.2), "marking_opacity"),
        ("camera_yaw_deg", -1.0, "camera_yaw_deg"),
        ("exposure", "bright", r"\(lo, hi\)"),
    ],
)
def test_bad_ranges_are_refused_naming_the_field(field, value, match):
    with pytest.raises(RandomizationError, match=match):
        DomainRandomization(**{field: value})


def test_the_env_checks_the_bend_radius_against_its_own_car_and_refuses_unknown_options():
    slow = VehicleParams(max_steer_rad=0.2)  # a 13.3 m turning radius
    assert car_limit_radius_m(slow, 4.0) > 10.0
    with pytest.raises(EnvConfigError, match="car's limit"):
        BuiltinDrivingEnv(randomize=True, vehicle=slow)
    with pytest.raises(RandomizationError, match="unknown randomize option"):
        BuiltinDrivingEnv(randomize={"colour": True})
    with pytest.raises(EnvConfigError, match="camera_offset"):
        BuiltinDrivingEnv(camera_offset=(1.0, 0.0, 0.0))
    with pytest.raises(spec.ContractError, match="yaw_deg"):
        spec.CameraOffset(yaw_deg=45.0)


def test_the_reset_info_carries_the_drawn_factors():
    env = sim.make_env(
        "builtin", town="highway", weather="wet_road", randomize={"camera": False}, **FAST
    )
    _, info = env.reset(seed=4)
    factors = info[spec.RESET_INFO_WORLD_FACTORS]
    assert (
        factors == draw_world(DomainRandomization(camera=False), "highway", "wet_road", 4).factors
    )
    assert info[spec.INFO_TOWN] == "highway" and info[spec.INFO_WEATHER] == "wet_road"
    assert 2 * info[spec.INFO_LANE_HALF_WIDTH_M] == pytest.approx(
        factors["geometry"]["lane_width_m"]
    )
    _, info = env.reset(seed=5)
    assert info[spec.RESET_INFO_WORLD_FACTORS] != factors
    env.close()


def _best_shift(a: np.ndarray, b: np.ndarray, rows: slice, axis: int) -> int:
    """The pixel shift of ``b`` against ``a`` (along ``axis``) that matches them best."""
    x, y = a[rows].astype(np.float64), b[rows].astype(np.float64)
    m = 15

    def err(d: int) -> float:
        if axis == 1:
            return float(np.abs(x[:, m:-m] - y[:, m + d : y.shape[1] - m + d]).mean())
        return float(np.abs(x[m:-m] - y[m + d : y.shape[0] - m + d]).mean())

    return min(range(-m, m + 1), key=err)


def test_the_camera_offset_moves_the_image_as_expected():
    def frame(**offset: float) -> np.ndarray:
        env = BuiltinDrivingEnv(
            town="highway", weather="overcast", camera_offset=spec.CameraOffset(**offset), **FAST
        )
        obs, _ = env.reset(seed=2)
        env.close()
        return obs[spec.IMAGE]

    base = frame()
    f_px = spec.CameraSpec().focal_px
    expected = f_px * math.tan(math.radians(3.0))  # about 7.5 px
    # yawing the camera left moves the vanishing point (the far road) right, and vice versa
    far = slice(18, 40)
    assert abs(_best_shift(base, frame(yaw_deg=3.0), far, 1) - expected) <= 2
    assert abs(_best_shift(base, frame(yaw_deg=-3.0), far, 1) + expected) <= 2
    # pitching down moves the horizon up (the image content moves up)
    shift = _best_shift(base, frame(pitch_deg=3.0), slice(None), 0)
    assert abs(shift + expected) <= 2
    # a higher camera sees the near road smaller: the near ground changes, the sky hardly
    change = np.abs(frame(height_m=0.15).astype(np.float64) - base).mean(axis=(1, 2))
    assert change[50:].mean() > 1.0
    assert change[:18].mean() < change[50:].mean() / 3


def test_camera_jitter_and_offset_add_up():
    env = BuiltinDrivingEnv(camera_offset=spec.CameraOffset(1.0, -2.0, 0.1), **FAST)
    env.reset(seed=1)
    cam = env._renderer.cam
    assert cam.pitch == pytest.approx(math.radians(env.config.camera.pitch_deg + 1.0))
    assert cam.yaw == pytest.approx(math.radians(-2.0))
    assert cam.h == pytest.approx(env.config.camera.mount_height_m + 0.1)


def test_a_randomized_episode_is_drivable_by_the_expert():
    env = BuiltinDrivingEnv(
        town="countryside",
        weather="clear_noon",
        randomize=DomainRandomization(min_bend_radius_m=(10.0, 12.0)),
        route_length_m=150.0,
        supersample=1,
        intervention_mode=True,
    )
    obs, info = env.reset(seed=8)
    expert = env.make_expert()
    done, interventions = False, 0
    while not done:
        action, _ = expert.act(obs, None)
        obs, _r, term, trunc, info = env.step(action)
        interventions += info[spec.INFO_INTERVENTION]
        done = term or trunc
    assert interventions == 0
    assert dataclasses.asdict(env.config)["randomize"]["min_bend_radius_m"] == (10.0, 12.0)

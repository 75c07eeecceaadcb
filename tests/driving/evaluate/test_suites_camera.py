"""The camera and randomized suites: conditions, env options, unchanged fingerprints."""

import pytest

import sim
from driving.evaluate.run_folder import slug
from driving.evaluate.suites import BUILTIN_SUITES, CAMERA_SHIFTS, EpisodeSpec, build_suite
from sim.spec import RESET_INFO_WORLD_FACTORS, CameraOffset, TownWeatherSplit

SPLIT = TownWeatherSplit(("t1", "t2"), ("u1",), ("w1", "w2", "w3"), ("x1", "x2"))


def test_camera_suite_shifts_pitch_yaw_and_height_beyond_the_randomisation_range():
    specs = build_suite("camera", SPLIT, routes=1)
    conditions = list(dict.fromkeys(s.condition for s in specs))
    assert conditions == [
        "pitch down 3 deg",
        "pitch up 3 deg",
        "yaw left 3 deg",
        "yaw right 3 deg",
        "height up 0.15 m",
        "height down 0.15 m",
    ]
    assert len({slug(c) for c in conditions}) == len(conditions)  # distinct run folders
    assert {s.town for s in specs} == {"t1", "t2"} and {s.weather for s in specs} <= {
        "w1",
        "w2",
        "w3",
    }
    kwargs = specs[0].env_kwargs()
    assert kwargs["camera_offset"] == CameraOffset(pitch_deg=3.0)
    assert specs[-1].env_kwargs()["camera_offset"] == CameraOffset(height_m=-0.15)
    # beyond the training draw's range (sim.builtin.randomize defaults)
    from sim.builtin.randomize import DomainRandomization

    r = DomainRandomization()
    limits = {"pitch": r.camera_pitch_deg, "yaw": r.camera_yaw_deg, "height": r.camera_height_m}
    assert all(abs(v) > limits[what] for what, v in CAMERA_SHIFTS)


def test_randomized_suite_and_all():
    specs = build_suite("randomized", SPLIT, routes=1)
    assert all(s.randomize and s.env_kwargs()["randomize"] is True for s in specs)
    assert {s.town for s in specs} == {"t1", "t2"}
    assert BUILTIN_SUITES[-2:] == ("camera", "randomized")


def test_other_suites_keep_their_spec_dicts_and_old_dicts_load():
    spec = build_suite("train-towns", SPLIT, routes=1)[0]
    d = spec.to_dict()
    assert not {"camera_pitch_deg", "camera_yaw_deg", "camera_height_m", "randomize"} & set(d)
    assert "camera_offset" not in spec.env_kwargs() and "randomize" not in spec.env_kwargs()
    assert EpisodeSpec(**d) == spec
    shifted = build_suite("camera", SPLIT, routes=1)[0]
    assert EpisodeSpec(**shifted.to_dict()) == shifted


@pytest.mark.parametrize("name", ["camera", "randomized"])
def test_the_builtin_env_accepts_the_suites_options(name):
    spec = build_suite(name, sim.split("builtin"), routes=1, route_km=0.02)[0]
    env = sim.make_env("builtin", **spec.env_kwargs(), supersample=1)
    obs, info = env.reset(seed=spec.seed)
    assert obs["image"].shape == (78, 200, 3)
    assert (RESET_INFO_WORLD_FACTORS in info) == (name == "randomized")
    env.close()

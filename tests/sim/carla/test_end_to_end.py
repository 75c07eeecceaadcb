"""The CARLA code path end to end on the stand-in, with frames from the builtin renderer."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from driving.data import episodes as ep
from driving.rollout.episode import run_episode
from sim.carla import SUITES, suite_conditions
from sim.wrappers import NoiseInjection
from tests.sim.carla import standin


@pytest.fixture
def builtin_server(fake_carla):
    srv = standin.Server(port=22000, render="builtin", late_image_every=4)
    yield srv
    srv.stop()


def make(server, **kw):
    return sim.make_env(
        "carla", port=server.port, timeout_s=2.0, settle_time_s=0.2, target_speed_mps=8.0, **kw
    )


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_expert_completes_every_condition_of_the_carla_suites(builtin_server, suite):
    for k, (town, weather) in enumerate(suite_conditions(suite)):
        with make(builtin_server, town=town, weather=weather, route_length_m=40.0) as env:
            log = run_episode(env, sim.make_expert(env), seed=k)
        assert (log.town, log.weather) == (town, weather)
        assert log.outcome == "route_complete", log.summary()
        assert log.distance_m >= 40.0 and log.collisions == 0
        lateral = log.columns[ep.LATERAL_OFFSET_M]
        assert np.abs(lateral).max() < 0.5  # pure pursuit holds the lane centre
        assert builtin_server.live_actors() == [] and not builtin_server.settings.synchronous_mode


def test_record_with_noise_injection_in_the_dataset_format(builtin_server, tmp_path):
    camera = sim.spec.CameraSpec()
    info = ep.DatasetInfo(sim="carla", camera=camera.to_dict(), control_rate_hz=20.0)
    ep.create_or_open_dataset(tmp_path, info)
    with make(builtin_server, town="Town01", weather="WetNoon", route_length_m=60.0) as env:
        noisy = NoiseInjection(env, share=0.6, amplitude_per_m=0.03, seed=0)
        expert = sim.make_expert(noisy)
        for seed in (0, 1):
            with ep.EpisodeWriter(tmp_path, {"town": "Town01", "seed": seed}, fsync=False) as w:
                log = run_episode(noisy, expert, seed=seed, writer=w)
            assert log.outcome == "route_complete", log.summary()
    paths = ep.list_episodes(tmp_path)
    assert len(paths) == 2
    episode = ep.read_episode(paths[0])
    cols = episode.columns
    assert len(episode) > 100
    noise = cols[ep.NOISE_ACTIVE]
    assert noise.any() and not noise.all()
    # While noise is active the car executes a different command than the clean label.
    gap = np.abs(cols[ep.CURVATURE_APPLIED] - cols[ep.CURVATURE_EXPERT])
    assert gap[noise].max() > 1e-3 and gap[~noise].max() < 1e-4
    frame = episode.frame(len(episode) // 2)
    assert frame.shape == (camera.height_px, camera.width_px, 3) and frame.std() > 10
    assert np.all(np.diff(cols[ep.T_S]) == pytest.approx(0.05))

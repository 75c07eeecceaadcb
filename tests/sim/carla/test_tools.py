"""``tools/record.py --sim carla`` and ``tools/evaluate.py --sim carla`` on the stand-in."""

from __future__ import annotations

import json

import pytest

from driving import episodes as ep
from tests.sim.carla import standin


@pytest.fixture
def localhost_server(fake_carla):
    srv = standin.Server(host="localhost", port=25000, render="builtin")
    yield srv
    srv.stop()


def test_record_then_evaluate_through_the_carla_backend(localhost_server, tmp_path):
    from tools.evaluate import EvalConfig, evaluate
    from tools.record import RecordConfig, record

    srv = localhost_server
    rec = RecordConfig(out=tmp_path / "data", sim="carla", host="localhost", port=srv.port,
                       towns=("Town01",), weathers=("HardRainNoon",), episodes=2,
                       episode_s=4.0, progress=False)  # fmt: skip
    summary = record(rec)
    assert summary.episodes == 2 and summary.noise_steps > 0
    assert ep.read_info(tmp_path / "data").sim == "carla"
    episode = ep.read_episode(ep.list_episodes(tmp_path / "data")[0])
    assert episode.meta["town"] == "Town01" and len(episode) >= 70
    assert srv.live_actors() == [] and not srv.settings.synchronous_mode

    ev = EvalConfig(
        suite="carla-new-weather", sim="carla", host="localhost", port=srv.port, routes=1,
        route_km=0.05, plots=False, rollouts="none", out=tmp_path / "eval",
    )  # fmt: skip
    metrics = json.loads((evaluate(ev)).read_text())
    runs = metrics["episodes"]
    assert {r["spec"]["weather"] for r in runs} == {"WetSunset", "SoftRainSunset"}
    assert all(r["metrics"]["route_completion"] == 1.0 for r in runs)
    assert all(r["metrics"]["interventions"] == 0 for r in runs)
    assert srv.live_actors() == [] and not srv.settings.synchronous_mode

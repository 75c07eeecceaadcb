"""Record -> train -> evaluate with ``--sim carla`` on the stand-in server."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from driving.data import episodes as ep
from tests.sim.carla import standin


@pytest.fixture
def localhost_server(fake_carla):
    srv = standin.Server(host="localhost", port=25000, render="builtin")
    yield srv
    srv.stop()


def test_record_train_evaluate_through_the_carla_backend(localhost_server, tmp_path):
    from driving.evaluate.evaluation import EvalConfig, evaluate
    from driving.rollout.record import RecordConfig, record

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

    # A few training steps: this checks the plumbing, not the driving skill.
    torch = pytest.importorskip("torch")
    from driving.train.trainer import TrainConfig, train
    from perception.augment import AugmentConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tcfg = TrainConfig(
            data=(tmp_path / "data",), out=tmp_path / "run", steps=4, batch_size=4,
            window_steps=8, stride_steps=8, warmup_steps=1, val_fraction=0.0, val_every=4,
            save_every=4, log_every=2, augment=AugmentConfig(enabled=False), tensorboard=False,
            threads=1, device="cpu",
        )  # fmt: skip
        checkpoint = train(tcfg)
    finally:
        torch.set_num_threads(threads)

    ev = EvalConfig(
        checkpoint=(checkpoint,), suite="carla-new-weather", sim="carla", host="localhost",
        port=srv.port, routes=1, route_km=0.05, plots=False, rollouts="first",
        out=tmp_path / "eval",
    )  # fmt: skip
    metrics = json.loads(evaluate(ev).metrics_path.read_text())
    runs = metrics["episodes"]
    models = {r["model"] for r in runs}
    assert len(models) == 2 and "expert" in models
    assert {r["spec"]["weather"] for r in runs} == {"WetSunset", "SoftRainSunset"}
    expert = [r for r in runs if r["model"] == "expert"]
    assert all(r["metrics"]["route_completion"] == 1.0 for r in expert)
    assert all(r["metrics"]["interventions"] == 0 for r in expert)
    policy = [r for r in runs if r["model"] != "expert"]
    assert len(policy) == 2 and all(r["metrics"]["steps"] > 0 for r in policy)
    assert any(r["rollout"] for r in policy)  # the policy's rollout, with neuron states
    assert srv.live_actors() == [] and not srv.settings.synchronous_mode


def test_carla_check_passes_on_the_standin_and_writes_a_calibration(fake_carla, tmp_path, capsys):
    from sim.carla.calibration import load_calibration
    from sim.carla.connection import CarlaVersionWarning
    from tools import carla_check

    srv = standin.Server(host="localhost", port=25100)
    try:
        out = tmp_path / "cal.json"
        argv = ["--host", "localhost", "--port", str(srv.port), "--route-length-m", "120",
                "--sync-steps", "20", "--calibration-out", str(out)]  # fmt: skip
        status = carla_check.main(argv)
        table = capsys.readouterr().out
        assert status == 0, table
        assert table.count("| pass |") == 6 and "FAIL" not in table
        cal = load_calibration(out)
        # The stand-in is a kinematic car: curvature = tan(steer * 70 deg * lock) / 2.875 m.
        lock = float(np.interp(4.0 * 3.6, *zip(*standin.STEERING_CURVE, strict=True)))
        expect = math.tan(0.1 * math.radians(70.0) * lock) / 2.875
        assert cal.curvature_for(-0.1, 4.0) == pytest.approx(expect, rel=0.05)
        assert srv.live_actors() == [] and not srv.settings.synchronous_mode
        srv.version = "0.9.15"
        with pytest.warns(CarlaVersionWarning):
            assert carla_check.main(argv) == 1
        assert "| versions | FAIL |" in capsys.readouterr().out
    finally:
        srv.stop()


def test_a_bad_calibration_file_is_a_clear_error(tmp_path):
    from sim.carla.calibration import from_points, load_calibration
    from sim.carla.connection import CarlaConfigError

    good = from_points("v", "0.9.16", [(5.0, -0.1, 0.04), (5.0, 0.1, -0.04)])
    path = good.save(tmp_path / "cal.json")
    assert load_calibration(path).steer_for(0.02, 5.0) == pytest.approx(-0.05)
    data = json.loads(path.read_text())
    data["points"][1]["curvature_per_m"] = 0.05  # not decreasing with steer
    path.write_text(json.dumps(data))
    with pytest.raises(CarlaConfigError, match=r"cal.json: calibration at 5 m/s"):
        load_calibration(path)
    with pytest.raises(CarlaConfigError, match="cannot read"):
        load_calibration(tmp_path / "missing.json")

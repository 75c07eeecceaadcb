"""Recording at a drawn control rate per episode and with jittered frame intervals."""

import numpy as np
import pytest

import sim
from driving.data import episodes as ep
from driving.data.windows import WindowConfig, WindowDataset
from driving.rollout.record import RecordConfig, RecordError, plan, record
from sim import spec

SMALL = {"towns": ("countryside",), "weathers": ("clear_noon",), "episode_s": 2.0}


def test_each_episode_gets_its_own_rate_and_jittered_frames(tmp_path):
    cfg = RecordConfig(
        out=tmp_path / "d",
        episodes=3,
        control_rate_range_hz=(10.0, 30.0),
        frame_time_jitter=0.3,
        progress=False,
        **SMALL,
    )
    record(cfg)
    episodes = ep.load_episodes(cfg.out)
    assert ep.read_info(cfg.out).control_rate_hz == 20.0  # the nominal rate stays
    rates = [e.meta["control_rate_hz"] for e in episodes]
    assert all(10.0 <= r <= 30.0 for r in rates) and len(set(rates)) == 3
    windows = WindowDataset(episodes, WindowConfig(window_steps=4, stride_steps=4))
    for k, e in enumerate(episodes):
        assert e.meta["frame_time_jitter"] == 0.3
        assert e.meta["control_rate_range_hz"] == [10.0, 30.0]
        t = e.columns[ep.T_S]
        dt = np.diff(t)
        nominal = 1.0 / e.meta["control_rate_hz"]
        assert dt.min() >= 0.7 * nominal - 1e-9 and dt.max() <= 1.3 * nominal + 1e-9
        assert dt.std() > 0.05 * nominal  # really jittered, not a constant step
        assert t[-1] == pytest.approx(2.0, abs=2 * nominal)  # episode_s stays in seconds
        # the training windows hand the cores the recorded elapsed times
        items = [windows[i] for i in range(len(windows)) if int(windows.index[i][0]) == k]
        for item in items[1:]:
            s = int(item["start"])
            np.testing.assert_allclose(item["dt_s"].numpy(), dt[s - 1 : s + 3], rtol=1e-6)


def test_without_the_options_the_plan_and_the_metadata_are_unchanged(tmp_path):
    base = RecordConfig(out=tmp_path / "a", **SMALL)
    varied = RecordConfig(out=tmp_path / "b", control_rate_range_hz=(10.0, 30.0), **SMALL)
    a, b = plan(base, 0), plan(varied, 0)
    for _ in range(5):
        ja, jb = next(a), next(b)
        assert ja.control_rate_hz is None and jb.control_rate_hz is not None
        # the rate has a stream of its own: seeds and offsets are the same draws
        assert (ja.seed, ja.start_offset_m, ja.start_heading_rad) == (
            jb.seed,
            jb.start_offset_m,
            jb.start_heading_rad,
        )
    record(RecordConfig(out=tmp_path / "d", episodes=1, progress=False, **SMALL))
    (e,) = ep.load_episodes(tmp_path / "d")
    assert not {"control_rate_hz", "frame_time_jitter", "control_rate_range_hz"} & set(e.meta)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"control_rate_range_hz": (0.5, 20.0)}, r"\(0\.5, 20\.0\).*accepts \[1, 1000\] Hz"),
        ({"control_rate_range_hz": (20.0, 5000.0)}, r"5000\.0"),
        ({"control_rate_range_hz": (30.0, 10.0)}, r"lo <= hi"),
        ({"control_rate_hz": 0.5}, r"control_rate_hz 0\.5 is out of range"),
        ({"frame_time_jitter": 1.0}, r"frame_time_jitter must be in \[0, 1\), got 1\.0"),
        ({"sim": "carla", "control_rate_range_hz": (5.0, 20.0)}, r"sim carla accepts \[10, "),
    ],
)
def test_rates_outside_the_simulators_range_are_refused_before_writing(tmp_path, options, match):
    with pytest.raises(RecordError, match=match):
        record(RecordConfig(out=tmp_path / "d", episodes=1, progress=False, **SMALL | options))
    assert not (tmp_path / "d").exists()


def test_the_simulators_accept_exactly_the_contracts_rate_range():
    lo, hi = spec.BUILTIN_CONTROL_RATE_RANGE_HZ
    for rate in (lo, hi):
        sim.make_env("builtin", control_rate_hz=rate).close()
    for rate in (lo * 0.99, hi * 1.01):
        with pytest.raises(spec.SimConfigError, match="control_rate_hz"):
            sim.make_env("builtin", control_rate_hz=rate)
    from sim.carla.config import CarlaEnvConfig

    lo, hi = spec.CARLA_CONTROL_RATE_RANGE_HZ
    assert CarlaEnvConfig(control_rate_hz=lo).control_rate_hz == lo
    with pytest.raises(spec.SimConfigError, match="control_rate_hz"):
        CarlaEnvConfig(control_rate_hz=lo * 0.99)
    assert set(spec.CONTROL_RATE_RANGE_HZ) == set(sim.SIMULATORS)


def test_the_command_line_names_a_bad_rate_range_and_writes_nothing(tmp_path, capsys):
    from tools.record import main

    out = tmp_path / "d"
    argv = ["--out", str(out), "--episodes", "1", "--control-rate-range-hz", "0.5", "20"]
    assert main(argv) == 2
    assert "error: control_rate_range_hz (0.5, 20.0)" in capsys.readouterr().err
    assert not out.exists()

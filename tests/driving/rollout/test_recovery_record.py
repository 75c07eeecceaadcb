"""Recording recovery views (``--recovery-views``) and training on a share of them."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from driving.data import episodes as ep
from driving.data import views as V
from driving.rollout.record import RecordConfig, RecordError, record
from driving.train.config import TrainConfig, TrainConfigError
from driving.train.data import (
    DEFAULT_RECOVERY_SHARE,
    check_recovery_data,
    resolve_recovery_share,
)
from sim.spec import SimConfigError


def test_records_views_with_their_offsets_labels_and_settings(tmp_path):
    out = tmp_path / "d"
    record(RecordConfig(out=out, episodes=1, episode_s=2.0, recovery_views=2, progress=False))
    (episode,) = ep.load_episodes(out)
    assert episode.views == 2
    assert episode.meta[V.RECOVERY_KEY]["max_lateral_m"] == 1.0
    for k in (1, 2):
        lateral = episode.columns[V.lateral_column(k)]
        assert np.all(np.abs(lateral) <= 1.0) and np.ptp(lateral) < 0.2  # held over 2 s
        assert episode.view_frames(k, 0, len(episode)).shape == (len(episode), 78, 200, 3)
    # the view further left (and turned further left) is labelled further right
    lat = {k: episode.columns[V.lateral_column(k)][0] for k in (1, 2)}
    yaw = {k: episode.columns[V.yaw_column(k)][0] for k in (1, 2)}
    a, b = (1, 2) if lat[1] > lat[2] else (2, 1)
    if yaw[a] >= yaw[b]:
        assert episode.columns[V.label_column(a)][0] < episode.columns[V.label_column(b)][0]


def test_views_default_to_two_on_builtin_and_zero_records_none(tmp_path):
    assert RecordConfig(out=Path("x")).recovery_views == 2
    assert RecordConfig(out=Path("x"), sim="carla").recovery_views == 0
    out = tmp_path / "d"
    record(RecordConfig(out=out, episodes=1, episode_s=1.0, recovery_views=0, progress=False))
    (episode,) = ep.load_episodes(out)
    assert episode.views == 0 and V.RECOVERY_KEY not in episode.meta
    assert not (episode.path / V.VIEWS_DIR).exists()
    assert not any(c.startswith("view") for c in episode.columns)


def test_an_offset_beyond_the_lane_fails_before_anything_is_written(tmp_path):
    out = tmp_path / "d"
    cfg = RecordConfig(
        out=out, episodes=1, recovery_views=1, recovery_max_lateral_m=1.6, progress=False,
        towns=("highway", "suburb"),  # the second town's lanes are the narrow ones
    )  # fmt: skip
    with pytest.raises(SimConfigError, match=r"max_lateral_m=1\.6 m is beyond the lane.*suburb"):
        record(cfg)
    assert not out.exists()


def test_carla_refuses_recovery_views():
    with pytest.raises(RecordError, match="builtin simulator only"):
        RecordConfig(out=Path("x"), sim="carla", recovery_views=2)


def test_train_config_checks_the_share_and_the_data(tmp_path):
    with pytest.raises(TrainConfigError, match="recovery_share must be in"):
        TrainConfig(data=(tmp_path,), out=tmp_path / "run", recovery_share=1.0)
    cfg = TrainConfig(data=(tmp_path,), out=tmp_path / "run", recovery_share=0.2)
    out, viewed = tmp_path / "d", tmp_path / "v"
    record(RecordConfig(out=out, episodes=1, episode_s=1.0, recovery_views=0, progress=False))
    with pytest.raises(TrainConfigError, match="has recovery views"):
        check_recovery_data(ep.load_episodes(out), cfg)
    unset = TrainConfig(data=(out,), out=tmp_path / "r")
    assert unset.recovery_share is None
    assert resolve_recovery_share(unset).recovery_share == 0.0  # no views: off
    check_recovery_data(ep.load_episodes(out), resolve_recovery_share(unset))
    record(RecordConfig(out=viewed, episodes=1, episode_s=1.0, progress=False))
    both = TrainConfig(data=(out, viewed), out=tmp_path / "r")
    assert resolve_recovery_share(both).recovery_share == DEFAULT_RECOVERY_SHARE == 0.3
    assert resolve_recovery_share(dataclasses.replace(both, recovery_share=0.0)).recovery_share == 0

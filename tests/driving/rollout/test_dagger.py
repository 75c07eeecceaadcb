"""On-policy recording (driving.rollout.dagger via record --driver): labels, mixing, checks."""

import numpy as np
import pytest
import torch

import sim
from driving.data import episodes as ep
from driving.data import views as V
from driving.data.format import POLICY_DROVE
from driving.data.summary import summarize
from driving.model.checkpoint import save_checkpoint
from driving.model.policy import PolicyConfig, SteeringPolicy
from driving.rollout.dagger import MixedDriver, Mixing, model_sha256
from driving.rollout.episode import run_episode
from driving.rollout.record import RecordConfig, RecordError, make_env, record
from sim.spec import CameraSpec

SMALL = {"towns": ("countryside",), "weathers": ("clear_noon",), "progress": False}
KAPPA = 0.06
"""The test policy's constant command, 1/m: it leaves the lane within a second or two."""


def curving_checkpoint(path, camera=None, kappa=KAPPA, **policy):
    """A checkpoint whose policy always commands ``kappa`` (readout weight 0, bias set)."""
    net = SteeringPolicy(PolicyConfig(**policy))
    with torch.no_grad():
        net.readout.weight.zero_()
        net.readout.bias.fill_(kappa * net.config.label_scale)
    return save_checkpoint(path, net, camera=camera or CameraSpec())


@pytest.fixture(scope="module")
def curving(tmp_path_factory):
    return curving_checkpoint(tmp_path_factory.mktemp("ck") / "curving")


def replay_labels(cfg, episode):
    """The expert's command at every pose of a replay of the episode's applied commands."""
    commands = np.where(
        episode.columns[POLICY_DROVE] > 0.5,
        episode.columns[ep.CURVATURE_PRED],
        episode.columns[ep.CURVATURE_EXPERT],
    )

    class Replay:
        def reset(self):
            return 0

        def act(self, obs, k):
            return np.array([commands[k]], dtype=np.float32), k + 1

    env = make_env(cfg, episode.town, episode.weather)
    try:
        m = episode.meta
        options = {
            "start_offset_m": m["start_offset_m"],
            "start_heading_rad": m["start_heading_rad"],
        }
        log = run_episode(
            env, Replay(), seed=m["seed"], options=options, label_driver=sim.make_expert(env)
        )
    finally:
        env.close()
    return log


def test_policy_drives_the_expert_labels_each_actual_pose_and_departures_recover(tmp_path, curving):
    cfg = RecordConfig(out=tmp_path / "d", episodes=1, episode_s=4.0, driver=curving, **SMALL)
    summary = record(cfg)
    (e,) = ep.load_episodes(cfg.out)
    c = e.columns
    n = len(e)
    assert n >= 80 and summary.policy_steps == n and "policy drove 100%" in summary.format()
    # the policy's command was applied; the label is the expert's, not the policy's
    np.testing.assert_allclose(c[ep.CURVATURE_PRED], KAPPA, rtol=1e-5)
    assert np.all(c[POLICY_DROVE] == 1) and not c[ep.NOISE_ACTIVE].any()
    assert np.abs(c[ep.CURVATURE_EXPERT] - c[ep.CURVATURE_PRED]).max() > 0.03
    # departures were interventions: the car was put back and the episode went on
    assert c[ep.INTERVENTION].sum() >= 2 and e.meta["interventions"] == c[ep.INTERVENTION].sum()
    assert e.meta["outcome"] == "time_limit"
    # the label of every frame is the expert's command at the pose the car actually had
    log = replay_labels(cfg, e)
    np.testing.assert_array_equal(log.columns[ep.X_M], c[ep.X_M])
    np.testing.assert_array_equal(log.columns[ep.CURVATURE_EXPERT], c[ep.CURVATURE_EXPERT])
    m = e.meta
    assert m["driver"] == "policy" and m["policy_steps"] == n and m["expert_steps"] == 0
    assert m["dagger"]["model_sha256"] == model_sha256(curving)
    assert m["dagger"]["checkpoint"] == str(curving.resolve()) and m["dagger"]["beta"] == 0.0
    assert m["noise"]["enabled"] is False
    assert summarize([e])["driver_share"] == {"policy": 1.0, "expert": 0.0}


def test_beta_one_records_what_the_expert_records(tmp_path, curving):
    expert = RecordConfig(out=tmp_path / "e", episodes=2, episode_s=2.0, noise=False, **SMALL)
    mixed = RecordConfig(
        out=tmp_path / "m", episodes=2, episode_s=2.0, driver=curving, beta=1.0, **SMALL
    )
    record(expert)
    record(mixed)
    for a, b in zip(ep.load_episodes(expert.out), ep.load_episodes(mixed.out), strict=True):
        for name in ep.BASE_COLUMN_NAMES:
            np.testing.assert_array_equal(a.columns[name], b.columns[name], err_msg=name)
        assert np.all(b.columns[POLICY_DROVE] == 0) and b.meta["driver"] == "expert"
        np.testing.assert_allclose(b.columns[ep.CURVATURE_PRED], KAPPA, rtol=1e-5)
        assert POLICY_DROVE not in a.columns and "dagger" not in a.meta
        assert a.meta["driver"] == "expert"
    assert summarize(ep.load_episodes(expert.out))["driver_share"]["expert"] == 1.0


def test_step_mixing_labels_stay_the_experts(tmp_path, curving):
    cfg = RecordConfig(
        out=tmp_path / "d", episodes=1, episode_s=3.0, driver=curving, beta=0.5,
        beta_per="step", **SMALL,
    )  # fmt: skip
    record(cfg)
    (e,) = ep.load_episodes(cfg.out)
    drove = e.columns[POLICY_DROVE]
    assert 0.2 < drove.mean() < 0.8 and e.meta["driver"] == "mixed"
    assert e.meta["policy_steps"] == drove.sum()
    log = replay_labels(cfg, e)
    np.testing.assert_array_equal(log.columns[ep.CURVATURE_EXPERT], e.columns[ep.CURVATURE_EXPERT])


class Constant:
    def __init__(self, value):
        self.value, self.calls = value, 0

    def reset(self):
        return 0

    def act(self, obs, state):
        self.calls += 1
        return np.array([self.value], dtype=np.float32), state + 1


@pytest.mark.parametrize(("per", "beta"), [("step", 0.3), ("event", 0.3), ("event", 0.8)])
def test_mixing_gives_the_expert_beta_of_the_steps(per, beta):
    policy, expert = Constant(1.0), Constant(-1.0)
    mixed = MixedDriver(
        policy, expert, Mixing(beta, per, event_s=0.5), 0.05, np.random.default_rng(1)
    )
    label = mixed.label_driver()
    state, applied = mixed.reset(), []
    for _ in range(20_000):
        action, state = mixed.act(None, state)
        assert label.act(None, None)[0][0] == -1.0  # the label is always the expert's
        applied.append(action[0])
        assert MixedDriver.step_columns(state)["policy_drove"] == float(action[0] == 1.0)
    expert_on = np.asarray(applied) < 0
    assert expert_on.mean() == pytest.approx(beta, abs=0.04)
    assert state.policy == 20_000 and policy.calls == expert.calls == 20_000
    switches = int(np.abs(np.diff(expert_on.astype(int))).sum())
    mean_stretch = expert_on.sum() / max(1, switches / 2)
    if per == "event":
        assert mean_stretch == pytest.approx(10, rel=0.2)  # 0.5 s at 20 Hz
    else:
        assert mean_stretch < 2


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_beta_zero_or_one_draws_nothing(beta):
    rng = np.random.default_rng(4)
    before = rng.bit_generator.state
    mixed = MixedDriver(Constant(1.0), Constant(-1.0), Mixing(beta, "step"), 0.05, rng)
    state = mixed.reset()
    for _ in range(50):
        action, state = mixed.act(None, state)
        assert action[0] == (-1.0 if beta else 1.0)
    assert rng.bit_generator.state == before


def test_camera_or_rate_mismatch_is_refused_before_anything_is_written(tmp_path, curving):
    small = curving_checkpoint(tmp_path / "small", camera=CameraSpec(width_px=100, height_px=40))
    out = tmp_path / "d"
    with pytest.raises(RecordError, match=r"camera .*'width_px': 100.* camera .*'width_px': 200"):
        record(RecordConfig(out=out, episodes=1, episode_s=1.0, driver=small, **SMALL))
    assert not out.exists()
    with pytest.raises(RecordError, match=r"10\.0 Hz"):
        record(
            RecordConfig(
                out=out, episodes=1, episode_s=1.0, driver=curving, control_rate_hz=10.0, **SMALL
            )
        )
    assert not out.exists()
    with pytest.raises(RecordError, match=r"config\.json"):
        record(RecordConfig(out=out, episodes=1, driver=tmp_path / "nothing", **SMALL))
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "match"),
    [({"beta": 1.5}, "beta must be in"), ({"beta_event_s": 0.0}, "beta_event_s")],
)
def test_bad_mixing_options_are_refused(tmp_path, option, match):
    with pytest.raises(RecordError, match=match):
        RecordConfig(out=tmp_path, **option)


def test_recovery_views_ride_along_when_the_policy_drives(tmp_path, curving):
    base = {"episodes": 1, "episode_s": 3.0, "driver": curving, **SMALL}
    plain = RecordConfig(out=tmp_path / "plain", recovery_views=0, **base)
    viewed = RecordConfig(out=tmp_path / "views", recovery_views=2, **base)
    record(plain)
    record(viewed)
    (a,) = ep.load_episodes(plain.out)
    (b,) = ep.load_episodes(viewed.out)
    # the views change nothing the policy or the expert saw or did
    for name in (*ep.BASE_COLUMN_NAMES, POLICY_DROVE, ep.CURVATURE_PRED):
        np.testing.assert_array_equal(a.columns[name], b.columns[name], err_msg=name)
    assert a.views == 0 and b.views == 2 and b.meta["driver"] == "policy"
    assert b.columns[ep.INTERVENTION].sum() >= 1  # the policy's own departures are in the data
    for k in (1, 2):
        assert b.view_frames(k, 0, len(b)).shape == (len(b), 78, 200, 3)
        assert not np.array_equal(b.view_frames(k, 0, 1), b.frames(0, 1))
    # each view is labelled at its own pose: the view further left is labelled further right
    lat = {k: b.columns[V.lateral_column(k)][0] for k in (1, 2)}
    left, right = (1, 2) if lat[1] > lat[2] else (2, 1)
    assert b.columns[V.label_column(left)][0] < b.columns[V.label_column(right)][0]

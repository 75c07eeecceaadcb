"""run_episode with a small fake env of the sim contract: rows, labels, outcomes, writing."""

import math

import numpy as np
import pytest

from driving.data import episodes as ep
from driving.rollout.episode import Driver, EpisodeLog, RolloutError, run_episode

H, W = 16, 40


class FakeEnv:
    """A straight 1-D lane: the car's lateral offset and heading follow its curvature."""

    def __init__(self, route_length_m=20.0, max_steps=1000, noise=0.0, depart_at_m=None,
                 junctions=()):  # fmt: skip
        self.route_length_m, self.max_steps, self.noise = route_length_m, max_steps, noise
        self.depart_at_m = depart_at_m
        self.dt, self.speed = 0.05, 10.0
        # (first step, last step, command) per route junction: its command is active then
        self.junctions = tuple(junctions)

    def _active(self):
        for j, (first, last, _command) in enumerate(self.junctions):
            if first <= self.k <= last:
                return j
        return -1

    def _obs(self):
        img = np.full((H, W, 3), min(255, 10 * self.k), np.uint8)
        return {
            "image": img,
            "speed_mps": np.array([self.speed], np.float32),
            "t_s": np.array([self.k * self.dt]),
            "command": np.array([self.junctions[j][2] if (j := self._active()) >= 0 else 0]),
        }

    def _info(self, applied=0.0, noise=False, collision=False):
        return {
            "lateral_offset_m": self.lat,
            "heading_error_rad": self.head,
            "road_curvature": 0.0,
            "progress_m": self.s,
            "lane_half_width_m": 1.75,
            "pose": (self.s, self.lat, self.head),
            "town": "flat",
            "weather": "clear",
            "curvature_applied": applied,
            "noise_active": noise,
            "intervention": False,
            "collision": collision,
            "route_length_m": self.route_length_m,
            "junction": self._active(),
        }

    def reset(self, seed=None, options=None):
        self.k, self.s, self.head = 0, 0.0, 0.0
        self.lat = (options or {}).get("start_offset_m", 0.0)
        self.seed = seed
        route = tuple(command for _, _, command in self.junctions)
        return self._obs(), self._info() | {"route_commands": route}

    def step(self, action):
        clean = float(np.asarray(action).reshape(-1)[0])
        noisy = self.noise != 0.0 and self.k % 4 < 2
        applied = clean + (self.noise if noisy else 0.0)
        self.head += applied * self.speed * self.dt
        self.lat += math.sin(self.head) * self.speed * self.dt
        self.s += self.speed * self.dt
        self.k += 1
        departed = self.depart_at_m is not None and self.s >= self.depart_at_m
        done = self.s >= self.route_length_m or self.k >= self.max_steps
        return self._obs(), 0.0, departed, done and not departed, self._info(applied, noisy)


class FakeExpert:
    def __init__(self, env):
        self.env = env

    def reset(self):
        return None

    def act(self, obs, state):
        return np.array([-0.3 * self.env.lat - 1.0 * self.env.head], np.float32), state


class ConstantPolicy:
    """A 'learned' driver with a 2-neuron recurrent state counting its steps."""

    def reset(self):
        return np.zeros(2)

    def act(self, obs, state):
        return np.array([0.01], np.float32), state + np.array([1.0, 0.5])


def make_dataset(tmp_path):
    root = tmp_path / "data"
    ep.create_or_open_dataset(
        root, ep.DatasetInfo("fake", {"width_px": W, "height_px": H}, control_rate_hz=20.0)
    )
    return root


def test_drivers_satisfy_the_protocol():
    assert isinstance(FakeExpert(FakeEnv()), Driver) and isinstance(ConstantPolicy(), Driver)


def test_rows_labels_and_summary_with_noise(tmp_path):
    env = FakeEnv(route_length_m=10.0, noise=0.02)
    log = run_episode(env, FakeExpert(env), seed=7, options={"start_offset_m": 0.5})
    assert isinstance(log, EpisodeLog)
    n = log.num_steps
    assert n == 20 and log.outcome == "route_complete" and log.truncated and not log.terminated
    c = log.columns
    np.testing.assert_allclose(c[ep.T_S], 0.05 * np.arange(n))
    assert c[ep.LATERAL_OFFSET_M][0] == 0.5  # row i holds the state seen at observation i
    # The label is the expert's clean command; the car executed label + noise while noisy.
    noisy = c[ep.NOISE_ACTIVE]
    assert noisy.dtype == np.bool_ and noisy.sum() == log.noise_steps == 10
    np.testing.assert_allclose(
        c[ep.CURVATURE_APPLIED], c[ep.CURVATURE_EXPERT] + 0.02 * noisy, atol=1e-6
    )
    assert log.distance_m == pytest.approx(10.0) and log.duration_s == pytest.approx(1.0)
    assert log.summary()["seed"] == 7 and log.summary()["town"] == "flat"
    assert log.target_speed_mps is None  # the fake env does not report one
    assert ep.CURVATURE_PRED not in c


def test_writer_gets_every_step_and_is_finished(tmp_path):
    root = make_dataset(tmp_path)
    env = FakeEnv(route_length_m=5.0)
    writer = ep.EpisodeWriter(root, {"seed": 1})
    log = run_episode(env, FakeExpert(env), seed=1, writer=writer)
    assert log.path == ep.episode_dir(root, 0)
    e = ep.read_episode(log.path, check_frames=True)
    assert len(e) == log.num_steps == 10
    assert e.meta["outcome"] == "route_complete" and e.meta["distance_m"] == pytest.approx(5.0)
    for name, values in log.columns.items():
        np.testing.assert_allclose(e.columns[name], values, rtol=1e-9, atol=1e-12)
    assert abs(int(e.frame(3).mean()) - 30) <= 2  # frame i is observation i


def test_label_driver_and_step_columns_for_rollouts(tmp_path):
    root = make_dataset(tmp_path)
    env = FakeEnv(route_length_m=3.0)
    extra = {ep.CURVATURE_PRED: "1/m", ep.neuron_column(0): "1", ep.neuron_column(1): "1"}
    writer = ep.EpisodeWriter(root, {}, extra_columns=extra)
    log = run_episode(
        env,
        ConstantPolicy(),
        seed=0,
        writer=writer,
        label_driver=FakeExpert(env),
        step_columns=lambda h: {ep.neuron_column(i): h[i] for i in range(2)},
    )
    c = ep.read_episode(log.path).columns
    assert np.all(c[ep.CURVATURE_PRED] == np.float32(0.01))
    np.testing.assert_allclose(c[ep.CURVATURE_APPLIED], c[ep.CURVATURE_PRED], atol=1e-7)
    assert not np.allclose(c[ep.CURVATURE_EXPERT], c[ep.CURVATURE_PRED])
    np.testing.assert_allclose(c[ep.neuron_column(1)], 0.5 * np.arange(1, log.num_steps + 1))


def test_outcomes_departure_max_steps_stop_and_time_limit():
    env = FakeEnv(route_length_m=100.0, depart_at_m=2.0)
    log = run_episode(env, FakeExpert(env), seed=0)
    assert log.outcome == "lane_departure" and log.terminated and log.num_steps == 4
    env = FakeEnv(route_length_m=100.0)
    assert run_episode(env, FakeExpert(env), seed=0, max_steps=7).outcome == "max_steps"
    calls = []
    log = run_episode(
        env,
        FakeExpert(env),
        seed=0,
        should_stop=lambda: len(calls) >= 3,
        on_step=lambda k, s: calls.append((k, s)),
    )
    assert log.outcome == "stopped" and log.num_steps == 3
    assert calls[-1] == (3, pytest.approx(1.5))
    env = FakeEnv(route_length_m=100.0, max_steps=5)
    assert run_episode(env, FakeExpert(env), seed=0).outcome == "time_limit"


def test_contract_violations_are_clear_and_leave_the_episode_partial(tmp_path):
    root = make_dataset(tmp_path)

    class NoPose(FakeEnv):
        def _info(self, *a, **k):
            return {k_: v for k_, v in super()._info(*a, **k).items() if k_ != "pose"}

    env = NoPose()
    writer = ep.EpisodeWriter(root, {})
    with pytest.raises(RolloutError, match="'pose'"):
        run_episode(env, FakeExpert(env), seed=0, writer=writer)
    assert ep.list_episodes(root) == [] and len(ep.list_partial_episodes(root)) == 1

    class NaNDriver(ConstantPolicy):
        def act(self, obs, state):
            return np.array([np.nan], np.float32), state

    with pytest.raises(RolloutError, match="driver's action"):
        run_episode(FakeEnv(), NaNDriver(), seed=0)


def test_route_commands_and_junctions_are_written_in_every_row(tmp_path):
    root = make_dataset(tmp_path)
    env = FakeEnv(route_length_m=5.0, junctions=[(2, 4, 1), (6, 7, 3)])
    log = run_episode(env, FakeExpert(env), seed=0, writer=ep.EpisodeWriter(root, {}))
    assert log.route_commands == (1, 3) and log.summary()["route_commands"] == [1, 3]
    want_command = [0, 0, 1, 1, 1, 0, 3, 3, 0, 0]
    want_junction = [-1, -1, 0, 0, 0, -1, 1, 1, -1, -1]
    np.testing.assert_array_equal(log.columns[ep.COMMAND], want_command)
    e = ep.read_episode(log.path)
    assert e.columns[ep.COMMAND].dtype == np.int64 and e.meta["route_commands"] == [1, 3]
    np.testing.assert_array_equal(e.columns[ep.COMMAND], want_command)
    np.testing.assert_array_equal(e.columns[ep.JUNCTION], want_junction)
    # A route without junctions (today's towns): follow-lane, junction -1, no route commands.
    log = run_episode(FakeEnv(route_length_m=1.0), ConstantPolicy(), seed=0)
    assert log.route_commands == () and set(log.columns[ep.JUNCTION]) == {-1}


@pytest.mark.parametrize(
    ("obs_command", "junction", "match"),
    [
        (np.array([7]), -1, "observation .command.: unknown command"),
        (np.array([0]), 5, "'junction' is 5"),
    ],
)
def test_bad_command_or_junction_from_the_env_is_a_rollout_error(obs_command, junction, match):
    class Bad(FakeEnv):
        def _obs(self):
            return super()._obs() | {"command": obs_command}

        def _info(self, *a, **k):
            return super()._info(*a, **k) | {"junction": junction}

    with pytest.raises(RolloutError, match=match):
        run_episode(Bad(), ConstantPolicy(), seed=0)

import re

import numpy as np
import pytest

from sim import spec
from sim.builtin.env import BuiltinDrivingEnv
from sim.wrappers import NoiseInjection, RandomStart


def _drive(env, steps, seed=0):
    obs, info = env.reset(seed=seed)
    expert = env.unwrapped.make_expert()
    rows = []
    for _ in range(steps):
        clean, _ = expert.act(obs, None)
        obs, _, terminated, truncated, info = env.step(clean)
        rows.append((float(clean[0]), info))
        assert not terminated
        if truncated:
            break
    return rows


@pytest.mark.parametrize("kind", ["triangular", "ou"])
def test_noise_share_applied_command_and_clean_label(kind):
    env = NoiseInjection(
        BuiltinDrivingEnv(route_length_m=600.0, town="highway", supersample=1),
        share=0.3,
        amplitude_per_m=0.01,
        kind=kind,
    )
    rows = _drive(env, 1200)
    active = np.array([info[spec.INFO_NOISE_ACTIVE] for _, info in rows])
    assert 0.15 < active.mean() < 0.45
    for clean, info in rows:
        assert info["curvature_clean"] == pytest.approx(clean)
        assert info[spec.INFO_CURVATURE_APPLIED] == pytest.approx(
            clean + info["noise_curvature"], abs=1e-6
        )
        if not info[spec.INFO_NOISE_ACTIVE]:
            assert info["noise_curvature"] == 0.0
    # the perturbation really moves the car: more lateral error than the clean expert
    noisy_err = np.mean([abs(i[spec.INFO_LATERAL_OFFSET_M]) for _, i in rows])
    clean_rows = _drive(
        BuiltinDrivingEnv(route_length_m=600.0, town="highway", supersample=1), 1200
    )
    clean_err = np.mean([abs(i[spec.INFO_LATERAL_OFFSET_M]) for _, i in clean_rows])
    assert noisy_err > 2 * clean_err


def test_noise_is_deterministic_for_a_seed():
    def run():
        env = NoiseInjection(BuiltinDrivingEnv(route_length_m=200.0), share=0.5, kind="ou")
        return [i["noise_curvature"] for _, i in _drive(env, 100, seed=4)]

    assert run() == run()


def test_random_start_offsets_and_explicit_options_win():
    env = RandomStart(
        BuiltinDrivingEnv(route_length_m=100.0), max_offset_m=0.8, max_heading_rad=0.1
    )
    offsets = []
    for seed in range(5):
        _, info = env.reset(seed=seed)
        offsets.append(info[spec.INFO_LATERAL_OFFSET_M])
        assert abs(info[spec.INFO_HEADING_ERROR_RAD]) <= 0.1 + 1e-9
    assert max(abs(o) for o in offsets) <= 0.8 + 1e-9
    assert len({round(o, 6) for o in offsets}) == 5
    _, info = env.reset(seed=1, options={"start_offset_m": 0.3, "start_heading_rad": 0.0})
    assert info[spec.INFO_LATERAL_OFFSET_M] == pytest.approx(0.3, abs=1e-6)


def test_bad_noise_settings_are_errors():
    env = BuiltinDrivingEnv(route_length_m=100.0)
    with pytest.raises(ValueError, match="share"):
        NoiseInjection(env, share=1.5)
    with pytest.raises(ValueError, match="kind"):
        NoiseInjection(env, kind="sine")


def test_noise_wrapper_checks_actions_like_the_contract():
    env = NoiseInjection(BuiltinDrivingEnv(route_length_m=100.0), share=0.5)
    env.reset(seed=0)
    for bad in (True, None, 1j, "0.1", np.zeros(2, np.float32), np.array([np.nan], np.float32)):
        with pytest.raises(spec.ContractError) as expected:
            spec.check_action(bad, np.inf)
        with pytest.raises(spec.ContractError, match=re.escape(str(expected.value))):
            env.step(bad)


def test_noise_wrapper_after_the_end_and_after_close():
    env = NoiseInjection(
        BuiltinDrivingEnv(route_length_m=10.0, max_time_s=1.0, supersample=1), share=0.5
    )
    with pytest.raises(spec.ResetNeededError):
        env.step(np.zeros(1, np.float32))
    env.reset(seed=0)
    for _ in range(100):
        if any(env.step(np.zeros(1, np.float32))[2:4]):
            break
    schedule = (env._rng.bit_generator.state, env._next_start, env._event_end)
    with pytest.raises(spec.ResetNeededError, match="episode has ended"):
        env.step(np.zeros(1, np.float32))
    assert (env._rng.bit_generator.state, env._next_start, env._event_end) == schedule
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    env.close()
    with pytest.raises(spec.EnvClosedError):
        env.step(np.zeros(1, np.float32))
    with pytest.raises(spec.EnvClosedError):
        env.reset(seed=0)
    env.close()

"""The NCP paper's analyses: SSIM, Lipschitz, PCA, saliency stability, the noise curve."""

import cv2
import numpy as np
import pytest
import torch

from driving.evaluate.analyses import (
    AnalysisError,
    add_noise,
    explained_variance_ratio,
    max_lipschitz,
    noise_curve,
    saliency_stability,
    ssim,
)
from driving.model.policy import PolicyConfig, SteeringPolicy

RNG = np.random.default_rng(0)


def _ssim_by_hand(a, b, L=1.0):
    """Wang et al.'s formula evaluated window by window with explicit Gaussian weights."""
    g = cv2.getGaussianKernel(11, 1.5)
    w = (g @ g.T).astype(np.float64)
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            x, y = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            mx, my = (w * x).sum(), (w * y).sum()
            vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
            cxy = (w * (x - mx) * (y - my)).sum()
            vals.append(
                (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            )
    return float(np.mean(vals))


def test_ssim_known_answers():
    a = RNG.random((30, 40))
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    # two constants: only the luminance term, (2ab + C1) / (a^2 + b^2 + C1)
    got = ssim(np.full((20, 20), 0.2), np.full((20, 20), 0.6))
    assert got == pytest.approx((0.24 + 1e-4) / (0.40 + 1e-4), rel=1e-9)
    # independent noise: no shared structure
    assert abs(ssim(RNG.random((60, 80)), RNG.random((60, 80)))) < 0.05
    # an inverted pattern: strongly negative structure
    assert ssim(a, 1.0 - a) < -0.8
    b = np.clip(a + 0.2 * RNG.standard_normal(a.shape), 0, 1)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-12)
    assert ssim(a, b) == pytest.approx(_ssim_by_hand(a, b), abs=1e-9)
    assert ssim(255 * a, 255 * b, data_range=255) == pytest.approx(ssim(a, b), abs=1e-9)


def test_ssim_refuses_bad_shapes():
    with pytest.raises(AnalysisError, match="one shape"):
        ssim(np.zeros((20, 20)), np.zeros((20, 21)))
    with pytest.raises(AnalysisError, match="at least 11"):
        ssim(np.zeros((8, 20)), np.zeros((8, 20)))


def test_lipschitz_of_known_signals_within_episodes():
    t = np.arange(200.0)
    omega, amp = 0.1, 2.0
    first = np.stack([0.3 * t, amp * np.sin(omega * t + 0.05)], axis=1)  # (T, 2)
    # steepest step of a sampled sine, symmetric around the zero crossing at t = 62.3
    expected_sine = np.abs(np.diff(amp * np.sin(omega * t + 0.05))).max()
    assert expected_sine == pytest.approx(2 * amp * np.sin(omega / 2), rel=1e-3)
    second = np.zeros((50, 2))  # starts far from where the first episode ended
    second[20, 1] = 1.5  # one jump up and down
    lip = max_lipschitz([first, second])
    assert lip == pytest.approx([0.3, max(expected_sine, 1.5)])
    assert max_lipschitz([first])[1] == pytest.approx(expected_sine)
    with pytest.raises(AnalysisError, match="at least 2 steps"):
        max_lipschitz([np.zeros((1, 3))])
    with pytest.raises(AnalysisError, match="different neuron counts"):
        max_lipschitz([np.zeros((5, 3)), np.zeros((5, 4))])


def test_pca_share_of_synthetic_activity():
    q, _ = np.linalg.qr(RNG.standard_normal((500, 2)))  # two orthonormal time courses
    q -= q.mean(axis=0)
    q, _ = np.linalg.qr(q)  # still orthonormal, now also zero-mean
    latent = q * [3.0, 1.0]  # variances 9 : 1
    mix, _ = np.linalg.qr(RNG.standard_normal((19, 19)))
    states = np.hstack([latent, np.zeros((500, 17))]) @ mix.T + 5.0  # rotated, offset
    shares = explained_variance_ratio(states)
    assert shares[0] == pytest.approx(0.9, abs=1e-9)
    assert shares[1] == pytest.approx(0.1, abs=1e-9)
    assert shares.sum() == pytest.approx(1.0)
    with pytest.raises(AnalysisError, match="constant"):
        explained_variance_ratio(np.ones((10, 3)))


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return SteeringPolicy(PolicyConfig(core="cfc-ncp")).eval()


def test_saliency_stability_fixed_noise(policy):
    frames = RNG.integers(0, 256, (6, 78, 200, 3), dtype=np.uint8)
    exact = saliency_stability(policy, frames, variances=(1e-12,), batch=4)
    assert np.allclose(exact[1e-12], 1.0)  # no visible noise: identical maps
    a = saliency_stability(policy, frames, variances=(0.1, 0.3), seed=3, batch=4)
    b = saliency_stability(policy, frames, variances=(0.1, 0.3), seed=3, batch=6)
    c = saliency_stability(policy, frames, variances=(0.1,), seed=4)
    assert a[0.1].shape == (6,) and np.all(a[0.1] < 1.0)
    assert np.array_equal(a[0.1], b[0.1]) and np.array_equal(a[0.3], b[0.3])  # per-frame seed
    assert not np.array_equal(a[0.1], c[0.1])
    with pytest.raises(AnalysisError, match="variances"):
        saliency_stability(policy, frames, variances=(0.0,))


def test_add_noise_has_the_asked_variance():
    frame = np.full((100, 100, 3), 128, np.uint8)
    noisy = add_noise(frame, 0.01, RNG.standard_normal(frame.shape).astype(np.float32))
    assert (noisy / 255.0).var() == pytest.approx(0.01, rel=0.05)  # std 0.1: rarely clipped


def _row(model, suite, key, rate, std):
    stats = {"interventions_per_km": {"mean": rate, "std": std}}
    return {"model": model, "suite": suite, "group": "condition", "key": key,
            "interventions_per_km": rate, "stats": stats}  # fmt: skip


def test_noise_curve_one_seed_and_several():
    one = {"summary": [
        _row("expert", "train-towns", "clean", 0.0, 0.0),
        _row("cfc-ncp", "train-towns", "clean", 1.0, 0.5),
        _row("cfc-ncp", "noise-variance", "variance 0.2", 3.0, 4.0),
        _row("cfc-ncp", "noise-variance", "variance 0.1", 2.0, None),
        _row("cfc-ncp", "noise", "noise 0.1", 9.0, 1.0),  # another suite: ignored
    ]}  # fmt: skip
    c = noise_curve([one])["cfc-ncp"]
    assert c["variance"] == [0.0, 0.1, 0.2]
    assert c["mean"] == [1.0, 2.0, 3.0]
    assert c["low"] == [0.5, 2.0, 0.0] and c["high"] == [1.5, 2.0, 7.0]
    assert c["interval"] == "std over episodes"
    seeds = [
        {"summary": [_row(f"lstm-s{s}", "noise-variance", "variance 0.1", r, 1.0)]}
        for s, r in ((0, 1.0), (1, 4.0), (2, 1.0))
    ]
    c = noise_curve(seeds)
    assert list(c) == ["lstm"]
    assert c["lstm"]["mean"] == [2.0] and c["lstm"]["low"] == [1.0] and c["lstm"]["high"] == [4.0]
    assert c["lstm"]["seeds"] == [3] and c["lstm"]["interval"] == "min-max over seeds"
    assert noise_curve([{"summary": []}]) == {}

"""The ``noise-variance`` suite (NCP paper, Fig. 4a) and its fixed noise across models."""

import math

import numpy as np
import pytest

import sim
from driving.evaluate.suites import (
    BUILTIN_SUITES,
    NOISE_VARIANCES,
    build_suite,
    suite_conditions,
)
from sim.spec import TownWeatherSplit

SPLIT = TownWeatherSplit(("t1", "t2"), ("u1",), ("w1", "w2", "w3"), ("x1", "x2"))


def test_variances_become_standard_deviations_on_the_train_towns_routes():
    specs = build_suite("noise-variance", SPLIT)
    labels = [c for _, c in suite_conditions(specs)]
    assert labels == ["variance 0.1", "variance 0.2", "variance 0.3"]
    stds = sorted({s.image_noise_std for s in specs})
    assert stds == pytest.approx([math.sqrt(v) for v in NOISE_VARIANCES])
    assert stds[0] == pytest.approx(0.3162, abs=1e-4)
    clean = build_suite("train-towns", SPLIT)
    for label in labels:  # every variance drives exactly the clean suite's routes
        same = [(s.town, s.weather, s.seed) for s in specs if s.condition == label]
        assert same == [(s.town, s.weather, s.seed) for s in clean]


def test_not_part_of_all():
    assert "noise-variance" not in BUILTIN_SUITES
    everything = build_suite("all", sim.split("builtin"), routes=1)
    assert all(s.suite != "noise-variance" for s in everything)


def _noise_fields(spec, curvature: float, steps: int = 4) -> list[np.ndarray]:
    """(noisy - clean) images of a constant-curvature driver, one per observation."""
    noisy = sim.make_env("builtin", **spec.env_kwargs())
    clean_kwargs = {k: v for k, v in spec.env_kwargs().items() if k != "image_noise_std"}
    clean = sim.make_env("builtin", **clean_kwargs)
    try:
        a, _ = noisy.reset(seed=spec.seed)
        b, _ = clean.reset(seed=spec.seed)
        fields = []
        for _ in range(steps):
            fields.append((a["image"].astype(np.int16), b["image"].astype(np.int16)))
            a = noisy.step(np.array([curvature], np.float32))[0]
            b = clean.step(np.array([curvature], np.float32))[0]
        return fields
    finally:
        noisy.close()
        clean.close()


def _agreement(fa, fb) -> float:
    """Share of pixels whose noise agrees within the uint8 rounding, where both are visible.

    Visible: not clipped and not under a billboard (drawn over the noise); billboard edges,
    anti-aliased over the noise at each model's own pose, leave about 1 % of pixels apart.
    Two independent fields (std 0.32 * 255) agree within 1 on about 1 % of pixels.
    """
    (na, ca), (nb, cb) = fa, fb
    da, db = na - ca, nb - cb
    visible = (na > 0) & (na < 255) & (nb > 0) & (nb < 255) & (da != 0) & (db != 0)
    assert visible.mean() > 0.3
    return float((np.abs(da - db)[visible] <= 1).mean())


def test_two_models_see_the_same_noise_fields_on_a_route():
    split = sim.split("builtin")
    spec = build_suite("noise-variance", split, routes=1, route_km=0.1)[0]
    left = _noise_fields(spec, 0.02)
    right = _noise_fields(spec, -0.02)  # another model: other poses, other images
    assert not np.array_equal(left[1][0], right[1][0])
    for fa, fb in zip(left, right, strict=True):
        assert _agreement(fa, fb) > 0.97  # the same field up to the uint8 rounding
    other = build_suite("noise-variance", split, routes=2, route_km=0.1)[1]  # another seed
    assert other.seed != spec.seed and other.image_noise_std == spec.image_noise_std
    assert _agreement(left[1], _noise_fields(other, 0.02, 2)[1]) < 0.05

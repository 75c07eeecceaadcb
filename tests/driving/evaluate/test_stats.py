"""driving/evaluate/stats.py: known answers on synthetic data."""

import numpy as np
import pytest

from driving.evaluate.stats import (
    Episodes,
    SeedSample,
    StatsError,
    bootstrap,
    holm,
    iqm,
    permutation_test,
    sign_flip_test,
)


def _seeds(values):
    return [SeedSample(Episodes.of([v])) for v in values]


def test_sign_flip_test_exact_p_values():
    assert sign_flip_test([0.3, 0.1, 0.2, 0.5, 0.4]) == pytest.approx(2 / 32)  # all positive
    assert sign_flip_test([1.0, 1.0, 1.0]) == pytest.approx(2 / 8)  # 3 seeds: never below 0.25
    assert sign_flip_test([1.0, -1.0, 0.5, -0.5]) == 1.0  # not significant at all
    # 6 seeds, one small negative: |sum| >= 2.8 for the 2 extremes and the 2 with 0.2 flipped
    assert sign_flip_test([0.5, 0.5, 0.5, 0.5, 1.0, -0.2]) == pytest.approx(4 / 64)
    assert sign_flip_test([0.0, 0.0]) == 1.0


def test_unpaired_permutation_test_exact_and_not_significant():
    assert permutation_test([1, 2, 3], [4, 5, 6]) == pytest.approx(2 / 20)
    assert permutation_test([1, 2, 3, 4], [5, 6, 7, 8]) == pytest.approx(2 / 70)
    assert permutation_test([1, 3, 5], [2, 4, 6]) > 0.5
    with pytest.raises(StatsError):
        permutation_test([], [1])


def test_holm_adjustment_on_known_p_values():
    # sorted 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1, then the running maximum
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == [0.02]


def test_iqm_cuts_a_quarter_from_each_end():
    assert iqm([1, 2, 3]) == 2.0  # 3 values: nothing cut, the mean
    assert iqm([100, 1, 2, 3, 4, 5, 6, -100]) == pytest.approx(3.5)  # 2 cut from each end


def test_seed_bootstrap_interval_covers_the_true_mean_at_its_rate():
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(300):
        values = rng.normal(2.0, 1.0, size=10)
        lo, hi = bootstrap(_seeds(values), resamples=1000, seed=i, hierarchical=False)["ci"]
        hits += lo <= 2.0 <= hi
    # the percentile bootstrap under-covers a little at 10 seeds (about 0.92)
    assert 0.86 <= hits / 300 <= 0.99


def test_hierarchical_bootstrap_covers_a_mean_with_seed_and_route_variation():
    rng = np.random.default_rng(2)
    hits = 0
    for i in range(200):
        seeds = []
        for _ in range(8):
            effect = rng.normal(0.0, 0.5)
            routes = 1.0 + effect + rng.normal(0.0, 1.0, size=(2, 6))  # 2 conditions x 6
            seeds.append(SeedSample(Episodes.of(routes.ravel(), strata=[0] * 6 + [1] * 6)))
        lo, hi = bootstrap(seeds, resamples=800, seed=i)["ci"]
        hits += lo <= 1.0 <= hi
    assert 0.85 <= hits / 200 <= 0.995


def test_bootstrap_degenerate_and_ratio_cases():
    one = bootstrap(_seeds([0.7]), hierarchical=False)
    assert one["ci"] == [0.7, 0.7] and one["single_seed"] and one["n"] == 1
    same = bootstrap(_seeds([0.3, 0.3, 0.3]))
    assert same["ci"] == pytest.approx([0.3, 0.3])
    # pooled rate per seed: 3 interventions over 4 km, 1 over 4 km -> mean 0.5
    rates = [SeedSample(Episodes.of([1, 2], [2, 2])), SeedSample(Episodes.of([0, 1], [2, 2]))]
    out = bootstrap(rates)
    assert out["values"] == pytest.approx([0.75, 0.25]) and out["mean"] == pytest.approx(0.5)
    assert out["ci"][0] >= 0.0 and out["ci"][1] <= 1.0
    # an aligned difference of identical sides is exactly zero in every replicate
    ep = Episodes.of([1.0, 5.0, 2.0])
    assert bootstrap([SeedSample(ep, ep, aligned=True)] * 2)["ci"] == [0.0, 0.0]
    with pytest.raises(StatsError):
        bootstrap([])

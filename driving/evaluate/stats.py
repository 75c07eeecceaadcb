"""Statistics over training seeds: bootstrap intervals, interquartile mean, permutation tests.

numpy only. The unit of replication is the training seed: a model trained with another seed is
another sample of "this architecture"; the evaluation routes are a second, nested level.

- :func:`bootstrap` gives the percentile interval of the mean over seeds of a per-seed
  statistic. Each seed's statistic is a ratio of sums over its episodes,
  ``sum(num) / sum(den)`` (interventions / km pools the rate per seed; a metric averaged over
  episodes has ``den = 1``). ``hierarchical=True`` resamples seeds with replacement and then,
  independently for every drawn seed, its episodes with replacement within each stratum (the
  suite's conditions, so each keeps its share): both the seed-to-seed and the route-to-route
  variation enter the interval. ``hierarchical=False`` resamples seeds only (rliable's
  stratified bootstrap for one task). With one seed, the seeds-only interval is the point
  itself, and the hierarchical one covers route variation only.
- A per-seed *difference* (two models of the same seed, or two suites of the same run) is a
  :class:`SeedSample` with two sides; ``aligned=True`` (the same episodes, e.g. two models on
  the same routes) resamples both sides' episodes with the same draws.
- :func:`iqm` is the interquartile mean rliable recommends (``scipy.stats.trim_mean(x,
  0.25)``: ``floor(n / 4)`` values cut from each end; for 3 seeds it is the mean).
- :func:`sign_flip_test` is the exact paired permutation test of per-seed differences (all
  ``2**n`` sign patterns; Monte Carlo above :data:`EXACT_MAX_SEEDS`); its smallest two-sided
  p-value is ``2 / 2**n``: 0.25 with 3 seeds, 0.0625 with 5, so fewer than 6 seeds can never
  reach 0.05. :func:`permutation_test` is the unpaired one for models of differing seeds.
- :func:`holm` adjusts a family of p-values (Holm-Bonferroni, step-down).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from liquid_drive.errors import LiquidDriveError

RESAMPLES = 5000
"""Default bootstrap resamples."""
CONFIDENCE = 0.95
"""Default two-sided confidence level of the intervals."""
EXACT_MAX_SEEDS = 16
"""Up to this many seeds the sign-flip test enumerates every sign pattern."""
EXACT_MAX_SPLITS = 50_000
"""Up to this many relabellings the unpaired test enumerates them all."""
MONTE_CARLO = 20_000
"""Random permutations when a test is not enumerated (p = (1 + hits) / (1 + draws))."""


class StatsError(LiquidDriveError, ValueError):
    """Input a statistic is not defined for (no seeds, mismatched episodes)."""


@dataclass(frozen=True)
class Episodes:
    """One seed's episodes of one cell: the statistic is ``num.sum() / den.sum()``."""

    num: np.ndarray
    """(E,) numerator per episode (interventions, or the metric's value)."""
    den: np.ndarray
    """(E,) denominator per episode (km, or 1)."""
    strata: np.ndarray
    """(E,) stratum label per episode (resampling keeps each stratum's size)."""

    @classmethod
    def of(cls, num: Sequence[float], den: Sequence[float] | None = None, strata=None) -> Episodes:
        """From plain sequences (``den`` defaults to ones, ``strata`` to a single stratum)."""
        n = np.asarray(num, dtype=float)
        d = np.ones_like(n) if den is None else np.asarray(den, dtype=float)
        s = np.zeros(len(n), dtype=int) if strata is None else np.asarray(strata)
        if n.ndim != 1 or d.shape != n.shape or s.shape != n.shape or len(n) == 0:
            raise StatsError(f"episodes: num {n.shape}, den {d.shape}, strata {s.shape}")
        return cls(n, d, s)

    def value(self) -> float:
        """The statistic on every episode."""
        return float(self.num.sum() / self.den.sum())


@dataclass(frozen=True)
class SeedSample:
    """One seed's statistic: ``a`` alone, or the difference ``a - b``."""

    a: Episodes
    b: Episodes | None = None
    aligned: bool = False
    """``a`` and ``b`` are the same episodes (resampled with the same draws)."""

    def value(self) -> float:
        """The statistic on every episode of the seed."""
        return self.a.value() - (self.b.value() if self.b is not None else 0.0)


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean after cutting ``floor(n / 4)`` values from each end."""
    x = np.sort(np.asarray(values, dtype=float))
    if len(x) == 0:
        raise StatsError("interquartile mean of no values")
    k = len(x) // 4
    return float(x[k : len(x) - k].mean())


def _inner(ep: Episodes, draws: dict[object, np.ndarray]) -> np.ndarray:
    """(B, n) ratios of resampled episodes; ``draws`` maps stratum -> (B, n, m) indices."""
    num = den = 0.0
    for label, idx in draws.items():
        where = np.flatnonzero(ep.strata == label)
        num = num + ep.num[where][idx].sum(-1)
        den = den + ep.den[where][idx].sum(-1)
    return num / den


def _draws(ep: Episodes, shape: tuple[int, int], rng: np.random.Generator) -> dict:
    return {
        label: rng.integers(0, int((ep.strata == label).sum()), size=(*shape, int(m)))
        for label, m in zip(*np.unique(ep.strata, return_counts=True), strict=True)
    }


def _slot_values(
    sample: SeedSample, shape: tuple[int, int], rng: np.random.Generator, hierarchical: bool
) -> np.ndarray:
    """(B, n) the seed's statistic for every replicate and slot (resampled episodes)."""
    if not hierarchical:
        return np.full(shape, sample.value())
    draws = _draws(sample.a, shape, rng)
    out = _inner(sample.a, draws)
    if sample.b is not None:
        if sample.aligned:
            if not np.array_equal(sample.a.strata, sample.b.strata):
                raise StatsError("aligned sides need the same episodes (strata differ)")
        else:
            draws = _draws(sample.b, shape, rng)
        out = out - _inner(sample.b, draws)
    return out


def replicates(
    samples: Sequence[SeedSample],
    resamples: int = RESAMPLES,
    rng: np.random.Generator | None = None,
    hierarchical: bool = True,
) -> np.ndarray:
    """(resamples,) bootstrap replicates of the mean over seeds of the per-seed statistic."""
    if not samples:
        raise StatsError("bootstrap of no seeds")
    rng = np.random.default_rng(0) if rng is None else rng
    n = len(samples)
    shape = (resamples, n)
    values = np.stack([_slot_values(s, shape, rng, hierarchical) for s in samples])  # (S, B, n)
    pick = rng.integers(0, n, size=shape)  # which seed fills each slot
    return values[pick, np.arange(resamples)[:, None], np.arange(n)[None, :]].mean(axis=1)


def interval(reps: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates."""
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence {confidence}: not in (0, 1)")
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(reps, [tail, 100.0 - tail])
    return float(lo), float(hi)


def bootstrap(
    samples: Sequence[SeedSample],
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
    hierarchical: bool = True,
) -> dict[str, object]:
    """The mean over seeds, its IQM and its percentile bootstrap interval.

    Returns:
        ``mean``, ``iqm``, ``ci`` ([low, high]), ``n`` (seeds), ``values`` (per seed),
        ``method`` (``"hierarchical"`` or ``"seeds"``) and ``single_seed`` (True when the
        interval cannot include seed-to-seed variation).
    """
    values = [s.value() for s in samples]
    reps = replicates(samples, resamples, np.random.default_rng(seed), hierarchical)
    lo, hi = interval(reps, confidence)
    return {
        "mean": float(np.mean(values)),
        "iqm": iqm(values),
        "ci": [lo, hi],
        "n": len(values),
        "values": [float(v) for v in values],
        "method": "hierarchical" if hierarchical else "seeds",
        "single_seed": len(values) == 1,
    }


def sign_flip_test(diffs: Sequence[float], seed: int = 0) -> float:
    """Two-sided p-value of the paired sign-flip permutation test of mean(diffs) == 0.

    Exact (every sign pattern) for up to :data:`EXACT_MAX_SEEDS` differences, else
    :data:`MONTE_CARLO` random patterns. All-zero differences give 1.
    """
    d = np.asarray(diffs, dtype=float)
    if len(d) == 0:
        raise StatsError("paired test of no seeds")
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if len(d) <= EXACT_MAX_SEEDS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        return float(np.mean(np.abs(signs @ d / len(d)) >= observed - tol))
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(MONTE_CARLO, len(d)))
    hits = int((np.abs(signs @ d / len(d)) >= observed - tol).sum())
    return (1 + hits) / (1 + MONTE_CARLO)


def permutation_test(a: Sequence[float], b: Sequence[float], seed: int = 0) -> float:
    """Two-sided p-value of the unpaired permutation test of mean(a) == mean(b).

    Exact (every split of the pooled values) up to :data:`EXACT_MAX_SPLITS` splits, else
    :data:`MONTE_CARLO` random ones.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) == 0 or len(y) == 0:
        raise StatsError("unpaired test needs values on both sides")
    pooled = np.concatenate([x, y])
    total, n = pooled.sum(), len(x)
    observed = abs(x.mean() - y.mean())
    tol = 1e-12 * max(1.0, float(np.abs(pooled).max()))

    def gaps(sums: np.ndarray) -> np.ndarray:
        return np.abs(sums / n - (total - sums) / len(y))

    if math.comb(len(pooled), n) <= EXACT_MAX_SPLITS:
        idx = np.array(list(itertools.combinations(range(len(pooled)), n)))
        return float(np.mean(gaps(pooled[idx].sum(1)) >= observed - tol))
    rng = np.random.default_rng(seed)
    sums = np.array([pooled[rng.permutation(len(pooled))[:n]].sum() for _ in range(MONTE_CARLO)])
    return (1 + int((gaps(sums) >= observed - tol).sum())) / (1 + MONTE_CARLO)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (monotone, at most 1)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty_like(p)
    out[order] = adjusted
    return [float(v) for v in out]

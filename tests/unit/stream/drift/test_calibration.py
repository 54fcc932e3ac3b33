"""Calibration: run-length algebra, statistics agree with stream.scores, real false-alarm rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from driftline.stream.drift import scores
from driftline.stream.drift.calibration import (
    FeatureNull,
    _js_distance,
    _ks,
    _psi,
    calibrate_feature,
    nulls_from_reference,
    simulate_null,
    size_bucket,
    tail_quantile,
    window_alpha,
)
from driftline.stream.drift.reference import ReferenceProfile


@pytest.mark.parametrize("mean_windows,k", [(1000, 1), (100_000, 2), (1e6, 3)])
def test_window_alpha_gives_the_requested_mean_run_length(mean_windows, k):
    p = window_alpha(mean_windows, k)
    assert (1 - p**k) / ((1 - p) * p**k) == pytest.approx(mean_windows, rel=1e-6)


def test_window_alpha_matches_a_simulated_run_length():
    rng = np.random.default_rng(1)
    p = window_alpha(50, 2)
    lengths = []
    for _ in range(3000):
        streak, t = 0, 0
        while streak < 2:
            t += 1
            streak = streak + 1 if rng.random() < p else 0
        lengths.append(t)
    assert np.mean(lengths) == pytest.approx(50, rel=0.08)


def test_vectorised_statistics_equal_the_scorer():
    rng = np.random.default_rng(2)
    for _ in range(50):
        bins = int(rng.integers(2, 15))
        ref = rng.integers(0, 50, bins)
        win = rng.integers(0, 50, bins)
        ref[0] = max(ref[0], 1)
        win[-1] = max(win[-1], 1)
        assert _psi(ref[None], win[None])[0] == pytest.approx(scores.psi(ref, win), rel=1e-12)
        assert _js_distance(ref[None], win[None])[0] == pytest.approx(scores.js_distance(ref, win), abs=1e-12)
        assert _ks(ref[None], win[None])[0] == pytest.approx(scores.ks_binned(ref, win), abs=1e-12)


def test_tail_quantile_extrapolates_exponential_and_is_conservative_for_gaussian():
    rng = np.random.default_rng(0)
    expo = rng.exponential(2.0, 5000)
    assert tail_quantile(expo, 1e-5) == pytest.approx(2.0 * math.log(1e5), rel=0.15)
    gauss = np.abs(rng.normal(size=5000))
    true = 4.417  # two-sided 1e-5 quantile of N(0, 1)
    assert true < tail_quantile(gauss, 1e-5) < 1.6 * true
    assert tail_quantile(expo, 0.2) == pytest.approx(np.quantile(expo, 0.8))


def test_size_bucket_is_at_or_below_n_and_within_the_ratio():
    for n in [2, 7, 50, 299, 300, 6000, 123_456]:
        b = size_bucket(n)
        assert b <= n < 1.25 * b + 1


def test_thresholds_are_deterministic_and_fall_with_window_size():
    null = FeatureNull(np.array([0, 100, 100, 100, 100, 0]), missing=4)
    a = calibrate_feature("x", null, 300, ["psi", "ks", "missing_rate_delta"], 1e-4, seed=7)
    b = calibrate_feature("x", null, 300, ["psi", "ks", "missing_rate_delta"], 1e-4, seed=7)
    big = calibrate_feature("x", null, 3000, ["psi", "ks", "missing_rate_delta"], 1e-4, seed=7)
    assert a == b
    assert all(big[m] < a[m] for m in a)


def test_empty_reference_bins_are_not_impossible_in_the_null():
    null = FeatureNull(np.array([0, 500, 500, 0]), missing=0)
    draws = simulate_null(null, 1000, ["psi", "missing_rate_delta"], 2000, np.random.default_rng(0))
    assert draws["missing_rate_delta"].max() > 0
    assert draws["psi"].std() > 0


def _window_counts(ref: ReferenceProfile, values: np.ndarray) -> np.ndarray:
    feature = ref.features["x"]
    return np.bincount(np.searchsorted(feature.edges, values, "right"), minlength=len(feature.edges) + 1)


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_live_false_alarm_rate_matches_alpha(alpha):
    """Fresh references and windows from one distribution, scored as live: exceedances ≈ alpha."""
    rng = np.random.default_rng(11)
    n_ref, n_win, hits, total = 1000, 200, 0, 0
    for r in range(60):
        ref = ReferenceProfile.from_rows([{"x": float(v)} for v in rng.gamma(2.0, size=n_ref)])
        null = nulls_from_reference(ref)["x"]
        threshold = calibrate_feature("x", null, n_win, ["psi"], alpha, seed=r)["psi"]
        feature = ref.features["x"]
        for _ in range(100):
            win = _window_counts(ref, rng.gamma(2.0, size=n_win))
            hits += scores.psi(feature.counts, win) > threshold
            total += 1
    rate = hits / total
    print(alpha, rate)
    assert alpha / 3 < rate < alpha * 1.5, rate


def test_calibration_cache_returns_what_a_fresh_calibration_computes():
    from driftline.stream.drift import calibration as cal

    null = FeatureNull(np.array([0, 40, 55, 61, 38, 0]), missing=7)
    cal.clear_cache()
    first = cal.calibrate_feature("x", null, 300, ["psi", "ks"], alpha=1e-5, samples=500, seed=3)
    rng = np.random.default_rng(cal._seed(3, "x", 300))
    draws = cal.simulate_null(null, 300, ["ks", "psi"], 500, rng)
    assert first == {m: cal.tail_quantile(v, 1e-5) for m, v in draws.items()}
    first["psi"] = -1.0  # callers get copies: the cache is not changed through them
    again = cal.calibrate_feature(
        "x", FeatureNull(null.counts.copy(), 7), 300, ["ks", "psi", "psi"], alpha=1e-5, samples=500, seed=3
    )
    assert again == {m: cal.tail_quantile(v, 1e-5) for m, v in draws.items()}
    assert len(cal._CACHE) == 1
    other = cal.calibrate_feature("x", null, 300, ["psi", "ks"], alpha=1e-3, samples=500, seed=3)
    assert other["psi"] < again["psi"] and len(cal._CACHE) == 2
    cal.clear_cache()
    assert cal.calibrate_feature("x", null, 300, ["psi", "ks"], alpha=1e-5, samples=500, seed=3) == again

"""Drift scores from profiles, checked against scipy on the raw samples.

Tolerances, and why:

- PSI, JS distance, chi-square p-value: the profile's counts are exact, so computing the
  same formula independently (numpy / scipy on ``np.histogram`` or ``Counter`` counts of
  the raw values) must agree to float rounding: ``1e-12`` absolute (PSI, JS) and ``1e-9``
  relative (p-values pass through lgamma/exp).
- KS: bins are ``[e_i, e_{i+1})``, so the binned statistic is the raw two-sample
  statistic evaluated at the bin boundaries: ``binned ≤ raw`` and, since inside a bin each
  empirical CDF rises by at most that bin's mass, ``raw ≤ binned + max_i max(p_i, q_i)``.
  Both bounds are rigorous, so the tests use them exactly (+1e-12 for rounding).
- Wasserstein: moving every value to its bin's representative point moves a distribution
  by at most the mean displacement ``D = mean |x - rep(x)|`` (a coupling), so by the
  triangle inequality ``|binned - raw| ≤ D_ref + D_win``, computed from the raw samples.
  The binned formula itself must equal scipy's weighted ``wasserstein_distance`` on the
  representative points to ``1e-9`` relative.
- chi2_sf: a numerical implementation vs scipy's cephes: ``1e-10`` relative wherever the
  value is a normal float (> 1e-300).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from driftline.stream.drift.profile import ReferenceProfile, WindowProfile
from driftline.stream.drift.scores import (
    PSI_EPS,
    FeatureScores,
    chi2_sf,
    representative_points,
    score_window,
)
from driftline.testing.column_batches import batch_of_columns


def profiles(ref_x, win_x, bins=10, ref_c=None, win_c=None, top_k=50):
    cols_r = {"x": [float(v) for v in ref_x]}
    if ref_c is not None:
        cols_r["c"] = list(ref_c)
    ref = ReferenceProfile.from_columns(cols_r, len(ref_x), numeric_bins=bins, top_k=top_k)
    cols_w = {"x": [float(v) for v in win_x]}
    if win_c is not None:
        cols_w["c"] = list(win_c)
    return ref, WindowProfile(ref).update(batch_of_columns(cols_w))


def full_edges(ref):
    return np.concatenate([[-np.inf], ref.features["x"].edges, [np.inf]])


CASES = {
    "same": (lambda r: r.normal(0, 1, 4000), lambda r: r.normal(0, 1, 1500)),
    "shift": (lambda r: r.normal(0, 1, 4000), lambda r: r.normal(0.5, 1, 1500)),
    "scale": (lambda r: r.normal(0, 1, 4000), lambda r: r.normal(0, 2, 1500)),
    "skew": (lambda r: r.exponential(1, 4000), lambda r: r.exponential(1.6, 1500)),
    "outside": (lambda r: r.uniform(0, 1, 4000), lambda r: r.uniform(0.5, 1.8, 1500)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_numeric_scores_against_scipy_on_raw_samples(case):
    rng = np.random.default_rng(sorted(CASES).index(case))
    gr, gw = CASES[case]
    xr, xw = gr(rng), gw(rng)
    ref, win = profiles(xr, xw, bins=10)
    s = score_window(ref, win)["x"]
    e = full_edges(ref)
    cr, cw = np.histogram(xr, e)[0], np.histogram(xw, e)[0]
    p, q = cr / cr.sum(), cw / cw.sum()
    assert cr.tolist() == ref.features["x"].counts.tolist()
    # PSI / JS: same formula, independent code.
    ps, qs = (p + PSI_EPS) / (1 + len(p) * PSI_EPS), (q + PSI_EPS) / (1 + len(q) * PSI_EPS)
    assert s.psi == pytest.approx(float(np.sum((qs - ps) * np.log(qs / ps))), abs=1e-12)
    assert s.js_distance == pytest.approx(jensenshannon(cr, cw, base=2), abs=1e-12)
    # KS: rigorous sandwich around the raw statistic.
    raw_ks = scipy.stats.ks_2samp(xr, xw).statistic
    assert s.ks <= raw_ks + 1e-12
    assert raw_ks <= s.ks + max(p.max(), q.max()) + 1e-12
    # Wasserstein: formula == scipy on representative points; raw within displacement.
    fr = ref.features["x"]
    pts = representative_points(fr, win.features["x"])
    assert s.wasserstein * fr.std == pytest.approx(
        scipy.stats.wasserstein_distance(pts, pts, cr + 0.0, cw + 0.0), rel=1e-9, abs=1e-12
    )
    d_r = np.abs(xr - pts[np.searchsorted(fr.edges, xr, "right")]).mean()
    d_w = np.abs(xw - pts[np.searchsorted(fr.edges, xw, "right")]).mean()
    raw_w = scipy.stats.wasserstein_distance(xr, xw)
    assert abs(s.wasserstein * fr.std - raw_w) <= d_r + d_w + 1e-12
    assert s.chi2_pvalue is None and s.n == 1500 and s.missing_rate_delta == 0.0


def test_scores_rank_drift_sensibly():
    rng = np.random.default_rng(5)
    xr = rng.normal(0, 1, 5000)
    same = score_window(*profiles(xr, rng.normal(0, 1, 2000)))["x"]
    moved = score_window(*profiles(xr, rng.normal(1, 1, 2000)))["x"]
    assert same.psi < 0.02 and same.ks < 0.05 and same.wasserstein < 0.1
    assert moved.psi > 0.5 and moved.ks > 0.3
    assert moved.wasserstein == pytest.approx(1.0, abs=0.15)  # a 1-std shift
    assert 0 <= same.js_distance < moved.js_distance <= 1


def test_categorical_scores_against_scipy():
    rng = np.random.default_rng(11)
    cats = list("abcdefg")
    cr = rng.choice(cats, 3000, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.05, 0.05])
    cw = rng.choice(cats + ["h"], 800, p=[0.2, 0.2, 0.15, 0.15, 0.1, 0.05, 0.05, 0.1])
    ref, win = profiles(np.zeros(3000), np.zeros(800), ref_c=cr, win_c=cw, top_k=4)
    s = score_window(ref, win)["c"]
    top = [k for k, _ in sorted(Counter(cr).items(), key=lambda kv: (-kv[1], kv[0]))[:4]]

    def hist(x):
        c = Counter(x)
        return np.array([c[k] for k in top] + [sum(v for k, v in c.items() if k not in top)])

    hr, hw = hist(cr), hist(cw)
    table = np.vstack([hr, hw])
    expected_p = scipy.stats.chi2_contingency(table, correction=False).pvalue
    assert s.chi2_pvalue == pytest.approx(expected_p, rel=1e-9)
    assert s.js_distance == pytest.approx(jensenshannon(hr, hw, base=2), abs=1e-12)
    assert s.ks is None and s.wasserstein is None
    assert s.chi2_pvalue < 1e-6  # an 8th category worth 10% is real drift


def test_chi2_sf_matches_scipy():
    for dof in (1, 2, 3, 5, 10, 49, 50, 200):
        for x in np.concatenate([[0.0, 1e-6, 1e-3], np.geomspace(0.01, 2000, 60)]):
            want = scipy.stats.chi2.sf(x, dof)
            got = chi2_sf(float(x), dof)
            if want > 1e-300:
                assert got == pytest.approx(want, rel=1e-10, abs=0), (dof, x)
            else:
                assert got < 1e-290


def test_chi2_identical_and_degenerate_tables():
    ref, win = profiles(np.zeros(10), np.zeros(10), ref_c=["a"] * 10, win_c=["a"] * 10)
    assert score_window(ref, win)["c"].chi2_pvalue == 1.0  # one column: nothing to test


def test_missing_rate_delta_and_empty_window():
    ref = ReferenceProfile.from_columns({"x": [1.0, 2.0, None, 4.0]}, 4)
    win = WindowProfile(ref).update(batch_of_columns({"x": [None, None, 3.0, 1.0]}))
    assert score_window(ref, win)["x"].missing_rate_delta == pytest.approx(0.5 - 0.25)
    empty = score_window(ref, WindowProfile(ref).update(batch_of_columns({"x": [None]})))["x"]
    assert empty.n == 0 and math.isnan(empty.psi) and math.isnan(empty.ks)
    assert empty.to_dict()["psi"] is None
    assert FeatureScores.from_dict(empty.to_dict()).n == 0


def test_constant_reference_reports_wasserstein_in_raw_units():
    ref, win = profiles(np.full(100, 5.0), np.full(50, 7.0))
    s = score_window(ref, win)["x"]
    assert s.wasserstein == pytest.approx(2.0) and s.ks == 1.0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(-2, 2), st.floats(0.3, 3), st.integers(2, 20))
def test_ks_sandwich_property(seed, loc, scale, bins):
    rng = np.random.default_rng(seed)
    xr, xw = rng.normal(0, 1, 500), rng.normal(loc, scale, 300)
    ref, win = profiles(xr, xw, bins=bins)
    s = score_window(ref, win)["x"]
    cr, cw = ref.features["x"].counts, win.features["x"].counts
    raw = scipy.stats.ks_2samp(xr, xw).statistic
    assert s.ks <= raw + 1e-12
    assert raw <= s.ks + max(cr.max() / cr.sum(), cw.max() / cw.sum()) + 1e-12


def test_score_feature_equals_the_public_functions_exactly():
    """``score_feature`` reuses per-reference terms; the values must not change."""
    from driftline.stream.drift.scores import js_distance, ks_binned, psi, score_feature, wasserstein_binned

    rng = np.random.default_rng(7)
    for _trial in range(20):
        ref, win = profiles(
            rng.normal(0, 1, 500),
            rng.normal(rng.normal(0, 0.5), rng.uniform(0.5, 3), 300),
            bins=int(rng.integers(2, 15)),
        )
        r, w = ref.features["x"], win.features["x"]
        for _ in range(2):  # second time: cached terms
            s = score_feature(r, w, 0.0)
            assert s.psi == psi(r.counts, w.counts)
            assert s.js_distance == js_distance(r.counts, w.counts)
            assert s.ks == ks_binned(r.counts, w.counts)
            scale = r.std if r.std else 1.0
            assert s.wasserstein == wasserstein_binned(representative_points(r, w), r.counts, w.counts) / scale


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_window=st.integers(0, 300), bins=st.sampled_from([4, 10]))
def test_score_window_scores_features_together_exactly_as_one_by_one(seed, n_window, bins):
    """`score_window` scores numeric features as (features × bins) arrays; every score must
    be bit for bit `score_feature`'s, with features of different bin counts (a discrete
    feature gets fewer), categoricals, empty windows and features missing in the window."""
    from driftline.stream.drift.scores import score_feature

    rng = np.random.default_rng(seed)
    n_ref = 500
    ref_cols = {f"x{i}": [float(v) for v in rng.normal(i, 1 + i, n_ref)] for i in range(6)}
    ref_cols["few"] = [float(v) for v in rng.integers(0, 3, n_ref)]  # fewer distinct edges
    ref_cols["c"] = [str(v) for v in rng.integers(0, 4, n_ref)]
    ref_cols["gone"] = [float(v) for v in rng.normal(0, 1, n_ref)]
    ref = ReferenceProfile.from_columns(ref_cols, n_ref, numeric_bins=bins)
    win_cols = {
        name: [None if rng.random() < 0.1 else float(v) for v in rng.normal(i * 1.1, 1 + i, n_window)]
        for i, name in enumerate(f"x{i}" for i in range(6))
    }
    win_cols["few"] = [float(v) for v in rng.integers(0, 4, n_window)]
    win_cols["c"] = [str(v) for v in rng.integers(0, 6, n_window)]
    win_cols["gone"] = [None] * n_window
    win = WindowProfile(ref)
    if n_window:
        win.update(batch_of_columns(win_cols))
    together = score_window(ref, win)
    assert list(together) == list(ref.features)
    for name, feature in ref.features.items():
        alone = score_feature(feature, win.features[name], win.missing_rate(name) - ref.missing_rate(name))
        assert together[name].to_dict() == alone.to_dict(), name
        assert repr(together[name]) == repr(alone), name  # nan where nan, same bits

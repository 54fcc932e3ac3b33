"""Drift scores of a window profile against its reference, computed from bin counts only.

All scores compare the distributions of *valid* values (missing values are scored
separately as ``missing_rate_delta``). Definitions, with ``p`` = reference bin
proportions and ``q`` = window bin proportions over the same ``B`` bins:

- **PSI** ``= Σ (q_i - p_i) ln(q_i / p_i)`` after smoothing both sides with
  ``PSI_EPS = 1e-4``: ``p_i ← (p_i + ε) / (1 + Bε)``. An empty bin then contributes a
  large but finite term (``ln(1e-4) ≈ -9.2``), and the smoothed vectors still sum to 1.
- **Jensen–Shannon distance**: ``sqrt(JSD)`` with base-2 logs, so it lies in ``[0, 1]``;
  unsmoothed (JSD is finite with empty bins). Same value as
  ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
- **Binned KS** ``= max_i |P_i - Q_i|`` over the cumulative proportions at bin
  boundaries. Because bins are ``[e_i, e_{i+1})`` this is the exact two-sample KS
  statistic restricted to the boundaries, so ``binned ≤ true KS ≤ binned +
  max_i max(p_i, q_i)`` (within a bin each CDF rises by at most its bin mass).
- **Binned Wasserstein-1**, divided by the reference std: each bin's mass sits at a
  representative point — the midpoint for interior bins (the last interior bin is
  ``[e, max]``), and for the underflow/overflow bins the *mean of the window's values
  there* (tracked exactly by the window). Then ``W = Σ |P_i - Q_i| (x_{i+1} - x_i)``. If
  the reference std is 0 (a constant feature) the distance is reported in raw units.
- **chi2_pvalue** (categorical only): chi-square test of homogeneity on the 2×(K+1)
  table (reference counts, window counts), columns empty in both dropped, no Yates
  correction, ``dof = columns - 1``; 1.0 when fewer than two columns remain. The survival
  function is implemented here (``chi2_sf``) because the runtime core must not need scipy.

KS and Wasserstein are None for categorical features (category order is arbitrary).
When the window or the reference has no valid values the distributional scores are nan;
``FeatureScores.n`` says how many values a score rests on, for the policy's minimum size.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, cast

import numpy as np

from driftline.stream.drift.reference import NumericReference, ReferenceProfile
from driftline.stream.drift.window_profile import NumericWindow, WindowProfile

__all__ = [
    "PSI_EPS",
    "FeatureScores",
    "chi2_pvalue",
    "chi2_sf",
    "js_distance",
    "ks_binned",
    "psi",
    "regularized_gamma_q",
    "representative_points",
    "score_feature",
    "score_window",
    "wasserstein_binned",
]

PSI_EPS = 1e-4
_NAN = float("nan")


@dataclasses.dataclass(frozen=True)
class FeatureScores:
    """Drift scores of one feature in one window (see module docstring)."""

    psi: float
    js_distance: float
    ks: float | None
    wasserstein: float | None
    chi2_pvalue: float | None
    missing_rate_delta: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: nan becomes None."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureScores:
        nan_ok = ("psi", "js_distance")
        values: dict[str, Any] = {
            k: (_NAN if k in nan_ok and d[k] is None else d[k]) for k in (f.name for f in dataclasses.fields(cls))
        }
        return cls(**values)


def _proportions(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    return c / c.sum()


def _smoothed(p: np.ndarray, eps: float) -> np.ndarray:
    return (p + eps) / (1 + len(p) * eps)


def _psi(p: np.ndarray, q: np.ndarray, eps: float) -> float:
    """PSI of proportions ``p`` (reference, already smoothed) and raw ``q``."""
    q = _smoothed(q, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def _js(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kq = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(min(max((kp + kq) / 2, 0.0), 1.0) ** 0.5)


def psi(ref_counts: np.ndarray, win_counts: np.ndarray, eps: float = PSI_EPS) -> float:
    """Population stability index with proportional ε-smoothing (see module docstring).

    Examples:
        >>> round(psi(np.array([50, 50]), np.array([90, 10])), 4)
        0.8784
    """
    return _psi(_smoothed(_proportions(ref_counts), eps), _proportions(win_counts), eps)


def js_distance(ref_counts: np.ndarray, win_counts: np.ndarray) -> float:
    """Jensen–Shannon distance, base 2, in [0, 1]."""
    return _js(_proportions(ref_counts), _proportions(win_counts))


def ks_binned(ref_counts: np.ndarray, win_counts: np.ndarray) -> float:
    """Max |CDF difference| over bin boundaries (a lower bound of the raw KS)."""
    d = np.cumsum(_proportions(ref_counts)) - np.cumsum(_proportions(win_counts))
    return float(np.abs(d).max())


def _inner_points(ref: NumericReference) -> np.ndarray:
    e = ref.edges
    inner = (e[:-1] + e[1:]) / 2
    if len(e) >= 2 and ref.max is not None:
        inner[-1] = (e[-2] + ref.max) / 2  # last interior bin is [e, max]
    return inner


def representative_points(ref: NumericReference, win: NumericWindow) -> np.ndarray:
    """Where each bin's mass sits for Wasserstein: tails at the window's tail means."""
    lo, hi = win.tail_mean(0), win.tail_mean(1)
    lo = lo if lo is not None else (ref.min if ref.min is not None else 0.0)
    hi = hi if hi is not None else (ref.max if ref.max is not None else 0.0)
    return np.concatenate([[lo], _inner_points(ref), [hi]])


def _wasserstein(points: np.ndarray, d: np.ndarray) -> float:
    return float(np.sum(np.abs(d[:-1]) * np.diff(points)))


def wasserstein_binned(points: np.ndarray, ref_counts: np.ndarray, win_counts: np.ndarray) -> float:
    """W1 between the two histograms with masses at sorted ``points`` (raw units)."""
    d = np.cumsum(_proportions(ref_counts)) - np.cumsum(_proportions(win_counts))
    return _wasserstein(points, d)


@dataclasses.dataclass(frozen=True)
class _RefTerms:
    """What scoring needs from one reference feature, computed once per reference
    (the same arithmetic as the public functions, so scores are unchanged)."""

    p: np.ndarray
    smoothed: np.ndarray
    cdf: np.ndarray
    inner: np.ndarray | None

    @classmethod
    def of(cls, ref: Any) -> _RefTerms:
        terms = ref.__dict__.get("_score_terms")
        if terms is None:
            p = _proportions(ref.counts)
            inner = _inner_points(ref) if isinstance(ref, NumericReference) else None
            terms = cls(p, _smoothed(p, PSI_EPS), np.cumsum(p), inner)
            object.__setattr__(ref, "_score_terms", terms)
        return terms


def regularized_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x)/Γ(a): series for x < a + 1, else Lentz's continued fraction."""
    if x <= 0:
        return 1.0
    log_pref = -x + a * math.log(x)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-17:
                break
        return max(0.0, 1.0 - total * math.exp(log_pref - math.lgamma(a)))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return math.exp(log_pref - math.lgamma(a)) * h


def chi2_sf(stat: float, dof: int) -> float:
    """Chi-square survival function P(X > stat), X ~ χ²(dof).

    Examples:
        >>> round(chi2_sf(3.841458820694124, 1), 6)
        0.05
    """
    return regularized_gamma_q(dof / 2, stat / 2)


def chi2_pvalue(ref_counts: np.ndarray, win_counts: np.ndarray) -> float:
    """Homogeneity test p-value of the 2×K contingency table (no Yates correction)."""
    t = np.vstack([ref_counts, win_counts]).astype(np.float64)
    t = t[:, t.sum(axis=0) > 0]
    if t.shape[1] < 2 or (t.sum(axis=1) == 0).any():
        return 1.0 if t.shape[1] < 2 else _NAN
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / t.sum()
    stat = float(((t - expected) ** 2 / expected).sum())
    return chi2_sf(stat, t.shape[1] - 1)


def score_feature(ref: Any, win: Any, missing_rate_delta: float = 0.0) -> FeatureScores:
    """Scores of one feature: ``ref`` a Numeric/CategoricalReference, ``win`` its window."""
    numeric = isinstance(ref, NumericReference)
    n = win.n
    if n == 0 or ref.n == 0:
        return FeatureScores(
            _NAN,
            _NAN,
            _NAN if numeric else None,
            _NAN if numeric else None,
            None if numeric else _NAN,
            missing_rate_delta,
            n,
        )
    rc, wc = ref.counts, win.counts
    terms, q = _RefTerms.of(ref), _proportions(wc)
    if not numeric:
        return FeatureScores(
            _psi(terms.smoothed, q, PSI_EPS), _js(terms.p, q), None, None, chi2_pvalue(rc, wc), missing_rate_delta, n
        )
    d = terms.cdf - np.cumsum(q)
    lo, hi = win.tail_mean(0), win.tail_mean(1)
    lo = lo if lo is not None else (ref.min if ref.min is not None else 0.0)
    hi = hi if hi is not None else (ref.max if ref.max is not None else 0.0)
    w = _wasserstein(np.concatenate([[lo], terms.inner, [hi]]), d)
    scale = ref.std if ref.std else 1.0
    return FeatureScores(
        _psi(terms.smoothed, q, PSI_EPS),
        _js(terms.p, q),
        float(np.abs(d).max()),
        w / scale,
        None,
        missing_rate_delta,
        n,
    )


def score_window(reference: ReferenceProfile, window: WindowProfile) -> dict[str, FeatureScores]:
    """Scores of every reference feature; the window must be built on ``reference``.

    Numeric features with values on both sides are scored together, a group of features
    with the same number of bins at a time (`_score_numeric`): the arithmetic of
    `score_feature` on (features × bins) arrays, so the scores are the same bit for bit
    and a window of 20 features costs one set of numpy calls instead of twenty.
    """
    if window.reference.fingerprint != reference.fingerprint:
        raise ValueError("window profile was built on a different reference")
    out: dict[str, FeatureScores | None] = {}
    groups: dict[int, list[str]] = {}
    for name, ref in reference.features.items():
        win = window.features[name]
        if isinstance(ref, NumericReference) and ref.n and win.n:
            groups.setdefault(len(ref.counts), []).append(name)
            out[name] = None  # keeps the reference's order
        else:
            out[name] = score_feature(ref, win, window.missing_rate(name) - reference.missing_rate(name))
    for names in groups.values():
        out.update(zip(names, _score_numeric(reference, window, names)))
    return out  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class _GroupTerms:
    """`_RefTerms` of numeric features with the same number of bins, stacked."""

    p: np.ndarray
    smoothed: np.ndarray
    cdf: np.ndarray
    inner: np.ndarray
    lo: list[float]
    hi: list[float]
    scale: list[float]

    @classmethod
    def of(cls, reference: ReferenceProfile, names: tuple[str, ...]) -> _GroupTerms:
        return reference.derived("score_terms", names, lambda: cls._build(reference, names))

    @classmethod
    def _build(cls, reference: ReferenceProfile, names: tuple[str, ...]) -> _GroupTerms:
        refs = [cast(NumericReference, reference.features[name]) for name in names]  # numeric groups only
        each = [_RefTerms.of(ref) for ref in refs]
        p, smoothed, cdf, inner = (
            np.array([getattr(t, field) for t in each]) for field in ("p", "smoothed", "cdf", "inner")
        )
        return cls(
            p,
            smoothed,
            cdf,
            inner,
            [r.min if r.min is not None else 0.0 for r in refs],
            [r.max if r.max is not None else 0.0 for r in refs],
            [r.std if r.std else 1.0 for r in refs],
        )


def _score_numeric(reference: ReferenceProfile, window: WindowProfile, names: list[str]) -> list[FeatureScores]:
    """`score_feature` of numeric features with the same number of bins, each with
    values in the reference and in the window, as whole-array operations."""
    terms = _GroupTerms.of(reference, tuple(names))
    wins: list[NumericWindow] = [window.features[name] for name in names]  # type: ignore[misc]
    counts = np.array([w.counts for w in wins], dtype=np.float64)
    q = counts / counts.sum(axis=1)[:, None]
    bins = counts.shape[1]
    smoothed = (q + PSI_EPS) / (1 + bins * PSI_EPS)
    psi = np.sum((smoothed - terms.smoothed) * np.log(smoothed / terms.smoothed), axis=1)
    p = terms.p
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=1)
        kq = np.where(q > 0, q * np.log2(q / m), 0.0).sum(axis=1)
    d = terms.cdf - np.cumsum(q, axis=1)
    ks = np.abs(d).max(axis=1)
    lo = [w.tail_mean(0) for w in wins]
    hi = [w.tail_mean(1) for w in wins]
    points = np.concatenate(
        [
            np.array([x if x is not None else y for x, y in zip(lo, terms.lo)])[:, None],
            terms.inner,
            np.array([x if x is not None else y for x, y in zip(hi, terms.hi)])[:, None],
        ],
        axis=1,
    )
    w1 = np.sum(np.abs(d[:, :-1]) * np.diff(points, axis=1), axis=1)
    return [
        FeatureScores(
            float(psi[f]),
            float(min(max((kp[f] + kq[f]) / 2, 0.0), 1.0) ** 0.5),
            float(ks[f]),
            float(w1[f]) / terms.scale[f],
            None,
            window.missing_rate(name) - reference.missing_rate(name),
            wins[f].n,
        )
        for f, name in enumerate(names)
    ]

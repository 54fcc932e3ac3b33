"""Thresholds calibrated from the reference so that false alarms stay rare for the whole model.

Why: with 20 features, 3 metrics and a window a minute, a fixed PSI threshold fires
many times a day on a perfectly stationary stream, and the rate depends on the window
size (small windows are noisy). Instead the policy asks for a *mean time between false
alarms* for the model and this module turns that into a threshold per
(feature, metric, window size):

1. ``window_alpha`` — the per-window probability ``p`` that any test breaches, such that
   ``k`` consecutive breaching windows (the persistence rule) happen on average once in
   ``mean_windows`` windows of a stationary stream: ``(1 - p^k) / ((1 - p) p^k) = M``.
   (Tumbling windows are disjoint, so under no drift they are independent — the same
   run-length reasoning as Alibi Detect's expected-run-time calibration, done in closed
   form because our windows do not overlap.)
2. Bonferroni over the model's tests: ``alpha = p / n_tests``; valid whatever the
   dependence between features.
3. The null distribution of each statistic at the window's size ``n`` is simulated
   *conditionally on the actual reference*, because every window of the stream is
   scored against that one reference: a reference that happens to be unrepresentative
   makes false alarms cluster, which an average over hypothetical references would
   hide. Both sampling errors are still there — the reference's, as the posterior of
   the true bin masses given its counts (Dirichlet, Jeffreys' half count; a whole count
   for bins empty by construction such as the under/overflow bins), and the window's,
   as a multinomial draw of ``n`` rows from those masses (the Dirichlet–multinomial
   posterior predictive). Each draw is scored against the reference's real counts with
   the formulas of ``stream.scores``.
4. ``alpha`` is far in the tail (1e-5 and below), beyond what a few thousand
   simulations reach, so the quantile is extrapolated with an exponential tail fitted to
   the top ``tail_fraction`` of the simulations (peaks over threshold, GPD shape 0).
   Statistics here have chi-square- or Gaussian-like tails, which decay at least that
   fast, so the extrapolation errs on the side of higher thresholds (fewer false alarms).

Everything is seeded per (seed, feature, metric set, n): the thresholds are the same on
every worker and after every restart.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = [
    "CALIBRATED_METRICS",
    "FeatureNull",
    "calibrate_feature",
    "clear_cache",
    "nulls_from_reference",
    "simulate_null",
    "size_bucket",
    "tail_quantile",
    "window_alpha",
]

EPS = 1e-4
"""PSI smoothing, as ``stream.scores.PSI_EPS``: ``p <- (p + eps) / (1 + B eps)``."""


@dataclasses.dataclass(frozen=True)
class FeatureNull:
    """What calibration needs from one feature's reference: its bin counts and missing count.

    ``counts`` are the reference counts per bin of present values (ordered for numeric
    features, so the binned KS statistic means something); ``missing`` the rows where the
    feature was null.
    """

    counts: np.ndarray
    missing: int
    ordered: bool = True

    @property
    def n(self) -> int:
        """Reference rows for this feature (present + missing)."""
        return int(np.sum(self.counts)) + int(self.missing)

    @classmethod
    def from_reference(cls, feature: Any) -> FeatureNull:
        """From a ``NumericReference``/``CategoricalReference`` of ``stream.reference``."""
        ordered = getattr(getattr(feature, "type", None), "value", "") == "numeric"
        return cls(np.asarray(feature.counts, dtype=np.int64), int(feature.missing), ordered)


def nulls_from_reference(reference: Any) -> dict[str, FeatureNull]:
    """``FeatureNull`` of every feature of a ``ReferenceProfile``."""
    return {name: FeatureNull.from_reference(f) for name, f in reference.features.items()}


def window_alpha(mean_windows: float, consecutive: int) -> float:
    """Per-window breach probability ``p`` giving mean run length ``mean_windows`` to ``k`` in a row.

    Examples
    --------
    >>> round(window_alpha(1000, 1), 6)
    0.001
    >>> p = window_alpha(100_000, 2); round(p, 5)
    0.00317
    >>> round((1 - p**2) / ((1 - p) * p**2))
    100000
    """
    if mean_windows <= 1:
        return 1.0
    k = int(consecutive)

    def run_length(p: float) -> float:
        return (1 - p**k) / ((1 - p) * p**k)

    lo, hi = 1e-300 ** (1 / k), 1.0 - 1e-12
    for _ in range(200):
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 2
        if run_length(mid) > mean_windows:
            lo = mid
        else:
            hi = mid
    return hi


def tail_quantile(values: np.ndarray, alpha: float, tail_fraction: float = 0.05) -> float:
    """The ``1 - alpha`` quantile of ``values``' distribution, extrapolating beyond the sample.

    Empirical when ``alpha >= tail_fraction``; otherwise ``u + beta * ln(tail_fraction /
    alpha)`` with ``u`` the empirical ``1 - tail_fraction`` quantile and ``beta`` the mean
    excess over ``u`` (the maximum-likelihood exponential tail).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.exponential(1.0, 20_000)
    >>> abs(tail_quantile(x, 1e-6) - math.log(1e6)) < 1.0
    True
    """
    values = np.asarray(values, dtype=np.float64)
    if alpha >= tail_fraction:
        return float(np.quantile(values, 1 - alpha))
    u = float(np.quantile(values, 1 - tail_fraction))
    excess = values[values > u] - u
    beta = float(excess.mean()) if len(excess) else 0.0
    if beta <= 0:
        return float(values.max())
    return u + beta * math.log(tail_fraction / alpha)


def _proportions(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=-1, keepdims=True)
    return counts / np.maximum(totals, 1)


def _psi(ref: np.ndarray, win: np.ndarray) -> np.ndarray:
    bins = ref.shape[-1]
    r = (_proportions(ref) + EPS) / (1 + bins * EPS)
    w = (_proportions(win) + EPS) / (1 + bins * EPS)
    return np.sum((w - r) * np.log(w / r), axis=-1)


def _js_distance(ref: np.ndarray, win: np.ndarray) -> np.ndarray:
    r = _proportions(ref)
    w = _proportions(win)
    m = (r + w) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_r = np.where(r > 0, r * np.log2(r / m), 0.0).sum(axis=-1)
        kl_w = np.where(w > 0, w * np.log2(w / m), 0.0).sum(axis=-1)
    return np.sqrt(np.clip((kl_r + kl_w) / 2, 0.0, 1.0))


def _ks(ref: np.ndarray, win: np.ndarray) -> np.ndarray:
    diff = np.cumsum(_proportions(win) - _proportions(ref), axis=-1)
    return np.max(np.abs(diff), axis=-1)


Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]
_BINNED: dict[str, Statistic] = {"psi": _psi, "js_distance": _js_distance, "ks": _ks}
CALIBRATED_METRICS = (*_BINNED, "missing_rate_delta")
"""Metrics whose null distribution ``simulate_null`` can draw (all grow with drift)."""


def _posterior(counts: np.ndarray) -> np.ndarray:
    """Dirichlet parameters for the true bin masses given the reference's counts.

    Jeffreys' half count per bin, and a whole count for bins the reference left empty:
    the under/overflow bins around the reference's min and max are empty *by
    construction*, and a new draw lands beyond the extremes of ``N`` with probability
    ``1 / (N + 1)``, which a whole count reproduces.
    """
    return np.where(counts > 0, counts + 0.5, 1.0)


def simulate_null(
    null: FeatureNull,
    n_window: int,
    metrics: Iterable[str],
    samples: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """``samples`` draws of each metric between *this* reference and a stationary window.

    Each draw takes true bin masses (and a true missing rate) from their posterior given
    the reference's counts, then a window of ``n_window`` rows from them, and scores it
    against the reference's actual counts — the way the live monitor scores every window
    against one fixed reference. Binned metrics compare present values only, as
    ``stream.scores`` does; ``missing_rate_delta`` is the absolute difference of the
    missing rates.
    """
    counts = np.asarray(null.counts, dtype=np.float64)
    present = counts.sum()
    total = present + null.missing
    p_missing = rng.beta(_posterior(np.array([null.missing]))[0], present + 0.5, samples)
    win_missing = rng.binomial(n_window, p_missing)
    win_counts: np.ndarray
    if len(counts):
        masses = rng.dirichlet(_posterior(counts), samples)
        win_counts = rng.multinomial(n_window - win_missing, masses)
    else:
        win_counts = np.zeros((samples, 0))
    ref_counts = counts[None, :]
    out: dict[str, np.ndarray] = {}
    for metric in metrics:
        if metric == "missing_rate_delta":
            out[metric] = np.abs(win_missing / max(n_window, 1) - null.missing / max(total, 1))
        elif metric == "ks" and not null.ordered:
            continue
        else:
            out[metric] = _BINNED[metric](ref_counts, win_counts)
    return out


def _seed(seed: int, feature: str, n_window: int) -> int:
    return zlib.crc32(f"{seed}:{feature}:{n_window}".encode())


def calibrate_feature(
    feature: str,
    null: FeatureNull,
    n_window: int,
    metrics: Iterable[str],
    alpha: float,
    samples: int = 4000,
    seed: int = 0,
) -> dict[str, float]:
    """Threshold per metric for ``feature`` at window size ``n_window`` and per-test ``alpha``.

    Examples
    --------
    >>> null = FeatureNull(np.full(10, 600), missing=60)
    >>> small = calibrate_feature("x", null, 300, ["psi"], alpha=1e-5)["psi"]
    >>> large = calibrate_feature("x", null, 6000, ["psi"], alpha=1e-5)["psi"]
    >>> small > large > 0       # small windows are noisier: higher threshold
    True
    """
    wanted = tuple(sorted(set(metrics)))
    key = (
        feature,
        np.asarray(null.counts, dtype=np.float64).tobytes(),
        int(null.missing),
        bool(null.ordered),
        int(n_window),
        wanted,
        float(alpha),
        int(samples),
        int(seed),
    )
    cached = _CACHE.get(key)
    if cached is None:
        rng = np.random.default_rng(_seed(seed, feature, n_window))
        draws = simulate_null(null, n_window, list(wanted), samples, rng)
        cached = {metric: tail_quantile(values, alpha) for metric, values in draws.items()}
        _CACHE[key] = cached
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return dict(cached)


_CACHE: OrderedDict[tuple, dict[str, float]] = OrderedDict()
"""``calibrate_feature`` results by everything they depend on (LRU). The policy already
caches thresholds per feature and size bucket for one monitor; this shares them between
monitors and runs in one process — models scored against the same reference (replicas,
shards, a replay run again), and a monitor rebuilt or re-referenced to a profile seen
before — since a calibration (thousands of seeded multinomial draws) is the most costly
step of a window close."""
_CACHE_SIZE = 4096


def clear_cache() -> None:
    """Forget cached calibrations (tests and benchmarks measuring the cold cost)."""
    _CACHE.clear()


def size_bucket(n: int, ratio: float = 1.25) -> int:
    """The calibration size for a window of ``n`` rows: the power of ``ratio`` at or below ``n``.

    Thresholds fall as ``n`` grows, so calibrating at the bucket's lower end is the
    conservative side; consecutive buckets differ by ``ratio``, so the cache stays small.

    Examples
    --------
    >>> [size_bucket(n) for n in (1, 300, 301, 6000)]
    [1, 264, 264, 4814]
    """
    if n <= 1:
        return 1
    exponent = math.floor(math.log(n) / math.log(ratio) + 1e-9)
    return max(1, int(ratio**exponent))

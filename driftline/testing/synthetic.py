"""Seeded synthetic event streams for detection tests, benchmarks and the demo.

Each function returns raw event dicts (the contracts in ``schemas/``) in arrival order;
``to_jsonl`` turns them into the lines ``driftline replay`` reads. Streams are fully
determined by their arguments: the same seed gives the same bytes.

Features: ``x0..x{n-1}`` numeric (feature ``i`` ~ Normal(i, 1 + i/10), missing with
probability ``missing_rate``) and ``c0..`` categorical (fixed skewed frequencies).
Events are ``rate`` per second from ``start_ts`` with a little jitter, so they are
slightly out of order (well within the default allowed lateness).

Examples
--------
>>> events = with_mean_shift(1000, change_at=500, feature="x3", rate=10.0)
>>> len(events), sorted(events[0])
(1000, ['event_id', 'features', 'model_id', 'ts'])
>>> events[0] == stationary_events(1000, rate=10.0)[0]
True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import orjson

__all__ = [
    "CATEGORIES",
    "START_TS",
    "stationary_events",
    "to_jsonl",
    "with_concept_drift",
    "with_mean_shift",
    "with_missing_rate",
    "with_new_category",
    "with_variance_change",
]

START_TS = 1_764_158_400.0
CATEGORIES = (
    (("a", "b", "c", "d", "e"), (0.4, 0.25, 0.15, 0.12, 0.08)),
    (("web", "ios", "android"), (0.5, 0.3, 0.2)),
)

Mutator = Callable[[np.random.Generator, np.ndarray, list[np.ndarray], np.ndarray], None]


def _columns(n: int, n_numeric: int, n_categorical: int, missing_rate: float, rng: np.random.Generator):
    means = np.arange(n_numeric, dtype=np.float64)
    stds = 1.0 + np.arange(n_numeric) / 10.0
    numeric = rng.normal(means, stds, size=(n, n_numeric))
    numeric[rng.random((n, n_numeric)) < missing_rate] = np.nan
    categorical = []
    for j in range(n_categorical):
        names, probs = CATEGORIES[j % len(CATEGORIES)]
        categorical.append(np.asarray(names, dtype=object)[rng.choice(len(names), size=n, p=probs)])
    return numeric, categorical


def _timestamps(n: int, rate: float, start_ts: float, jitter_s: float, rng: np.random.Generator) -> np.ndarray:
    base = start_ts + np.arange(n) / rate
    return np.round(base + rng.uniform(-jitter_s, jitter_s, n), 6) if jitter_s else base


def _events(
    n: int,
    *,
    rate: float = 100.0,
    n_numeric: int = 20,
    n_categorical: int = 2,
    missing_rate: float = 0.01,
    seed: int = 0,
    model_id: str = "synthetic",
    start_ts: float = START_TS,
    jitter_s: float = 0.2,
    mutate: Mutator | None = None,
) -> list[dict]:
    rng = np.random.default_rng(seed)
    numeric, categorical = _columns(n, n_numeric, n_categorical, missing_rate, rng)
    ts = _timestamps(n, rate, start_ts, jitter_s, rng)
    if mutate is not None:
        mutate(np.random.default_rng(seed + 1), numeric, categorical, ts)
    names = [f"x{i}" for i in range(n_numeric)] + [f"c{j}" for j in range(n_categorical)]
    rows = np.empty((n, len(names)), dtype=object)
    rows[:, :n_numeric] = np.where(np.isnan(numeric), None, numeric.astype(object))
    for j, col in enumerate(categorical):
        rows[:, n_numeric + j] = col
    ts_list = ts.tolist()
    return [
        {"model_id": model_id, "event_id": f"e{i}", "ts": ts_list[i], "features": dict(zip(names, row))}
        for i, row in enumerate(rows.tolist())
    ]


def stationary_events(n: int, **kw) -> list[dict]:
    """``n`` feature events from one unchanging distribution."""
    return _events(n, **kw)


def _index(feature: str) -> int:
    return int(feature[1:])


def with_mean_shift(n: int, change_at: int, feature: str = "x0", shift_sigma: float = 0.5, **kw) -> list[dict]:
    """From event ``change_at`` on, ``feature``'s mean moves by ``shift_sigma`` of its std."""
    i = _index(feature)

    def mutate(rng, numeric, categorical, ts):
        numeric[change_at:, i] += shift_sigma * (1.0 + i / 10.0)

    return _events(n, mutate=mutate, **kw)


def with_variance_change(n: int, change_at: int, feature: str = "x0", factor: float = 2.0, **kw) -> list[dict]:
    """From ``change_at`` on, ``feature``'s variance is multiplied by ``factor`` (mean kept)."""
    i = _index(feature)

    def mutate(rng, numeric, categorical, ts):
        numeric[change_at:, i] = i + (numeric[change_at:, i] - i) * np.sqrt(factor)

    return _events(n, mutate=mutate, **kw)


def with_new_category(
    n: int, change_at: int, feature: str = "c0", share: float = 0.2, category: str = "new", **kw
) -> list[dict]:
    """From ``change_at`` on, a never-seen ``category`` takes ``share`` of ``feature``'s values."""
    j = _index(feature)

    def mutate(rng, numeric, categorical, ts):
        hit = rng.random(n - change_at) < share
        categorical[j][change_at:][hit] = category

    return _events(n, mutate=mutate, **kw)


def with_missing_rate(n: int, change_at: int, feature: str = "x0", rate_after: float = 0.3, **kw) -> list[dict]:
    """From ``change_at`` on, ``feature`` is missing with probability ``rate_after``."""
    i = _index(feature)

    def mutate(rng, numeric, categorical, ts):
        numeric[change_at:, i][rng.random(n - change_at) < rate_after] = np.nan

    return _events(n, mutate=mutate, **kw)


def with_concept_drift(
    n: int,
    change_at: int,
    label_delay: int = 200,
    noise: float = 0.05,
    model_version: str = "1.0.0",
    **kw,
) -> list[dict]:
    """Predictions (with inline features) plus labels arriving ``label_delay`` events later.

    The label is ``x0 + x1 > 1`` (flipped with probability ``noise``) before ``change_at``
    and ``x0 - x1 > -1`` after; predictions keep following the old rule, and feature
    distributions never change, so only the performance signal can see the drift.
    """
    features = _events(n, **kw)
    rng = np.random.default_rng(kw.get("seed", 0) + 2)
    x = np.array([[e["features"]["x0"] or 0.0, e["features"]["x1"] or 1.0] for e in features])
    old = x[:, 0] + x[:, 1] > 1.0
    new = x[:, 0] - x[:, 1] > -1.0
    truth = np.where(np.arange(n) < change_at, old, new) ^ (rng.random(n) < noise)
    score = 1.0 / (1.0 + np.exp(-(x[:, 0] + x[:, 1] - 1.0) * 2.0))
    out: list[dict] = []
    for i, event in enumerate(features):
        out.append(
            {**event, "model_version": model_version, "prediction": int(old[i]), "score": round(float(score[i]), 6)}
        )
        j = i - label_delay
        if j >= 0:
            out.append(_label(features[j], bool(truth[j]), event["ts"]))
    for j in range(max(0, n - label_delay), n):
        out.append(_label(features[j], bool(truth[j]), features[-1]["ts"]))
    return out


def _label(event: dict, label: bool, ts: float) -> dict:
    return {"model_id": event["model_id"], "event_id": event["event_id"], "ts": ts, "label": int(label)}


def to_jsonl(events: list[dict]) -> bytes:
    """One JSON object per line, as ``driftline replay`` reads them."""
    return b"".join(orjson.dumps(e) + b"\n" for e in events)

"""Choose the retrain's training window and learner by validation on the newest post-drift rows.

After a concept change the rows before the drift teach the old rule, and validating on the
newest 20 % of *all* rows (mostly pre-drift) rewards exactly that. So the validation rows
are the newest rows **after the drift start** (a time-ordered split inside them), and
several training windows — all strictly older than those rows — compete on them:

- ``since_drift``: rows since the drift start (only with one, >= ``MIN_WINDOW_ROWS`` rows and,
  for classifiers, at least two classes);
- ``last_n``: the newest ``max_rows`` rows, drift or not;
- ``latest``: the newest quarter of the post-drift rows (of all rows without a drift start),
  at least ``LATEST_MIN_ROWS``: the present when the concept keeps moving (gradual drift);
- ``recent_weighted``: every row, weights halving every *h* rows back (*h* = the post-drift
  row count, or a quarter of the rows without a drift start).

The first (simplest) learner is fitted on every window and scored on the same rows; the
window with the best proper score wins — log-loss for classifiers (accuracy breaking ties;
it tells a window that is confidently wrong on part of the newest rows from one that is
not, where accuracy alone often cannot), MAE for regression — unless a window with more
rows is not significantly worse, which then wins (more data, same fit: within
``SAME_WITHIN_Z`` standard errors of the per-row log-loss). The
other learners are fitted on that window only and win only when significantly better
(``SIGNIFICANT_Z``); ready-made models in ``extra`` (say an online challenger) are scored
on the same rows and win on the plain score. The winner is not refitted on the validation rows: the
gate judges it on them, and must not judge a model that saw them.

Examples
--------
>>> import random
>>> rng = random.Random(0)
>>> rows = []
>>> for i in range(1200):
...     x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
...     rows.append({"ts": float(i), "event_id": str(i), "features": x,
...                  "label": (x["a"] + x["b"] if i < 800 else x["a"] - x["b"]) > 0})
>>> sel = choose_candidate(rows, task="binary", features=["a", "b"], drift_start=800.0,
...                        validation_fraction=0.25, min_validation_rows=100, learners=["logistic"], max_rows=1000)
>>> sel.window, sel.validation["n"], sel.validation["ts_from"] >= 800, sel.metrics["accuracy"] > 0.9
('since_drift', 100, True, True)
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from driftline.consumers.registry.validation_gate import beats_baseline
from driftline.consumers.training.batch_learners import BatchModel, target
from driftline.consumers.training.evaluation import baseline_metrics, evaluate, row_errors

__all__ = [
    "LATEST_MIN_ROWS",
    "MIN_WINDOW_ROWS",
    "SAME_WITHIN_Z",
    "SIGNIFICANT_Z",
    "Selection",
    "Window",
    "choose_candidate",
    "gain_z",
    "training_windows",
    "validation_split",
    "validation_summary",
]

Row = Mapping[str, Any]

#: A window with fewer rows is not trained on (too little to fit, too noisy to compare).
MIN_WINDOW_ROWS = 20
#: ``latest`` holds the newest quarter of the post-drift rows, but at least this many.
LATEST_MIN_ROWS = 200


@dataclass(frozen=True)
class Selection:
    """The winning model and how it won; all but ``model`` and ``validation_rows`` is JSON-able summary."""

    model: Any
    window: str
    learner: str
    metrics: dict[str, float]
    trials: list[dict[str, Any]]
    validation: dict[str, Any]
    validation_rows: list[Row] = field(repr=False, compare=False, default_factory=list)
    """The rows every trial was scored on: judge the champion and the baseline on these."""

    def to_dict(self) -> dict[str, Any]:
        """What a version's record keeps of the choice."""
        return {
            "window": self.window,
            "learner": self.learner,
            "metrics": self.metrics,
            "trials": self.trials,
            "validation": self.validation,
        }


@dataclass(frozen=True)
class Window:
    """A training window: ``rows`` (a slice of the older rows), optional ``weights``, a summary."""

    name: str
    start: int
    """Index of the window's first row among the older rows (with ``len(rows)``, its identity)."""
    rows: list[Row]
    weights: list[float] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _first_at_or_after(rows: Sequence[Row], ts: float) -> int:
    return bisect_left(rows, ts, key=lambda r: float(r["ts"]))


def validation_split(
    rows: Sequence[Row],
    *,
    drift_start: float | None,
    validation_fraction: float,
    min_validation_rows: int,
    unseen_after: float | None = None,
) -> tuple[list[Row], list[Row], float | None]:
    """(older rows, validation rows, the drift start used) for time-ordered ``rows``.

    Validation: the newest ``validation_fraction`` of the rows at or after ``drift_start``
    (of all rows without one), raised to ``min_validation_rows`` but never above half of
    them. Too few post-drift rows to hold any out → the split of all rows (drift start None).
    Rows sharing the cut's timestamp go to validation, so every older row is strictly older.
    ``unseen_after`` (the newest row a ready-made candidate learned from): when the split
    would validate on rows it saw and at least ``min_validation_rows`` post-drift rows are
    newer, validation is those rows only, so every candidate is judged on rows none saw.
    """
    start = 0 if drift_start is None else _first_at_or_after(rows, drift_start)
    pool = len(rows) - start
    n_valid = min(max(round(pool * validation_fraction), min_validation_rows), pool // 2)
    if n_valid < 1:
        if drift_start is not None:
            return validation_split(
                rows,
                drift_start=None,
                validation_fraction=validation_fraction,
                min_validation_rows=min_validation_rows,
                unseen_after=unseen_after,
            )
        return list(rows), [], None
    cut = len(rows) - n_valid
    while cut > 1 and float(rows[cut - 1]["ts"]) >= float(rows[cut]["ts"]):
        cut -= 1
    if unseen_after is not None and float(rows[cut]["ts"]) <= unseen_after:
        unseen = bisect_right(rows, unseen_after, key=lambda r: float(r["ts"]))
        if unseen > start and len(rows) - unseen >= max(min_validation_rows, 1):
            cut = unseen
    return list(rows[:cut]), list(rows[cut:]), drift_start


def _classes_ok(rows: Sequence[Row], task: str) -> bool:
    return task == "regression" or len({target(task, r["label"]) for r in rows}) >= 2


def _span(rows: Sequence[Row]) -> dict[str, Any]:
    return {
        "n_train": len(rows),
        "ts_from": float(rows[0]["ts"]) if rows else None,
        "ts_to": float(rows[-1]["ts"]) if rows else None,
    }


def training_windows(
    older: Sequence[Row], *, task: str, drift_start: float | None, max_rows: int
) -> tuple[list[Window], list[dict[str, Any]]]:
    """The candidate windows over ``older`` rows, and a trial record for each one skipped."""
    windows: list[Window] = []
    skipped: list[dict[str, Any]] = []
    since = _first_at_or_after(older, drift_start) if drift_start is not None else len(older)
    if drift_start is not None:
        windows.append(Window("since_drift", since, list(older[since:]), None, {"drift_start": drift_start}))
    else:
        skipped.append({"window": "since_drift", "skipped": "no drift start"})
    last = max(0, len(older) - max_rows)
    windows.append(Window("last_n", last, list(older[last:]), None, {"max_rows": max_rows}))
    n_post = len(older) - since
    pool = n_post if drift_start is not None else len(older)
    n_latest = min(pool, max(LATEST_MIN_ROWS, pool // 4))
    latest = len(older) - n_latest
    windows.append(Window("latest", latest, list(older[latest:]), None, {"rows": n_latest}))
    half_life = float(max(n_post, MIN_WINDOW_ROWS) if drift_start is not None else max(len(older) / 4, 1.0))
    weights = [0.5 ** ((len(older) - 1 - i) / half_life) for i in range(len(older))]
    windows.append(Window("recent_weighted", 0, list(older), weights, {"half_life_rows": round(half_life, 3)}))
    kept: list[Window] = []
    seen: dict[tuple[int, int, bool], str] = {}
    for w in windows:
        ident = (w.start, len(w.rows), w.weights is not None)
        reason = None
        if len(w.rows) < MIN_WINDOW_ROWS:
            reason = f"{len(w.rows)} rows < {MIN_WINDOW_ROWS}"
        elif not _classes_ok(w.rows, task):
            reason = "one class only"
        elif ident in seen:
            reason = f"same rows as {seen[ident]}"
        if reason:
            skipped.append({"window": w.name, **_span(w.rows), "skipped": reason})
        else:
            seen[ident] = w.name
            kept.append(w)
    return kept, skipped


def _rank(metrics: Mapping[str, float], task: str) -> tuple[float, ...]:
    """Lower is better: log-loss (a proper score) for classifiers, accuracy breaking ties; MAE for regression."""
    if task == "regression":
        return (metrics.get("mae", math.inf),)
    return (metrics.get("log_loss", math.inf), -metrics.get("accuracy", -math.inf))


def choose_candidate(
    rows: Sequence[Row],
    *,
    task: str,
    features: Sequence[str],
    drift_start: float | None,
    validation_fraction: float,
    min_validation_rows: int,
    learners: Sequence[str],
    max_rows: int,
    params: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Selection:
    """Pick the window with the first (simplest) learner, then let the others challenge it there.

    ``learners[0]`` is fitted on every window and the best-scoring window wins; every other
    learner is fitted on that window only and replaces the simple model only when it is
    *more accurate* on the validation rows, significantly (paired per-row 0/1 errors, mean
    gain above ``SIGNIFICANT_Z`` standard errors): on a step-shaped concept with label
    noise a tree ensemble's log-loss beats a logistic regression's while its staircase
    boundary is less accurate, and it costs ~0.5 ms a prediction against ~3 µs. Ready-made
    models in
    ``extra`` are judged last, on the plain score — unless one learned from the validation
    rows (``trained_until``, the event time of the newest row it saw, at or after the
    first validation row): an online model scored on rows it has learned looks better
    than it is. Raises ``ValueError`` (listing every
    trial) when no candidate could be fitted at all.
    """
    seen_until = [
        float(t)
        for t in (getattr(m, "trained_until", None) for m in (extra or {}).values())
        if isinstance(t, (int, float))
    ]
    older, valid, used_start = validation_split(
        rows,
        drift_start=drift_start,
        validation_fraction=validation_fraction,
        min_validation_rows=min_validation_rows,
        unseen_after=max(seen_until) if seen_until else None,
    )
    if not valid:
        raise ValueError(f"no validation rows among {len(rows)} rows")
    windows, trials = training_windows(older, task=task, drift_start=used_start, max_rows=max_rows)
    fitted: list[tuple[Window, _Best]] = []
    for window in windows:
        judged = _judge(
            _fit(window, learners[0], task, features, params, trials), window, learners[0], valid, task, trials, None
        )
        if judged is not None:
            fitted.append((window, judged))
    best_window, best = _most_data_not_worse(fitted, valid, task, baseline_metrics(valid, task))
    for learner in learners[1:]:
        if best is None or best_window is None:
            break
        model = _fit(best_window, learner, task, features, params, trials)
        if model is None:
            continue
        trial = _trial(best_window, learner)
        trial["metrics"] = evaluate(model, valid, task)
        trial["gain_z"] = round(gain_z(model, best[1], valid, task), 3)
        trials.append(trial)
        if trial["gain_z"] >= SIGNIFICANT_Z:
            best = (_rank(trial["metrics"], task), model, trial)
    for name, model in (extra or {}).items():
        seen = getattr(model, "trained_until", None)
        if seen is not None and float(valid[0]["ts"]) <= seen:
            trials.append(
                {
                    "window": "extra",
                    "learner": name,
                    "skipped": "it learned from the validation rows "
                    f"(trained until {seen}, validation from {valid[0]['ts']})",
                }
            )
            continue
        best = _judge(model, None, name, valid, task, trials, best)
    if best is None:
        raise ValueError(f"no candidate could be trained: {trials}")
    _, model, won = best
    return Selection(
        model, won["window"], won["learner"], won["metrics"], trials, validation_summary(valid, used_start), valid
    )


_Best = tuple[tuple[float, ...], Any, dict[str, Any]]

#: How many standard errors of the paired per-row loss a more complex learner must gain by.
SIGNIFICANT_Z = 2.0
#: A window with more rows wins when it is behind the best by less than this many standard
#: errors (the one-standard-error rule); further behind, the best window keeps its lead.
SAME_WITHIN_Z = 1.0


def _effective_rows(window: Window) -> float:
    """Rows a window is worth: its count, or (Σw)²/Σw² for weighted rows."""
    if window.weights is None:
        return float(len(window.rows))
    total, squares = sum(window.weights), sum(w * w for w in window.weights)
    return total * total / squares if squares else 0.0


def _most_data_not_worse(
    fitted: list[tuple[Window, _Best]], valid: Sequence[Row], task: str, baseline: Mapping[str, float]
) -> tuple[Window | None, _Best | None]:
    """The best-scoring window, unless one with more (effective) rows is not significantly worse.

    Windows of the same concept score alike up to noise, and the one with more rows is
    the safer bet (the one-standard-error rule); a window that scores significantly
    better — the present, when the concept moved — keeps its lead. Only windows whose
    model beats the constant predictor (the gate's baseline check) compete when any does:
    while a concept is changing gradually, a window of mostly old rows can be about as
    accurate on the newest rows and still be confidently wrong on the new part of them.
    """
    if not fitted:
        return None, None
    eligible = [f for f in fitted if beats_baseline(f[1][2]["metrics"], baseline)] or fitted
    kept = {id(f) for f in eligible}
    for f in fitted:
        if id(f) not in kept:
            f[1][2]["not_better_than_constant"] = True
    top_window, top = min(eligible, key=lambda f: f[1][0])
    choice = (top_window, top)
    for window, judged in eligible:
        if window is top_window or _effective_rows(window) <= _effective_rows(choice[0]):
            continue
        z = gain_z(top[1], judged[1], valid, task, "log_loss")
        judged[2]["behind_best_z"] = round(z, 3)
        if z < SAME_WITHIN_Z:
            choice = (window, judged)
    return choice


def _trial(window: Window, learner: str) -> dict[str, Any]:
    return {"window": window.name, "learner": learner, **_span(window.rows), **window.info}


def _fit(
    window: Window,
    learner: str,
    task: str,
    features: Sequence[str],
    params: Mapping[str, Any] | None,
    trials: list[dict[str, Any]],
) -> Any:
    """``learner`` fitted on ``window`` (``None``, recorded as a skipped trial, if it cannot be fitted)."""
    xs = [r["features"] for r in window.rows]
    ys = [target(task, r["label"]) for r in window.rows]
    try:
        return BatchModel.fit(
            xs, ys, task=task, features=features, learner=learner, params=params, sample_weight=window.weights
        )
    except ValueError as exc:
        trials.append({**_trial(window, learner), "skipped": f"fit failed: {exc}"})
        return None


def gain_z(challenger: Any, incumbent: Any, rows: Sequence[Row], task: str, loss: str = "error") -> float:
    """How many standard errors the challenger's mean per-row loss is below the incumbent's.

    Paired on the same rows: ``loss="error"`` compares 0/1 errors for classifiers (the sign
    test on the rows where exactly one of them is right) and absolute errors for
    regression; ``loss="log_loss"`` the per-row log-loss (``candidate.row_errors``).
    """
    diffs = row_errors(incumbent, rows, task, loss) - row_errors(challenger, rows, task, loss)
    n = len(diffs)
    if n < 2:
        return 0.0
    mean = float(diffs.mean())
    sd = float(diffs.std(ddof=1))
    if sd <= 0:
        return math.inf if mean > 0 else 0.0
    return mean / (sd / math.sqrt(n))


def _judge(
    model: Any,
    window: Window | None,
    learner: str,
    valid: Sequence[Row],
    task: str,
    trials: list[dict[str, Any]],
    best: _Best | None,
) -> _Best | None:
    """Score ``model`` on the validation rows, record the trial, keep the better of it and ``best``."""
    if model is None:
        return best
    trial: dict[str, Any] = _trial(window, learner) if window is not None else {"window": "extra", "learner": learner}
    metrics = trial["metrics"] = evaluate(model, valid, task)
    trials.append(trial)
    rank = _rank(metrics, task)
    if any(math.isnan(v) for v in rank):
        trial["skipped"] = "metric is NaN"
        return best
    if best is None or rank < best[0]:
        return rank, model, trial
    return best


def validation_summary(valid: Sequence[Row], drift_start: float | None) -> dict[str, Any]:
    """What a version's record keeps of its validation rows: how many, their range, the drift start used."""
    return {
        "n": len(valid),
        "ts_from": float(valid[0]["ts"]),
        "ts_to": float(valid[-1]["ts"]),
        "first_event_id": valid[0].get("event_id"),
        "last_event_id": valid[-1].get("event_id"),
        "drift_start": drift_start,
    }

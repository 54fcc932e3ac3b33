"""The columnar observation micro-batch: many validated events of one model per message.

Faust pays a fixed Python cost per message, so ingest packs events into columns and the
stream agents update profiles with numpy over whole batches (see DESIGN.md). `index` is
an in-process extra (e.g. replay line numbers) and never goes on the wire. The wire form
is `batch_wire`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from .events import Event, FeatureEvent, FeatureValue, PredictionEvent
from .feature_run import FeatureRun
from .numeric_block import lists_from_block, split_numeric

__all__ = [
    "KIND_CODES",
    "KIND_FEATURE",
    "KIND_LABEL",
    "KIND_NAMES",
    "KIND_PREDICTION",
    "BatchBuilder",
    "ObservationBatch",
    "batch_from_events",
]

KIND_FEATURE, KIND_PREDICTION, KIND_LABEL = 0, 1, 2
KIND_NAMES = ("feature", "prediction", "label")
KIND_CODES = {name: code for code, name in enumerate(KIND_NAMES)}
_NAN = float("nan")
_NUMERIC = frozenset({float, int, type(None)})


class ObservationBatch:
    """Row `i` across all columns is one event; every column has `len(self)` entries.

    `features[name][i]` is None when row i has no features (`has_features[i]` False) or
    when its event lacks or nulls that feature (missing). `score` is NaN where absent.
    The feature lists may be built on first use (`features_later`): readers that only
    need numbers use `numeric_column`, and `feature_names` never builds them.
    """

    def __init__(
        self,
        model_id: str,
        kind: np.ndarray,
        event_id: list[str],
        ts: np.ndarray,
        has_features: np.ndarray,
        features: dict[str, list[FeatureValue]] | None,
        model_version: list[str | None],
        prediction: list[Any],
        score: np.ndarray,
        scores: list[dict[str, float] | None],
        label: list[Any],
        index: np.ndarray | None = None,
    ) -> None:
        self.model_id = model_id
        self.kind = kind  # int8, KIND_* codes
        self.event_id = event_id
        self.ts = ts  # float64 epoch seconds
        self.has_features = has_features  # bool
        self._features = features
        self._names: tuple[str, ...] = ()
        self._later: Callable[[], dict[str, list[FeatureValue]]] | None = None
        self.model_version = model_version
        self.prediction = prediction
        self.score = score  # float64, NaN = absent
        self.scores = scores
        self.label = label
        self.index = index  # int64 source positions; not on the wire
        # In-process caches, never on the wire: numeric columns are converted once per
        # batch (a slice reads its parent's), and `_numeric_only` is the builder's
        # promise that every feature value is an int, a float or None.
        self._numeric: dict[str, np.ndarray] = {}
        self._parent: tuple[ObservationBatch, int] | None = None
        self._numeric_only = False
        self._pure: set[str] = set()  # columns known to hold only numbers and nulls

    def only_numbers(self, name: str) -> bool:
        """True when column `name` holds only ints, floats and nulls (no type errors)."""
        return self._numeric_only or name in self._pure

    def features_later(self, names: tuple[str, ...], build: Callable[[], dict[str, list[FeatureValue]]]) -> None:
        """Promise the feature columns `names`, built by `build()` when first read."""
        self._features, self._names, self._later = None, names, build

    def numeric_split(self) -> tuple[list[str], dict[str, list[FeatureValue]]]:
        """Names of the columns holding only numbers and nulls, and the other columns
        (the split of the wire's numeric block; no scan when the builder promised it)."""
        if self._numeric_only:
            return list(self.feature_names), {}
        return split_numeric(self.features)

    def attach_numeric(self, names: list[str], matrix: np.ndarray) -> None:
        """Add columns given as a (names × rows) float64 matrix, NaN = null, beside the
        list columns passed in; their lists are built only when `features` is read."""
        lists = self._features or {}
        numeric = lists_from_block(names, matrix)
        self.features_later((*lists, *names), lambda: {**lists, **numeric()})
        matrix.flags.writeable = False
        self._numeric.update(zip(names, matrix))
        self._pure.update(names)
        self._numeric_only = not lists

    @property
    def features(self) -> dict[str, list[FeatureValue]]:
        if self._features is None:
            self._features = self._later() if self._later is not None else {}
            self._later = None
        return self._features

    @property
    def feature_names(self) -> Iterable[str]:
        """The names of `features` (in order), without building the columns."""
        return self._names if self._features is None else self._features.keys()

    def __repr__(self) -> str:
        return f"ObservationBatch(model_id={self.model_id!r}, n={len(self)}, features={list(self.feature_names)!r})"

    def __len__(self) -> int:
        return len(self.event_id)

    def slice(self, start: int, stop: int) -> ObservationBatch:
        """Rows [start, stop): numpy views and list slices, no per-row work."""
        part = slice(start, stop)
        out = ObservationBatch(
            self.model_id,
            self.kind[part],
            self.event_id[part],
            self.ts[part],
            self.has_features[part],
            None,
            self.model_version[part],
            self.prediction[part],
            self.score[part],
            self.scores[part],
            self.label[part],
            None if self.index is None else self.index[part],
        )
        out.features_later(tuple(self.feature_names), lambda: {k: v[part] for k, v in self.features.items()})
        rows = range(len(self))[part]
        if rows.step == 1:
            root, offset = self._parent or (self, 0)
            out._parent = (root, offset + rows.start)
        out._numeric_only = self._numeric_only
        out._pure = self._pure
        return out

    def numeric_column(self, name: str) -> np.ndarray:
        """A feature as float64: NaN where null, missing, non-numeric — and for booleans.

        Booleans are categories (their profile is counts of true/false), so they are not
        coerced to 0/1 here; read `features[name]` for them. A name never seen in the
        batch gives all NaN. The array is computed once per batch and is read-only.
        """
        x = self._numeric.get(name)
        if x is not None:
            return x
        if self._parent is not None:
            root, offset = self._parent
            x = root.numeric_column(name)[offset : offset + len(self)]
        else:
            column = self.features.get(name) if name in self.feature_names else None
            if column is None:
                x = np.full(len(self), np.nan)
            elif self._numeric_only or set(map(type, column)) <= _NUMERIC:
                x = np.array(column, dtype=np.float64)  # None -> nan
            else:
                x = np.array(
                    [v if type(v) is float or type(v) is int else _NAN for v in column],
                    dtype=np.float64,
                )
            x.flags.writeable = False
        self._numeric[name] = x
        return x

    def numeric_matrix(self, names: Iterable[str]) -> np.ndarray:
        """``numeric_column`` of each name, stacked: shape ``(len(names), len(self))``."""
        columns = [self.numeric_column(name) for name in names]
        if not columns:
            return np.empty((0, len(self)))
        return np.stack(columns)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ObservationBatch):
            return NotImplemented
        same_index = (self.index is None and other.index is None) or (
            self.index is not None and other.index is not None and np.array_equal(self.index, other.index)
        )
        return (
            self.model_id == other.model_id
            and same_index
            and np.array_equal(self.kind, other.kind)
            and self.event_id == other.event_id
            and np.array_equal(self.ts, other.ts)
            and np.array_equal(self.has_features, other.has_features)
            and self.features == other.features
            and self.model_version == other.model_version
            and self.prediction == other.prediction
            and np.array_equal(self.score, other.score, equal_nan=True)
            and self.scores == other.scores
            and self.label == other.label
        )


class BatchBuilder:
    """Accumulates one model's events in arrival order, then builds a batch.

    Rows are kept as they come and turned into columns once in `build()`: a feature
    first seen mid-batch is simply None (missing) in earlier feature rows. Feature rows
    go into four plain lists; predictions and labels (rarer) are remembered by row.
    `add_run` appends many already-validated feature rows at C speed (the columnar
    path of ingest and replay, see `driftline.schemas.columnar`).
    """

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.clear()

    def clear(self) -> None:
        """Forget all rows (after a batch is built and sent)."""
        self._event_id: list[str] = []
        self._ts: list[float] = []
        self._features: list[dict[str, FeatureValue] | None] = []  # rows not in _runs
        self._index: list[int] = []
        self._other: dict[int, Event] = {}  # row -> prediction or label event
        self._numeric_only = True  # every feature value so far is int, float or None
        # While every row so far came in runs with the same names and their values as
        # tuples or a matrix, the runs themselves (see add_run); None once a row comes
        # otherwise, and from then on every row is a dict in _features.
        self._runs: list[FeatureRun] | None = []

    def __len__(self) -> int:
        return len(self._event_id)

    def _check_index(self, indexed: bool) -> None:
        if self._event_id and indexed != bool(self._index):
            raise ValueError("give an index for every row of a batch or for none")

    def _leave_runs(self) -> None:
        """Rows kept as runs become dicts in _features (a row of another form follows)."""
        if self._runs is not None:
            for run in self._runs:
                self._features.extend(run.features)
            self._runs = None

    def add(self, event: Event, index: int | None = None) -> None:
        """Append one event; `index` (all or none of the rows) is kept as batch.index."""
        if event.model_id != self.model_id:
            raise ValueError(f"event of model {event.model_id!r} added to {self.model_id!r}")
        if (index is None) == bool(self._index) and self._event_id:
            raise ValueError("give an index for every row of a batch or for none")
        self._leave_runs()
        if index is not None:
            self._index.append(index)
        self._event_id.append(event.event_id)
        self._ts.append(event.ts)
        if type(event) is FeatureEvent:
            self._features.append(event.features)
        else:
            self._other[len(self._features)] = event
            self._features.append(getattr(event, "features", None))
        self._numeric_only = False

    def add_run(self, run: FeatureRun, index: Iterable[int] | None = None) -> None:
        """Append a run of validated feature rows of this model (`decode_features`).

        A run with value tuples or a matrix for fixed `names` is kept as it is: `build`
        concatenates the matrices and makes the feature lists only when they are first
        read (`numeric_only` lets `numeric_column` skip its type scan).
        """
        if not len(run):
            return
        self._check_index(index is not None)
        self._numeric_only = self._numeric_only and run.numeric_only
        if index is not None:
            before = len(self._index)
            self._index.extend(index)
            if len(self._index) - before != len(run):
                raise ValueError("feature rows: index of a different length")
        runs = self._runs
        if (
            runs is not None
            and run.names is not None
            and (run.rows is not None or run.numeric is not None)
            and (not runs or runs[0].names == run.names)
        ):
            runs.append(run)
        else:
            self._leave_runs()
            self._features.extend(run.features)
        self._event_id.extend(run.event_id)
        self._ts.extend(run.ts)

    def build(self) -> ObservationBatch:
        """The rows so far as columns (the builder is left unchanged)."""
        n = len(self._event_id)
        if not n:
            raise ValueError("cannot build an empty batch")
        rows = self._features
        kind = np.zeros(n, dtype=np.int8)
        model_version: list[str | None] = [None] * n
        prediction: list[Any] = [None] * n
        score = np.full(n, np.nan)
        scores: list[dict[str, float] | None] = [None] * n
        label: list[Any] = [None] * n
        for row, event in self._other.items():
            if type(event) is PredictionEvent:
                kind[row] = KIND_PREDICTION
                model_version[row] = event.model_version
                prediction[row] = event.prediction
                if event.score is not None:
                    score[row] = event.score
                scores[row] = event.scores
            else:
                kind[row] = KIND_LABEL
                label[row] = event.label  # type: ignore[union-attr]
        runs = self._runs
        absent = 0 if runs else rows.count(None)
        has_features = np.ones(n, dtype=bool) if not absent else np.array([r is not None for r in rows], dtype=bool)
        numeric: np.ndarray | None = None
        names: tuple[str, ...] = ()
        features: dict[str, list[FeatureValue]] | None = None
        if runs:  # every row came in runs with the same names
            names = runs[0].names  # type: ignore[assignment]
            if all(r.numeric is not None for r in runs):
                numeric = np.concatenate([r.numeric for r in runs], axis=1)  # type: ignore[misc]
        else:
            features = _columns(rows, absent)
        batch = ObservationBatch(
            model_id=self.model_id,
            kind=kind,
            event_id=list(self._event_id),
            ts=np.array(self._ts, dtype=np.float64),
            has_features=has_features,
            features=features,
            model_version=model_version,
            prediction=prediction,
            score=score,
            scores=scores,
            label=label,
            index=np.array(self._index, dtype=np.int64) if self._index else None,
        )
        batch._numeric_only = self._numeric_only
        if runs:
            batch.features_later(names, partial(_run_columns, names, list(runs)))
        if numeric is not None:
            numeric.flags.writeable = False
            batch._numeric.update(zip(names, numeric))
        return batch


def _run_columns(names: tuple[str, ...], runs: list[FeatureRun]) -> dict[str, list[FeatureValue]]:
    """Runs of rows with exactly `names` as one list per name."""
    if len(runs) == 1:
        return runs[0].columns()
    parts = [run.columns() for run in runs]
    return {name: list(chain.from_iterable(part[name] for part in parts)) for name in names}


def _columns(rows: list[dict[str, FeatureValue] | None], absent: int) -> dict[str, list[FeatureValue]]:
    """Feature rows (None = no features) as columns, names in first-seen order.

    When every row has the same names (the common case) the transpose is one
    `itemgetter` pass and one `zip`, both in C.
    """
    if absent == len(rows):
        return {}
    if not absent:
        first = rows[0]
        width = len(first)  # type: ignore[arg-type]
        if width > 1 and set(map(len, rows)) == {width}:  # type: ignore[arg-type]
            names = tuple(first)  # type: ignore[arg-type]
            try:
                columns = zip(*map(itemgetter(*names), rows))  # type: ignore[arg-type]
            except KeyError:
                pass  # same sizes, other names: the general case below
            else:
                return dict(zip(names, map(list, columns)))
    present = [r for r in rows if r]
    names_seen = dict.fromkeys(chain.from_iterable(present))
    empty: dict[str, FeatureValue] = {}
    filled = [r if r is not None else empty for r in rows]
    return {name: [r.get(name) for r in filled] for name in names_seen}


def batch_from_events(model_id: str, events: Iterable[Event], indices: Iterable[int] | None = None) -> ObservationBatch:
    """One batch from events of one model (convenience for replay and tests)."""
    builder = BatchBuilder(model_id)
    if indices is None:
        for event in events:
            builder.add(event)
    else:
        for event, index in zip(events, indices, strict=True):
            builder.add(event, index)
    return builder.build()

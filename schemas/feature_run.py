"""A run of consecutive valid feature events, held as columns.

Both columnar decoders (`columnar` with orjson, `typed_columns` with msgspec) return
runs; `BatchBuilder.add_run` turns them into observation batches. A run carries its
feature values in whichever forms its decoder produced — per-row dicts, value tuples in
`names` order, a float64 matrix — and builds the per-row dicts only if someone reads
`features` (the typed decoder never builds them: replay and ingest need the matrix).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import numpy as np

from .events import FeatureValue
from .numeric_block import lists_from_block

__all__ = ["FeatureRun"]


class FeatureRun:
    """Consecutive valid feature events (messages ``start`` .. ``start + len - 1``).

    The columns are what `decode_event` would have put in the events' fields, except
    that a run decoded straight into `numeric` gives its integers as floats (as the
    wire's numeric block does: the drift core treats 1 and 1.0 alike).
    `numeric_only` is True when every feature value is an int, a float or None.
    When every row has exactly the feature names `names` (the usual case), `rows` may
    hold each row's values in `names` order, and, if `numeric_only`, `numeric` the
    columns as a float64 matrix (names × rows, NaN for None). A run has its per-row
    dicts, or `rows`, or `numeric`.
    """

    __slots__ = (
        "_features",
        "event_id",
        "model_id",
        "names",
        "numeric",
        "numeric_only",
        "rows",
        "start",
        "ts",
    )

    def __init__(
        self,
        start: int,
        model_id: list[str],
        event_id: list[str],
        ts: list[float],
        features: list[dict[str, FeatureValue]] | None,
        numeric_only: bool,
        names: tuple[str, ...] | None = None,
        rows: list[tuple[FeatureValue, ...]] | None = None,
        numeric: np.ndarray | None = None,
    ) -> None:
        if features is None and (names is None or (rows is None and numeric is None)):
            raise ValueError("a run needs its feature dicts, or names with rows or a matrix")
        self.start = start
        self.model_id = model_id
        self.event_id = event_id
        self.ts = ts
        self.numeric_only = numeric_only
        self.names = names
        self.rows = rows
        self.numeric = numeric
        self._features = features

    def __len__(self) -> int:
        return len(self.event_id)

    @property
    def features(self) -> list[dict[str, FeatureValue]]:
        """Each row's features as a dict (built on first read when the run has none)."""
        if self._features is None:
            names = self.names or ()
            if self.rows is not None:
                rows: Any = self.rows
            else:
                rows = zip(*self.columns().values()) if names else ([()] * len(self))
            self._features = [dict(zip(names, row)) for row in rows]
        return self._features

    @property
    def has_dicts(self) -> bool:
        """Whether the per-row dicts exist (reading `features` would not build them)."""
        return self._features is not None

    def columns(self) -> dict[str, list[FeatureValue]]:
        """One list per name (None where null): needs `names`, and `rows` or `numeric`."""
        names = self.names or ()
        if self.rows is not None:
            return dict(zip(names, map(list, zip(*self.rows)))) if self.rows else {n: [] for n in names}
        if self.numeric is None:
            return {name: [f.get(name) for f in self.features] for name in names}
        return lists_from_block(list(names), self.numeric)()

    def by_model(self) -> list[tuple[str, FeatureRun, list[int] | None]]:
        """``(model_id, rows of that model, their positions in this run)`` per model.

        Positions are None when the run holds one model (the sub-run is the run
        itself). Sub-runs keep the order of the rows and carry picked columns.
        """
        ids = self.model_id
        if ids.count(ids[0]) == len(ids):
            return [(ids[0], self, None)]
        rows: dict[str, list[int]] = {}
        for row, model_id in enumerate(ids):
            rows.setdefault(model_id, []).append(row)
        return [(model_id, self.pick(picked), picked) for model_id, picked in rows.items()]

    def pick(self, rows: list[int]) -> FeatureRun:
        """The given rows (positions in this run), columns included."""
        getter = itemgetter(*rows)

        def take(seq: list[Any]) -> list[Any]:
            return list(getter(seq)) if len(rows) > 1 else [getter(seq)]

        return FeatureRun(
            self.start + rows[0],
            take(self.model_id),
            take(self.event_id),
            take(self.ts),
            None if self._features is None else take(self._features),
            self.numeric_only,
            self.names,
            None if self.rows is None else take(self.rows),
            None if self.numeric is None else self.numeric[:, rows],
        )

    def slice(self, start: int, stop: int) -> FeatureRun:
        """Rows [start, stop) (list slices and a numpy view)."""
        part = slice(start, stop)
        return FeatureRun(
            self.start + start,
            self.model_id[part],
            self.event_id[part],
            self.ts[part],
            None if self._features is None else self._features[part],
            self.numeric_only,
            self.names,
            None if self.rows is None else self.rows[part],
            None if self.numeric is None else self.numeric[:, part],
        )

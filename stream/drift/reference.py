"""The reference profile: what a model version was trained on, summarised as bins.

Every later window is counted on *these* bins, so the layout is decided once, here:

- **Numeric**: edges ``[min, q_1, …, q_{B-1}, nextafter(max)]`` where ``q_i`` are the
  reference's ``i/B`` quantiles (numpy "linear"), deduplicated with ``np.unique`` — ties
  (point masses, a constant feature) simply produce fewer bins, never empty-width ones.
  A value ``v`` goes to bin ``searchsorted(edges, v, "right")``: bin 0 is the underflow
  ``(-inf, min)``, the last bin the overflow ``(max, +inf)``, and interior bins are
  ``[e_i, e_{i+1})``. Using ``nextafter(max)`` as the last edge makes ``max`` itself fall
  in the last interior bin with no special case. The reference has 0 in both tails;
  windows that leave the training range land there.
- **Categorical**: the ``top_k`` most frequent category keys (ties by key order) plus
  ``OTHER``; counts has ``K + 1`` entries, ``OTHER`` last.
- Every feature keeps ``n`` (valid values), ``missing`` (null, absent from the event, or
  invalid) and ``type_errors`` (non-numeric values of a numeric feature; also missing).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, Union

import numpy as np

from driftline.stream.drift.feature_types import (
    OTHER,
    FeatureType,
    count_categories,
    infer_feature_type,
    is_numeric_value,
)

if TYPE_CHECKING:
    from driftline.schemas.batch import ObservationBatch

__all__ = [
    "CategoricalReference",
    "FeatureReference",
    "NumericReference",
    "ReferenceBuilder",
    "ReferenceProfile",
    "select_rows",
]


def select_rows(batch: ObservationBatch, rows: np.ndarray | slice | None) -> np.ndarray | None:
    """Indices of the batch rows to profile: ``rows`` ∩ ``has_features``; None = all rows."""
    hf = np.asarray(batch.has_features, dtype=bool)
    if rows is None:
        return None if hf.all() else np.flatnonzero(hf)
    if isinstance(rows, slice):
        idx = np.arange(len(hf))[rows]
    else:
        rows = np.asarray(rows)
        idx = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.intp)
    return idx[hf[idx]]


def take(col: list, idx: np.ndarray | slice | None) -> list:
    """``[col[i] for i in idx]`` at C speed (``operator.itemgetter``); a slice slices."""
    if idx is None:
        return col
    if isinstance(idx, slice):
        return col[idx]
    if len(idx) == 0:
        return []
    if len(idx) == 1:
        return [col[int(idx[0])]]
    return list(operator.itemgetter(*idx.tolist())(col))


_NUMBERS_OR_NULL = frozenset({float, int, type(None)})


def _numeric_values(col: list) -> tuple[np.ndarray, int] | None:
    """(finite values as float64, count of non-null values) when ``col`` holds only
    ints, floats and None — the common case — else None (bools, strings: slow path)."""
    if not set(map(type, col)) <= _NUMBERS_OR_NULL:
        return None
    x = np.array(col, dtype=np.float64)
    return x[np.isfinite(x)], len(col) - col.count(None)


_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, eq=False)
class NumericReference:
    """Quantile bins of a numeric feature plus its moments (see module docstring)."""

    type: ClassVar[FeatureType] = FeatureType.NUMERIC
    edges: np.ndarray
    counts: np.ndarray
    n: int
    missing: int
    type_errors: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 1

    @classmethod
    def from_values(cls, values: np.ndarray, missing: int, type_errors: int, bins: int) -> NumericReference:
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            return cls(np.empty(0), np.zeros(1, np.int64), 0, missing, type_errors, None, None, None, None)
        lo, hi = float(v.min()), float(v.max())
        qs = np.quantile(v, np.arange(1, bins) / bins) if bins > 1 else np.empty(0)
        edges = np.unique(np.concatenate([[lo], qs, [np.nextafter(hi, np.inf)]]))
        counts = np.bincount(np.searchsorted(edges, v, "right"), minlength=len(edges) + 1)
        return cls(
            edges, counts.astype(np.int64), int(v.size), missing, type_errors, float(v.mean()), float(v.std()), lo, hi
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "n": self.n,
            "missing": self.missing,
            "type_errors": self.type_errors,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericReference:
        return cls(
            np.asarray(d["edges"], dtype=np.float64),
            np.asarray(d["counts"], dtype=np.int64),
            d["n"],
            d["missing"],
            d["type_errors"],
            d["mean"],
            d["std"],
            d["min"],
            d["max"],
        )


@dataclasses.dataclass(frozen=True, eq=False)
class CategoricalReference:
    """Top-K category keys (``counts[-1]`` is ``OTHER``)."""

    type: ClassVar[FeatureType] = FeatureType.CATEGORICAL
    categories: tuple[str, ...]
    counts: np.ndarray
    n: int
    missing: int
    type_errors: int = 0

    @property
    def n_bins(self) -> int:
        return len(self.categories) + 1

    @property
    def slot(self) -> dict[str, int]:
        """Category key → bin index; unknown keys go to ``len(categories)`` (OTHER)."""
        s = self.__dict__.get("_slot")
        if s is None:
            s = {c: i for i, c in enumerate(self.categories)}
            object.__setattr__(self, "_slot", s)
        return s

    @classmethod
    def from_values(cls, values: list, top_k: int) -> CategoricalReference:
        counts, missing = count_categories(values)
        ranked = sorted(counts.items(), key=lambda kc: (-kc[1], kc[0]))
        top = [k for k, _ in ranked[:top_k] if k != OTHER]
        arr = np.zeros(len(top) + 1, np.int64)
        arr[: len(top)] = [counts[k] for k in top]
        arr[-1] = sum(counts.values()) - int(arr[:-1].sum())
        return cls(tuple(top), arr, int(arr.sum()), missing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
            "n": self.n,
            "missing": self.missing,
            "type_errors": self.type_errors,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalReference:
        return cls(
            tuple(d["categories"]),
            np.asarray(d["counts"], dtype=np.int64),
            d["n"],
            d["missing"],
            d.get("type_errors", 0),
        )


FeatureReference = Union[NumericReference, CategoricalReference]


@dataclasses.dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Per-feature bins and counts of the data a model version was trained on.

    Examples:
        >>> ref = ReferenceProfile.from_rows(
        ...     [{"age": a, "plan": p} for a, p in zip(range(100), ["pro", "free"] * 50)],
        ...     numeric_bins=4)
        >>> ref.features["age"].edges.tolist()
        [0.0, 24.75, 49.5, 74.25, 99.00000000000001]
        >>> ref.features["plan"].categories
        ('free', 'pro')
        >>> ReferenceProfile.from_dict(ref.to_dict()) == ref
        True
    """

    features: dict[str, FeatureReference]
    n_rows: int
    numeric_bins: int = 10
    top_k: int = 50

    def derived(self, kind: str, names: tuple[str, ...], build: Callable[[], _T]) -> _T:
        """What ``build()`` derives from this profile for the features ``names``, made
        once per (kind, names): a profile never changes, and window updates and scores
        ask for the same stacked arrays every batch."""
        cache = self.__dict__.setdefault("_derived", {})
        value = cache.get((kind, names))
        if value is None:
            value = cache[(kind, names)] = build()
        return value

    def missing_rate(self, name: str) -> float:
        f = self.features[name]
        total = f.n + f.missing
        return f.missing / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; floats survive JSON exactly (shortest repr round-trips)."""
        return {
            "v": 1,
            "n_rows": self.n_rows,
            "numeric_bins": self.numeric_bins,
            "top_k": self.top_k,
            "features": {k: f.to_dict() for k, f in sorted(self.features.items())},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceProfile:
        feats: dict[str, FeatureReference] = {}
        for name, fd in d["features"].items():
            kind = FeatureType(fd["type"])
            feats[name] = (
                NumericReference.from_dict(fd) if kind is FeatureType.NUMERIC else CategoricalReference.from_dict(fd)
            )
        return cls(feats, d["n_rows"], d.get("numeric_bins", 10), d.get("top_k", 50))

    @property
    def fingerprint(self) -> str:
        """Content hash; a window remembers it so it is never scored against another."""
        fp = self.__dict__.get("_fp")
        if fp is None:
            blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
            fp = hashlib.sha256(blob.encode()).hexdigest()[:16]
            object.__setattr__(self, "_fp", fp)
        return fp

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReferenceProfile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, list],
        n_rows: int,
        declared_types: Mapping[str, FeatureType] | None = None,
        numeric_bins: int = 10,
        top_k: int = 50,
    ) -> ReferenceProfile:
        """Build from raw columns (each of length ``n_rows``; None = missing)."""
        declared = dict(declared_types or {})
        feats: dict[str, FeatureReference] = {}
        for name, col in columns.items():
            stated = declared.get(name)
            numeric = _numeric_values(col) if stated in (None, FeatureType.NUMERIC) else None
            if numeric is not None:  # only numbers and nulls: no per-value Python
                good, present = numeric
                if stated is not None or (present and len(good) == present):
                    feats[name] = NumericReference.from_values(
                        good, n_rows - len(good), present - len(good), numeric_bins
                    )
                    continue
            kind = FeatureType(stated or infer_feature_type(col))
            if kind is FeatureType.NUMERIC:
                vals = [v for v in col if v is not None]
                floats = [float(v) for v in vals if is_numeric_value(v)]
                bad = len(vals) - len(floats)
                feats[name] = NumericReference.from_values(
                    np.array(floats, dtype=np.float64), n_rows - len(floats), bad, numeric_bins
                )
            else:
                feats[name] = CategoricalReference.from_values(col, top_k)
        return cls(feats, n_rows, numeric_bins, top_k)

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Mapping[str, Any]],
        declared_types: Mapping[str, FeatureType] | None = None,
        numeric_bins: int = 10,
        top_k: int = 50,
    ) -> ReferenceProfile:
        """Build from training rows (feature name → value; absent or None = missing)."""
        names = sorted({k for r in rows for k in r})
        cols = {k: [r.get(k) for r in rows] for k in names}
        return cls.from_columns(cols, len(rows), declared_types, numeric_bins, top_k)


class ReferenceBuilder:
    """Collects raw feature rows from batches, then builds a ReferenceProfile.

    Used when no trained version exists yet and the first full window becomes the
    reference. Quantiles need raw values, so rows are kept — at most ``max_rows`` of them,
    as a uniform reservoir sample (Algorithm R, seeded, so replay is deterministic): a
    first-N cut would bias the reference towards the start of the window.

    Examples:
        >>> b = ReferenceBuilder(max_rows=1000)
        >>> b.add_rows([{"x": float(i)} for i in range(10)])
        >>> b.n_rows, b.build().features["x"].n
        (10, 10)
    """

    def __init__(
        self,
        declared_types: dict[str, FeatureType] | None = None,
        numeric_bins: int = 10,
        top_k: int = 50,
        max_rows: int = 100_000,
        seed: int = 0,
    ) -> None:
        self.declared_types = dict(declared_types or {})
        self.numeric_bins, self.top_k, self.max_rows = numeric_bins, top_k, max_rows
        self._rng = np.random.default_rng(seed)
        self._cols: dict[str, list] = {}
        self._kept = 0
        self.n_rows = 0
        """Rows seen (with features); ``min(n_rows, max_rows)`` are kept."""

    def add(self, batch: ObservationBatch, rows: np.ndarray | slice | None = None) -> None:
        idx = select_rows(batch, rows)
        n = len(batch) if idx is None else len(idx)
        cols = {k: take(c, idx) for k, c in batch.features.items()}
        self._add_columns(cols, n)

    def add_rows(self, rows: list[Mapping[str, Any]]) -> None:
        names = {k for r in rows for k in r}
        self._add_columns({k: [r.get(k) for r in rows] for k in names}, len(rows))

    def _add_columns(self, cols: Mapping[str, list], n: int) -> None:
        for k in cols:
            if k not in self._cols:
                self._cols[k] = [None] * self._kept
        room = min(n, self.max_rows - self._kept)
        for k, col in self._cols.items():
            src = cols.get(k)
            col.extend(src[:room] if src is not None else [None] * room)
        self._kept += room
        rest = n - room
        if rest > 0:
            t = np.arange(self.n_rows + room, self.n_rows + n)
            j = self._rng.integers(0, t + 1)
            hit = np.flatnonzero(j < self.max_rows)
            last: dict[int, int] = {}
            for r in hit.tolist():  # sequential semantics: the last writer of a slot wins
                last[int(j[r])] = room + r
            for k, col in self._cols.items():
                src = cols.get(k)
                for slot, r in last.items():
                    col[slot] = src[r] if src is not None else None
        self.n_rows += n

    def build(self) -> ReferenceProfile:
        return ReferenceProfile.from_columns(self._cols, self._kept, self.declared_types, self.numeric_bins, self.top_k)

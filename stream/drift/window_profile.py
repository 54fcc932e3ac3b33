"""Window profiles: a window's features counted on the reference's bins.

A profile is O(features × bins) whatever the number of events, and merges by addition,
so shards (partitions, hash buckets of a hot model) build partial profiles and a second
stage adds them. Merging is *exact*: shard-then-merge equals one pass over all events,
bit for bit, including the moments. Float sums are not associative, so sums are kept as
exact dyadic rationals (``ExactSum``: an int numerator and a power-of-two exponent)
computed with numpy (``stream.exact_sum``: no per-value Python). The
sum of squares is the exact sum of the *rounded* squares ``x*x`` — still deterministic.

What is counted, per reference feature, over the batch rows that have features:
bin counts of valid values; ``missing`` (null, absent, or invalid); ``type_errors``
(non-numeric or non-finite values of a numeric feature — also missing); for numerics the
moments and the exact sums of the values in the underflow/overflow bins (the scorer uses
their means as the tail bins' representative points). Features the reference does not
know are tallied in ``unknown_features`` (non-null values per name); to keep memory
bounded only the ``MAX_UNKNOWN`` lexicographically smallest names are kept and the rest
fold into ``unknown_other`` — a rule that depends only on the set of names, so merging
stays exact.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union, cast

import numpy as np

from driftline.stream.drift.exact_sum import ExactSum
from driftline.stream.drift.feature_types import FeatureType, count_categories
from driftline.stream.drift.reference import (
    CategoricalReference,
    NumericReference,
    ReferenceProfile,
    select_rows,
    take,
)

if TYPE_CHECKING:
    from driftline.schemas.batch import ObservationBatch

__all__ = ["MAX_UNKNOWN", "CategoricalWindow", "ExactSum", "NumericWindow", "WindowProfile"]

MAX_UNKNOWN = 64


@dataclasses.dataclass(eq=False)
class NumericWindow:
    """Bin counts and exact moments of one numeric feature in one window."""

    counts: np.ndarray
    missing: int = 0
    type_errors: int = 0
    sum: ExactSum = ExactSum()
    sumsq: ExactSum = ExactSum()
    sumsq_overflow: int = 0
    tail_sums: tuple[ExactSum, ExactSum] = (ExactSum(), ExactSum())

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def mean(self) -> float | None:
        return float(self.sum) / self.n if self.n else None

    @property
    def std(self) -> float | None:
        """Population std from the exact moments (inf if a square overflowed)."""
        n = self.n
        if not n:
            return None
        if self.sumsq_overflow:
            return float("inf")
        s1 = self.sum.fraction()
        return max(float((n * self.sumsq.fraction() - s1 * s1) / (n * n)), 0.0) ** 0.5

    def tail_mean(self, which: int) -> float | None:
        """Mean of the window values in the underflow (0) or overflow (1) bin."""
        c = int(self.counts[0 if which == 0 else -1])
        return float(self.tail_sums[which]) / c if c else None

    def update(self, ref: NumericReference, x: np.ndarray) -> list[np.ndarray]:
        """Count ``x`` (finite values) into the bins; return the arrays whose exact sums
        are still to be added (values, squares, underflow values, overflow values), so the
        caller can sum every feature of a batch in one pass (see ``add_sums``)."""
        b = np.searchsorted(ref.edges, x, "right")
        delta = np.bincount(b, minlength=len(self.counts))
        self.counts += delta
        sq = x * x
        fin = np.isfinite(sq)
        if not fin.all():
            self.sumsq_overflow += int((~fin).sum())
            sq = sq[fin]
        empty = x[:0]
        return [x, sq, x[b == 0] if delta[0] else empty, x[b == len(delta) - 1] if delta[-1] else empty]

    def add_sums(self, sums: list[ExactSum]) -> None:
        s, sq, u, o = sums
        self.sum += s
        self.sumsq += sq
        self.tail_sums = (self.tail_sums[0] + u, self.tail_sums[1] + o)

    def merge(self, o: NumericWindow) -> None:
        self.counts += o.counts
        self.missing += o.missing
        self.type_errors += o.type_errors
        self.sum += o.sum
        self.sumsq += o.sumsq
        self.sumsq_overflow += o.sumsq_overflow
        self.tail_sums = (self.tail_sums[0] + o.tail_sums[0], self.tail_sums[1] + o.tail_sums[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "numeric",
            "counts": self.counts.tolist(),
            "missing": self.missing,
            "type_errors": self.type_errors,
            "sum": self.sum.to_json(),
            "sumsq": self.sumsq.to_json(),
            "sumsq_overflow": self.sumsq_overflow,
            "tail_sums": [t.to_json() for t in self.tail_sums],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericWindow:
        u, o = (ExactSum.from_json(t) for t in d["tail_sums"])
        return cls(
            np.asarray(d["counts"], np.int64),
            d["missing"],
            d["type_errors"],
            ExactSum.from_json(d["sum"]),
            ExactSum.from_json(d["sumsq"]),
            d["sumsq_overflow"],
            (u, o),
        )


@dataclasses.dataclass(eq=False)
class CategoricalWindow:
    """Counts over the reference's top-K categories (``counts[-1]`` = OTHER)."""

    counts: np.ndarray
    missing: int = 0
    type_errors: int = 0

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def update(self, ref: CategoricalReference, values: list) -> None:
        counts, missing = count_categories(values)
        slot, other = ref.slot, len(ref.categories)
        for k, c in counts.items():
            self.counts[slot.get(k, other)] += c
        self.missing += missing

    def merge(self, o: CategoricalWindow) -> None:
        self.counts += o.counts
        self.missing += o.missing
        self.type_errors += o.type_errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "categorical",
            "counts": self.counts.tolist(),
            "missing": self.missing,
            "type_errors": self.type_errors,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalWindow:
        return cls(np.asarray(d["counts"], np.int64), d["missing"], d.get("type_errors", 0))


FeatureWindow = Union[NumericWindow, CategoricalWindow]

_CMP_CELLS = 1 << 22  # booleans per comparison block (features × edges × rows)
_CMP_MAX_EDGES = 32


@dataclasses.dataclass(frozen=True, eq=False)
class _Layout:
    """Per-reference constants for counting a set of numeric features in one pass.

    Built once per (reference, feature names) and cached on the reference, so a batch
    does not rebuild them. Feature ``f``'s bins are ``flat[offsets[f]:offsets[f + 1]]``
    of one ``bincount``; ``zero[f]`` is the bin where 0.0 — the value invalid entries
    are replaced with — lands, ``last[f]`` the overflow bin.
    """

    refs: list[NumericReference]
    edges: np.ndarray  # (features, widest) padded with +inf, which no finite value reaches
    offsets: np.ndarray
    zero: np.ndarray
    last: np.ndarray

    @classmethod
    def of(cls, reference: ReferenceProfile, names: tuple[str, ...]) -> _Layout:
        return reference.derived("window_layout", names, lambda: cls._build(reference, names))

    @classmethod
    def _build(cls, reference: ReferenceProfile, names: tuple[str, ...]) -> _Layout:
        refs = [cast(NumericReference, reference.features[k]) for k in names]  # a layout groups numeric features
        width = max(len(r.edges) for r in refs)
        edges = np.full((len(refs), width), np.inf)
        for f, r in enumerate(refs):
            edges[f, : len(r.edges)] = r.edges
        sizes = np.array([r.n_bins for r in refs], np.intp)
        zero = np.array([np.searchsorted(r.edges, 0.0, "right") for r in refs], np.intp)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
        return cls(refs, edges, offsets, zero, sizes - 1)  # type: ignore[arg-type]

    def bins(self, x: np.ndarray) -> np.ndarray:
        """``searchsorted(edges, row, "right")`` for every row of ``x`` (features × values).

        With few edges (the usual ~11) counting ``edges <= v`` over a (features × edges ×
        values) comparison, summed as bytes, is several times faster than one binary
        search per value. Non-finite values get arbitrary bins: callers replace them.
        """
        width = self.edges.shape[1]
        if width > _CMP_MAX_EDGES:
            return np.stack([np.searchsorted(r.edges, row, "right") for r, row in zip(self.refs, x)])
        out = np.empty(x.shape, np.uint8)
        step = max(1, _CMP_CELLS // max(1, width * x.shape[1]))
        for i in range(0, len(x), step):
            cmp = x[i : i + step, None, :] >= self.edges[i : i + step, :, None]
            np.add.reduce(cmp.view(np.uint8), axis=1, dtype=np.uint8, out=out[i : i + step])
        return out


def _selection(batch: ObservationBatch, rows: np.ndarray | slice | None) -> slice | np.ndarray | None:
    """``select_rows``, except that a step-1 slice of rows that all have features stays a
    (normalised) slice; None = every row."""
    if isinstance(rows, slice):
        start, stop, step = rows.indices(len(batch))
        if step == 1:
            stop = max(start, stop)
            if np.asarray(batch.has_features[start:stop], dtype=bool).all():
                return None if (start, stop) == (0, len(batch)) else slice(start, stop)
    return select_rows(batch, rows)


def _length(sel: slice | np.ndarray) -> int:
    return sel.stop - sel.start if isinstance(sel, slice) else len(sel)


def _take_rows(
    batch: ObservationBatch, names: list[str], sel: slice | np.ndarray | None, n: int, out: np.ndarray
) -> None:
    """``numeric_column`` of each name, rows ``sel``, written into ``out`` (features × n)."""
    for f, name in enumerate(names):
        col = batch.numeric_column(name)
        if sel is None:
            out[f] = col
        elif isinstance(sel, slice):
            out[f] = col[sel]
        else:
            np.take(np.asarray(col, dtype=np.float64), sel, out=out[f])


def _empty(ref: NumericReference | CategoricalReference) -> FeatureWindow:
    z = np.zeros(ref.n_bins, np.int64)
    return NumericWindow(z) if ref.type is FeatureType.NUMERIC else CategoricalWindow(z)


class WindowProfile:
    """One window's profile on a reference's bins; ``a + b`` merges shards exactly.

    Examples:
        >>> ref = ReferenceProfile.from_rows([{"x": float(i)} for i in range(100)],
        ...                                  numeric_bins=4)
        >>> w = WindowProfile(ref)
        >>> w.features["x"].counts.tolist()   # underflow, 4 quantile bins, overflow
        [0, 0, 0, 0, 0, 0]
        >>> w.n_rows, (w + w) == w
        (0, True)
    """

    def __init__(self, reference: ReferenceProfile) -> None:
        self.reference = reference
        self.n_rows = 0
        self.features: dict[str, FeatureWindow] = {k: _empty(f) for k, f in reference.features.items()}
        self.unknown_features: dict[str, int] = {}
        self.unknown_other = 0

    def update(self, batch: ObservationBatch, rows: np.ndarray | slice | None = None) -> WindowProfile:
        """Count the selected rows that have features (``rows``: slice, mask or indices).

        A slice whose rows all have features is kept a slice, so columns are read as
        views (the monitor passes the segment of a batch between two window closes).
        """
        sel = _selection(batch, rows)
        n = len(batch) if sel is None else _length(sel)
        if n == 0:
            return self
        self.n_rows += n
        present = batch.feature_names  # numeric features are read as arrays, not lists
        numeric: list[str] = []
        for name, ref in self.reference.features.items():
            w = self.features[name]
            if name not in present:
                w.missing += n
            elif isinstance(w, NumericWindow):
                numeric.append(name)
            else:
                w.update(ref, take(batch.features[name], sel))  # type: ignore[arg-type]
        if numeric:
            self._update_numeric(batch, numeric, sel, n)
        unknown = {}
        for name in present:
            if name not in self.features:
                c = n - take(batch.features[name], sel).count(None)
                if c:
                    unknown[name] = c
        if unknown:
            self._add_unknown(unknown, 0)
        return self

    def _update_numeric(
        self, batch: ObservationBatch, names: list[str], sel: slice | np.ndarray | None, n: int
    ) -> None:
        """Every numeric feature of the batch at once, on a (features × rows) matrix.

        Equivalent to ``NumericWindow.update`` + ``add_sums`` per feature: invalid
        values are counted missing (and type errors unless null) and enter the sums as
        zeros, which leaves exact sums unchanged; they are binned as 0.0 and taken back
        out of that bin. Bin counts come from one ``bincount`` with per-feature offsets,
        the moments from one exact pass over the values and their squares, written into
        one buffer so nothing is copied twice.
        """
        layout = _Layout.of(self.reference, tuple(names))
        windows: list[NumericWindow] = [self.features[k] for k in names]  # type: ignore[misc]
        k = len(names)
        buf = np.empty((2 * k, n))
        x = buf[:k]
        _take_rows(batch, names, sel, n, x)
        ok = np.isfinite(x)
        n_bad = n - np.count_nonzero(ok, axis=1)
        bad_rows = np.flatnonzero(n_bad).tolist()
        if bad_rows:
            bad = ~ok
            np.copyto(x, 0.0, where=bad)
            cells = np.flatnonzero(bad.ravel())  # feature-major: f * n + row
            ends = np.cumsum(n_bad).tolist()
            for f in bad_rows:
                rows = cells[ends[f] - int(n_bad[f]) : ends[f]] - f * n
                if isinstance(sel, slice):
                    rows += sel.start
                elif sel is not None:
                    rows = sel[rows]
                w = windows[f]
                only_numbers = getattr(batch, "only_numbers", None)
                if only_numbers is None or not only_numbers(names[f]):  # else: all nulls
                    w.type_errors += len(rows) - take(batch.features[names[f]], rows).count(None)
                w.missing += len(rows)
            if not (n_bad < n).any():
                return
        bins = layout.bins(x)
        flat = bins + layout.offsets[:-1, None]
        counts = np.bincount(flat.ravel(), minlength=int(layout.offsets[-1]))
        if bad_rows:
            counts[layout.offsets[:-1] + layout.zero] -= n_bad
        for f, w in enumerate(windows):
            w.counts += counts[layout.offsets[f] : layout.offsets[f + 1]]
        amax = np.maximum(x.max(axis=1), -x.min(axis=1))
        sq = buf[k:]
        with np.errstate(over="ignore"):  # overflowing squares are counted below
            np.multiply(x, x, out=sq)
            amax_sq = amax * amax  # rounding is monotone: the largest square, rounded
        if not np.isfinite(amax_sq).all():
            fin = np.isfinite(sq)
            for f in np.flatnonzero(~fin.all(axis=1)).tolist():
                windows[f].sumsq_overflow += int((~fin[f]).sum())
            sq[~fin] = 0.0
            amax_sq = np.maximum(sq.max(axis=1), 0.0)
        tails = self._tails(x, bins, layout, counts)
        moments = ExactSum._rows_raw(buf, np.concatenate([amax, amax_sq]), owned=True)  # overwrites x
        for f, w in enumerate(windows):
            w.sum = w.sum._plus(*moments[f])
            w.sumsq = w.sumsq._plus(*moments[k + f])
            u, o = tails[f]
            if u.num or o.num:
                w.tail_sums = (w.tail_sums[0] + u, w.tail_sums[1] + o)

    @staticmethod
    def _tails(x: np.ndarray, bins: np.ndarray, layout: _Layout, counts: np.ndarray) -> list[list[ExactSum]]:
        """Exact sums of each feature's underflow and overflow values, in one call.

        ``counts`` are this batch's bin counts of valid values. Invalid entries are 0.0
        in ``x``; where 0.0 falls in a tail bin they are selected too and add nothing.
        """
        k = len(x)
        first = layout.offsets[:-1]
        if not (counts[first].any() or counts[first + layout.last].any()):
            return [[ExactSum(), ExactSum()] for _ in range(k)]
        masks = [bins == 0, bins == layout.last[:, None].astype(bins.dtype)]
        flat = x.ravel()
        values = np.concatenate([flat[np.flatnonzero(m.ravel())] for m in masks])
        lengths = np.concatenate([np.count_nonzero(m, axis=1) for m in masks]).tolist()
        sums = ExactSum.of_segments(values, lengths)
        return [[sums[f], sums[k + f]] for f in range(k)]

    def _add_unknown(self, tally: Mapping[str, int], other: int) -> None:
        u = self.unknown_features
        for k, c in tally.items():
            u[k] = u.get(k, 0) + c
        self.unknown_other += other
        if len(u) > MAX_UNKNOWN:
            for k in sorted(u)[MAX_UNKNOWN:]:
                self.unknown_other += u.pop(k)

    def merge(self, other: WindowProfile) -> WindowProfile:
        """Add ``other`` into this profile (same reference required); returns self."""
        if other.reference.fingerprint != self.reference.fingerprint:
            raise ValueError("cannot merge window profiles built on different references")
        self.n_rows += other.n_rows
        for k, w in self.features.items():
            w.merge(other.features[k])  # type: ignore[arg-type]
        self._add_unknown(other.unknown_features, other.unknown_other)
        return self

    def copy(self) -> WindowProfile:
        return WindowProfile.from_dict(self.to_dict(), self.reference)

    def __add__(self, other: WindowProfile) -> WindowProfile:
        return self.copy().merge(other)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WindowProfile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def missing_rate(self, name: str) -> float:
        return self.features[name].missing / self.n_rows if self.n_rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; stores the reference's fingerprint, not the reference."""
        return {
            "v": 1,
            "reference": self.reference.fingerprint,
            "n_rows": self.n_rows,
            "features": {k: w.to_dict() for k, w in sorted(self.features.items())},
            "unknown_features": dict(sorted(self.unknown_features.items())),
            "unknown_other": self.unknown_other,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], reference: ReferenceProfile) -> WindowProfile:
        if d["reference"] != reference.fingerprint:
            raise ValueError("window profile was built on a different reference")
        w = cls(reference)
        w.n_rows = d["n_rows"]
        for k, fd in d["features"].items():
            w.features[k] = NumericWindow.from_dict(fd) if fd["type"] == "numeric" else CategoricalWindow.from_dict(fd)
        w.unknown_features = dict(d["unknown_features"])
        w.unknown_other = d["unknown_other"]
        return w

"""Window profiles: a window's features counted on the reference's bins.

A profile is O(features × bins) whatever the number of events, and merges by addition,
so shards (partitions, hash buckets of a hot model) build partial profiles and a second
stage adds them. Merging is *exact*: shard-then-merge equals one pass over all events,
bit for bit, including the moments. Float sums are not associative, so sums are kept as
exact dyadic rationals (``ExactSum``: an int numerator and a power-of-two exponent)
computed with numpy (``frexp`` + two ``bincount``s per column, no per-value Python). The
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
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from driftline.stream.feature_types import FeatureType, count_categories
from driftline.stream.reference import (
    CategoricalReference, NumericReference, ReferenceProfile, select_rows, take,
)

if TYPE_CHECKING:
    from driftline.schemas.batch import ObservationBatch

__all__ = ["CategoricalWindow", "ExactSum", "MAX_UNKNOWN", "NumericWindow", "WindowProfile"]

MAX_UNKNOWN = 64
_MASK26 = (1 << 26) - 1
_PASSES = 4  # extraction passes before the residual goes to of_segments
_SPILL_FRACTION = 8  # fewer than 1/8 of the cells left: of_segments beats another pass


@dataclasses.dataclass(frozen=True)
class ExactSum:
    """The exact value ``num * 2**exp`` of a sum of doubles, in canonical form (odd num).

    Examples:
        >>> s = ExactSum.of(np.array([0.1, 0.2, -0.3]))
        >>> float(s), float(ExactSum.of(np.array([0.1])) + ExactSum.of(np.array([0.2, -0.3])))
        (2.7755575615628914e-17, 2.7755575615628914e-17)
    """

    num: int = 0
    exp: int = 0

    @classmethod
    def of(cls, x: np.ndarray) -> "ExactSum":
        """Exact sum of finite float64 values."""
        return cls.of_segments(x, [len(x)])[0]

    @classmethod
    def of_segments(cls, x: np.ndarray, lengths: list[int]) -> list["ExactSum"]:
        """Exact sums of consecutive segments of ``x`` in one vectorised pass.

        Each double is ``mant * 2**(e-53)`` with an integer ``mant < 2**53``; the
        mantissas are split into 27-bit halves and summed per (segment, exponent) by
        ``bincount`` — float64 accumulators stay exact below ``2**53``, i.e. for fewer
        than 2**26 values per cell — then combined into Python ints per non-empty cell.
        """
        out = [cls()] * len(lengths)
        if x.size == 0:
            return out
        m, e = np.frexp(x)
        mant = (m * 9007199254740992.0).astype(np.int64)  # m * 2**53, exact
        emin = int(e.min())
        span = int(e.max()) - emin + 1
        seg = np.repeat(np.arange(len(lengths)), lengths)
        idx = seg * span + (e - emin)
        size = len(lengths) * span
        hi = np.bincount(idx, weights=mant >> 26, minlength=size)
        lo = np.bincount(idx, weights=mant & _MASK26, minlength=size)
        cells = np.flatnonzero((hi != 0) | (lo != 0))
        nums = [0] * len(lengths)
        for c, h, lw in zip(cells.tolist(), hi[cells].tolist(), lo[cells].tolist()):
            s, i = divmod(c, span)
            nums[s] += ((int(h) << 26) + int(lw)) << i
        return [cls._norm(n, emin - 53) for n in nums]

    @classmethod
    def of_rows(cls, m: np.ndarray, amax: np.ndarray | None = None,
                owned: bool = False) -> list["ExactSum"]:
        """Exact sums of the rows of a 2-D array of finite float64 values (see ``_rows_raw``)."""
        return [cls._norm(num, exp) for num, exp in cls._rows_raw(m, amax, owned)]

    @classmethod
    def _rows_raw(cls, m: np.ndarray, amax: np.ndarray | None = None,
                  owned: bool = False) -> list[tuple[int, int]]:
        """Exact row sums as ``(num, exp)`` pairs, not yet canonical (callers add them).

        Error-free extraction (Rump, Ogita & Oishi's ``ExtractVector``): with
        ``sigma = 2**k`` and every ``|x| <= 2**(k-K)``, ``q = (sigma + x) - sigma`` is
        a multiple of ``2**(k-54)``, ``x - q`` is exactly the rounding error of the
        addition, and for ``2**K >= 4n`` every partial sum of the ``q`` stays below
        ``2**(k-1)`` — so numpy sums them exactly, in any order. Each pass takes
        ``54 - K`` more bits of every value for four array operations over the whole
        matrix. Once few residuals are left (usually after two passes) they, and any
        residual left by the last pass or by extreme exponents, go to ``of_segments``
        in one call instead of another pass over the whole matrix.

        ``amax`` (each row's largest ``|x|``) may be given when the caller knows it;
        ``owned`` lets the passes overwrite ``m`` instead of a copy.
        """
        rows, n = m.shape
        if n == 0 or rows == 0:
            return [cls()] * rows
        k_bits = (n + 1).bit_length() + 2  # 2**K >= 4n
        if amax is None:
            amax = np.maximum(m.max(axis=1), -m.min(axis=1))
        k = np.frexp(amax)[1].astype(np.int64) + k_bits  # amax < 2**(k-K)
        owned = owned and m.dtype == np.float64 and m.flags.c_contiguous
        res = m if owned else np.array(m, dtype=np.float64)  # residuals, updated in place
        spill: list[tuple[int, np.ndarray]] = []
        usable = (k <= 1023) & (k - 54 >= -1022)  # sigma finite, grid of normal numbers
        if not usable.all():
            k = np.where(usable, k, 0)
            spill = [(int(r), res[r].copy()) for r in np.flatnonzero(~usable)]
            res[~usable] = 0.0
        nums = [0] * rows
        low = int(k.min()) - 54 - 54 * _PASSES  # every pass's grid is above this
        tmp = np.empty_like(res)
        for p in range(_PASSES):
            sigma = np.ldexp(1.0, k)[:, None]
            np.add(res, sigma, out=tmp)
            np.subtract(tmp, sigma, out=tmp)  # q, exact
            np.subtract(res, tmp, out=res)  # x - q, exact
            s = tmp.sum(axis=1)  # exact: multiples of 2**(k-54), below 2**(k-1)
            ints = np.ldexp(s, -(k - 54)).astype(np.int64).tolist()  # |.| < 2**53
            for r, (v, kr) in enumerate(zip(ints, k.tolist())):
                if v:
                    nums[r] += v << (kr - 54 - low)
            k = k - 54 + k_bits
            bits = res.view(np.int64)  # counting bit patterns is faster; -0.0 only costs a spill
            left = np.count_nonzero(bits)
            if not left:
                break
            if left * _SPILL_FRACTION <= res.size or p == _PASSES - 1:
                spill += [(int(r), res[r]) for r in np.flatnonzero(bits.any(axis=1))]
                break
            stop = k - 54 < -1022
            if stop.any():
                spill += [(int(r), res[r].copy()) for r in np.flatnonzero(stop)]
                res[stop] = 0.0
                k = np.where(stop, 0, k)
        out = [(v, low) for v in nums]
        if spill:
            parts = [v[v != 0] for _, v in spill]
            extra = cls.of_segments(np.concatenate(parts), [len(p) for p in parts])
            for (r, _), e in zip(spill, extra):
                if e.num:
                    e_low = min(low, e.exp)
                    out[r] = ((out[r][0] << (low - e_low)) + (e.num << (e.exp - e_low)), e_low)
        return out

    @classmethod
    def _norm(cls, num: int, exp: int) -> "ExactSum":
        if num == 0:
            return _ZERO
        tz = (num & -num).bit_length() - 1
        out = object.__new__(cls)  # the frozen dataclass __init__ costs twice as much
        out.__dict__.update(num=num >> tz, exp=exp + tz)
        return out

    def _plus(self, num: int, exp: int) -> "ExactSum":
        """``self + num * 2**exp`` for a not necessarily canonical pair."""
        if not num:
            return self
        if not self.num:
            return self._norm(num, exp)
        k = min(self.exp, exp)
        return self._norm((self.num << (self.exp - k)) + (num << (exp - k)), k)

    def __add__(self, other: "ExactSum") -> "ExactSum":
        if not other.num:
            return self
        if not self.num:
            return other
        k = min(self.exp, other.exp)
        return self._norm((self.num << (self.exp - k)) + (other.num << (other.exp - k)), k)

    def fraction(self) -> Fraction:
        return Fraction(self.num) * Fraction(2) ** self.exp

    def __float__(self) -> float:
        try:
            return float(self.num << self.exp) if self.exp >= 0 else self.num / (1 << -self.exp)
        except OverflowError:
            return float("inf") if self.num > 0 else float("-inf")

    def to_json(self) -> list[Any]:
        return [str(self.num), self.exp]

    @classmethod
    def from_json(cls, d: list[Any]) -> "ExactSum":
        return cls(int(d[0]), int(d[1]))


_ZERO = ExactSum()


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
        return [x, sq, x[b == 0] if delta[0] else empty,
                x[b == len(delta) - 1] if delta[-1] else empty]

    def add_sums(self, sums: list[ExactSum]) -> None:
        s, sq, u, o = sums
        self.sum += s
        self.sumsq += sq
        self.tail_sums = (self.tail_sums[0] + u, self.tail_sums[1] + o)

    def merge(self, o: "NumericWindow") -> None:
        self.counts += o.counts
        self.missing += o.missing
        self.type_errors += o.type_errors
        self.sum += o.sum
        self.sumsq += o.sumsq
        self.sumsq_overflow += o.sumsq_overflow
        self.tail_sums = (self.tail_sums[0] + o.tail_sums[0], self.tail_sums[1] + o.tail_sums[1])

    def to_dict(self) -> dict[str, Any]:
        return {"type": "numeric", "counts": self.counts.tolist(), "missing": self.missing,
                "type_errors": self.type_errors, "sum": self.sum.to_json(),
                "sumsq": self.sumsq.to_json(), "sumsq_overflow": self.sumsq_overflow,
                "tail_sums": [t.to_json() for t in self.tail_sums]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "NumericWindow":
        u, o = (ExactSum.from_json(t) for t in d["tail_sums"])
        return cls(np.asarray(d["counts"], np.int64), d["missing"], d["type_errors"],
                   ExactSum.from_json(d["sum"]), ExactSum.from_json(d["sumsq"]),
                   d["sumsq_overflow"], (u, o))


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

    def merge(self, o: "CategoricalWindow") -> None:
        self.counts += o.counts
        self.missing += o.missing
        self.type_errors += o.type_errors

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "counts": self.counts.tolist(),
                "missing": self.missing, "type_errors": self.type_errors}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CategoricalWindow":
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
    def of(cls, reference: ReferenceProfile, names: tuple[str, ...]) -> "_Layout":
        cache = reference.__dict__.setdefault("_layouts", {})
        layout = cache.get(names)
        if layout is None:
            refs = [reference.features[k] for k in names]
            width = max(len(r.edges) for r in refs)
            edges = np.full((len(refs), width), np.inf)
            for f, r in enumerate(refs):
                edges[f, :len(r.edges)] = r.edges
            sizes = np.array([r.n_bins for r in refs], np.intp)
            zero = np.array([np.searchsorted(r.edges, 0.0, "right") for r in refs], np.intp)
            offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
            layout = cache[names] = cls(refs, edges, offsets, zero, sizes - 1)  # type: ignore[arg-type]
        return layout

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
            cmp = x[i:i + step, None, :] >= self.edges[i:i + step, :, None]
            np.add.reduce(cmp.view(np.uint8), axis=1, dtype=np.uint8, out=out[i:i + step])
        return out


def _selection(batch: "ObservationBatch",
               rows: np.ndarray | slice | None) -> slice | np.ndarray | None:
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


def _take_rows(batch: "ObservationBatch", names: list[str], sel: slice | np.ndarray | None,
               n: int, out: np.ndarray) -> None:
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
        >>> w = ref.new_window()
        >>> w.features["x"].counts.tolist()   # underflow, 4 quantile bins, overflow
        [0, 0, 0, 0, 0, 0]
        >>> w.n_rows, (w + w) == w
        (0, True)
    """

    def __init__(self, reference: ReferenceProfile) -> None:
        self.reference = reference
        self.n_rows = 0
        self.features: dict[str, FeatureWindow] = {
            k: _empty(f) for k, f in reference.features.items()}
        self.unknown_features: dict[str, int] = {}
        self.unknown_other = 0

    def update(self, batch: "ObservationBatch",
               rows: np.ndarray | slice | None = None) -> "WindowProfile":
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

    def _update_numeric(self, batch: "ObservationBatch", names: list[str],
                        sel: slice | np.ndarray | None, n: int) -> None:
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
                rows = cells[ends[f] - int(n_bad[f]):ends[f]] - f * n
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
            w.counts += counts[layout.offsets[f]:layout.offsets[f + 1]]
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
    def _tails(x: np.ndarray, bins: np.ndarray, layout: _Layout,
               counts: np.ndarray) -> list[list[ExactSum]]:
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

    def merge(self, other: "WindowProfile") -> "WindowProfile":
        """Add ``other`` into this profile (same reference required); returns self."""
        if other.reference.fingerprint != self.reference.fingerprint:
            raise ValueError("cannot merge window profiles built on different references")
        self.n_rows += other.n_rows
        for k, w in self.features.items():
            w.merge(other.features[k])  # type: ignore[arg-type]
        self._add_unknown(other.unknown_features, other.unknown_other)
        return self

    def copy(self) -> "WindowProfile":
        return WindowProfile.from_dict(self.to_dict(), self.reference)

    def __add__(self, other: "WindowProfile") -> "WindowProfile":
        return self.copy().merge(other)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WindowProfile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def missing_rate(self, name: str) -> float:
        return self.features[name].missing / self.n_rows if self.n_rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; stores the reference's fingerprint, not the reference."""
        return {"v": 1, "reference": self.reference.fingerprint, "n_rows": self.n_rows,
                "features": {k: w.to_dict() for k, w in sorted(self.features.items())},
                "unknown_features": dict(sorted(self.unknown_features.items())),
                "unknown_other": self.unknown_other}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], reference: ReferenceProfile) -> "WindowProfile":
        if d["reference"] != reference.fingerprint:
            raise ValueError("window profile was built on a different reference")
        w = cls(reference)
        w.n_rows = d["n_rows"]
        for k, fd in d["features"].items():
            w.features[k] = (NumericWindow.from_dict(fd) if fd["type"] == "numeric"
                             else CategoricalWindow.from_dict(fd))
        w.unknown_features = dict(d["unknown_features"])
        w.unknown_other = d["unknown_other"]
        return w

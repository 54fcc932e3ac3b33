"""Exact sums of float64 values, mergeable in any order: profile moments merge bit for bit.

Float addition is not associative, so sums built per shard and added would differ from
one pass over all values. ``ExactSum`` keeps a sum as an exact dyadic rational (an int
numerator and a power-of-two exponent) computed with numpy — ``frexp`` + ``bincount``
(`ExactSum.of_segments`) or error-free extraction over whole matrices
(`ExactSum.of_rows`) — with no per-value Python.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["ExactSum"]

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
    def of(cls, x: np.ndarray) -> ExactSum:
        """Exact sum of finite float64 values."""
        return cls.of_segments(x, [len(x)])[0]

    @classmethod
    def of_segments(cls, x: np.ndarray, lengths: list[int]) -> list[ExactSum]:
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
    def of_rows(cls, m: np.ndarray, amax: np.ndarray | None = None, owned: bool = False) -> list[ExactSum]:
        """Exact sums of the rows of a 2-D array of finite float64 values (see ``_rows_raw``)."""
        return [cls._norm(num, exp) for num, exp in cls._rows_raw(m, amax, owned)]

    @classmethod
    def _rows_raw(cls, m: np.ndarray, amax: np.ndarray | None = None, owned: bool = False) -> list[tuple[int, int]]:
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
            return [(0, 0)] * rows
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
    def _norm(cls, num: int, exp: int) -> ExactSum:
        if num == 0:
            return _ZERO
        tz = (num & -num).bit_length() - 1
        out = object.__new__(cls)  # the frozen dataclass __init__ costs twice as much
        out.__dict__.update(num=num >> tz, exp=exp + tz)
        return out

    def _plus(self, num: int, exp: int) -> ExactSum:
        """``self + num * 2**exp`` for a not necessarily canonical pair."""
        if not num:
            return self
        if not self.num:
            return self._norm(num, exp)
        k = min(self.exp, exp)
        return self._norm((self.num << (self.exp - k)) + (num << (exp - k)), k)

    def __add__(self, other: ExactSum) -> ExactSum:
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
    def from_json(cls, d: list[Any]) -> ExactSum:
        return cls(int(d[0]), int(d[1]))


_ZERO = ExactSum()

"""River's ``drift.ADWIN`` as explicit JSON: its settings and its bucketed window, field by field.

Why: the performance tracker's and the score-drift detectors' ADWINs live in the stream's
changelogged table. Their learning state is not Python attributes but a Rust object
(``AdaptiveWindowing``) that River pickles as opaque bytes, so neither pickle nor an
allow-list can be avoided by saving attributes. This module reads those bytes with a
fixed layout (the serde/bincode encoding of river 0.26's Python-facing ``AdaptiveWindowing``:
the Rust window, then a copy of its five settings; little endian, fixed-width integers,
u64 lengths) into plain fields, and on load validates the
fields and packs them back into that layout itself. So what Rust deserialises is always
bytes this module built from checked values, never bytes read from a topic (River's
``__setstate__`` *panics*, a ``BaseException``, on malformed bytes).

The writer refuses a window whose layout or invariants it does not recognise (another
River version, a subclass, attributes it does not know), so an upgrade fails loudly at
save instead of being silently dropped. The reader checks every field's type and range,
the sizes (``MAX_LEVELS`` bucket levels, ``MAX_BUCKETS`` per level) and the invariants
the Rust code indexes by without checks (the window width equals the points the buckets
hold; no level holds more than ``max_buckets``; no level is empty beside others), so a
forged state cannot make a later ``update`` panic.

Examples:
    >>> import orjson
    >>> from river import drift
    >>> adwin = drift.ADWIN(delta=0.001)
    >>> for i in range(500):
    ...     _ = adwin.update(float(i % 3 == 0))
    >>> again = load_adwin(orjson.loads(orjson.dumps(dump_adwin(adwin))))
    >>> (again.width, again.estimation) == (adwin.width, adwin.estimation)
    True
    >>> load_adwin({"format": "driftline.river-state", "v": 1, "kind": "subprocess.Popen"})
    Traceback (most recent call last):
    ...
    ValueError: river state: adwin: unknown kind 'subprocess.Popen' (expected 'ADWIN')
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

from river._river_rust.drift import AdaptiveWindowing

from driftline.stream.drift.river_state import FORMAT, FORMAT_VERSION, Doc, _attrs, _enc, _fail, _header, _num, _short

__all__ = ["MAX_BUCKETS", "MAX_LEVELS", "adwin_settings", "dump_adwin", "load_adwin"]

MAX_LEVELS = 64
"""Bucket levels in one window (level ``i`` holds summaries of 2**i points; 64 covers any width)."""
MAX_BUCKETS = 1_000
"""``max_buckets``: summaries per level (River's default is 5; at least 2, see ``_check``)."""

_I32 = 2**31
_EXACT = 2**53  # widths are f64 counts: exact below this
_HEAD = struct.Struct("<diQddddddiiiiQ")
"""delta, clock, max_buckets, min_window_length, grace_period, total, variance, width,
total_width, n_buckets, max_n_buckets, tick, n_detections, number of levels."""
_ONLY_FLOATS = frozenset({float})
_ARRAYS = (list, tuple)  # JSON arrays; tuples as ``dump_adwin`` returns them before any JSON
_TAIL = struct.Struct("<diQii")  # the binding's own copy of delta, clock, max_buckets, min_window_length, grace_period
_ADWIN_ATTRS = frozenset(
    {"_drift_detected", "delta", "clock", "max_buckets", "min_window_length", "grace_period", "_helper"}
)
_SETTINGS = ("delta", "clock", "max_buckets", "min_window_length", "grace_period")
_FIELDS = frozenset({*_SETTINGS, "drift_detected", "window"})
_WINDOW = frozenset(
    {"total", "variance", "width", "total_width", "n_buckets", "max_n_buckets", "tick", "n_detections", "buckets"}
)


class _Window(NamedTuple):
    """Everything ``AdaptiveWindowing`` holds, in its field order; ``levels`` keep the used summaries only."""

    delta: float
    clock: int
    max_buckets: int
    min_window_length: int
    grace_period: int
    total: float
    variance: float
    width: float
    total_width: float
    n_buckets: int
    max_n_buckets: int
    tick: int
    n_detections: int
    levels: list[tuple[Sequence[float], Sequence[float]]]


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if type(value) is int and lo <= value < hi:
        return value
    n = int(_num(value, where, integer=True))
    if not lo <= n < hi:
        raise _fail(where, f"{n} out of range (must be in [{lo}, {hi}))")
    return n


def _delta(value: Any, where: str) -> float:
    d = float(_num(value, where))
    if not 0.0 < d < 1.0:
        raise _fail(where, f"{d!r} out of range (a significance level in (0, 1))")
    return d


def _check(w: _Window, where: str) -> _Window:
    """``w`` with every setting and invariant checked (shared by writer and reader)."""
    _delta(w.delta, f"{where}.delta")
    _int(w.clock, f"{where}.clock", 1, _I32)  # tick % clock
    # 0 makes River index past a level; with 1 River's own update panics on some streams (it empties
    # the oldest level, then deletes from it): a state must not be able to ask for either
    _int(w.max_buckets, f"{where}.max_buckets", 2, MAX_BUCKETS + 1)
    _int(w.min_window_length, f"{where}.min_window_length", 1, _I32)  # 0 lets a cut empty the window
    _int(w.grace_period, f"{where}.grace_period", 0, _I32)
    for name in ("n_buckets", "max_n_buckets", "tick", "n_detections"):
        _int(getattr(w, name), f"{where}.window.{name}", -_I32, _I32)  # i32 counters (they wrap)
    if not 1 <= len(w.levels) <= MAX_LEVELS:
        raise _fail(f"{where}.window.buckets", f"{len(w.levels)} levels (1 to {MAX_LEVELS} supported)")
    points = 0
    for i, (totals, variances) in enumerate(w.levels):
        if len(totals) != len(variances) or len(totals) > w.max_buckets:
            raise _fail(
                f"{where}.window.buckets[{i}]",
                f"{len(totals)} totals and {len(variances)} variances (equal, at most max_buckets={w.max_buckets})",
            )
        points += len(totals) << i
    if len(w.levels) > 1 and not all(totals for totals, _ in w.levels):
        # River deletes from the oldest level and drops it once empty; a merge leaves a level at
        # least max_buckets - 1 >= 1 summaries. An empty level would make a later delete panic.
        raise _fail(f"{where}.window.buckets", "an empty level beside others (River never leaves one)")
    if points >= _EXACT or w.width != float(points):
        raise _fail(f"{where}.window.width", f"{w.width!r} is not the {points} points the buckets hold")
    _num(w.total_width, f"{where}.window.total_width", finite=False, lo=0.0)
    return w


@functools.lru_cache(maxsize=256)
def _layout(cap: int, n_levels: int) -> struct.Struct:
    """The whole state: head, ``n_levels`` levels of ``cap`` slots (max_size, used, len(totals),
    totals, len(variances), variances), then the binding's settings."""
    return struct.Struct(_HEAD.format + f"QQQ{cap}dQ{cap}d".replace("<", "") * n_levels + _TAIL.format[1:])


def _parse(blob: bytes, where: str) -> _Window:
    """The fields of ``AdaptiveWindowing.__getstate__()``; ``ValueError`` if the layout is not the known one."""
    try:
        head = _HEAD.unpack_from(blob, 0)
        max_buckets, n_levels = head[2], head[-1]
        if not 2 <= max_buckets <= MAX_BUCKETS or not 1 <= n_levels <= MAX_LEVELS:
            raise _fail(where, f"max_buckets={max_buckets} and {n_levels} levels: out of this format's limits")
        cap = max_buckets + 1
        fields = _layout(cap, n_levels).unpack(blob)
        at, step = len(head), 2 * cap + 4
        levels: list[tuple[Sequence[float], Sequence[float]]] = []
        for _ in range(n_levels):
            used, t0, v0 = fields[at + 1], at + 3, at + 4 + cap
            if fields[at] != max_buckets or fields[at + 2] != cap or fields[v0 - 1] != cap:
                raise struct.error(
                    f"a level of {fields[at : at + 3]} / {fields[v0 - 1]} slots, max_buckets={max_buckets}"
                )
            if used > max_buckets or any(fields[t0 + used : v0 - 1]) or any(fields[v0 + used : v0 + cap]):
                raise struct.error(f"{used} used summaries of {max_buckets}, or a filled slot past them")
            levels.append((fields[t0 : t0 + used], fields[v0 : v0 + used]))
            at += step
        tail = fields[at:]
        if tail[:3] != head[:3] or (float(tail[3]), float(tail[4])) != head[3:5]:
            raise struct.error(f"the binding's settings {tail} differ from the window's {head[:5]}")
    except struct.error as exc:
        raise _fail(
            where, f"the Rust window's layout is not the one this format knows ({exc}): another River?"
        ) from None
    delta, clock, _, _, _, total, variance, width, total_width, n_buckets, max_n_buckets, tick, n_detections, _ = head
    return _Window(
        delta,
        clock,
        max_buckets,
        tail[3],
        tail[4],
        total,
        variance,
        width,
        total_width,
        n_buckets,
        max_n_buckets,
        tick,
        n_detections,
        levels,
    )


def _pack(w: _Window) -> bytes:
    """The bincode bytes ``AdaptiveWindowing.__setstate__`` reads, built from checked fields."""
    cap = w.max_buckets + 1
    flat: list[Any] = [
        w.delta,
        w.clock,
        w.max_buckets,
        float(w.min_window_length),
        float(w.grace_period),
        w.total,
        w.variance,
        w.width,
        w.total_width,
        w.n_buckets,
        w.max_n_buckets,
        w.tick,
        w.n_detections,
        len(w.levels),
    ]
    for totals, variances in w.levels:
        pad = [0.0] * (cap - len(totals))
        flat += (w.max_buckets, len(totals), cap, *totals, *pad, cap, *variances, *pad)
    flat += (w.delta, w.clock, w.max_buckets, w.min_window_length, w.grace_period)
    return _layout(cap, len(w.levels)).pack(*flat)


def _encoded(values: Sequence[float]) -> Sequence[float | str]:
    """``values`` for JSON: NaN and ±inf as their tokens (a finite sum means there are none)."""
    total = sum(values)
    return values if total - total == 0.0 else [_enc(v) for v in values]  # type: ignore[return-value]


def adwin_settings(detector: Any) -> tuple[Any, ...]:
    """``(delta, clock, max_buckets, min_window_length, grace_period)``: what an owner compares
    with the detector it would build itself."""
    return tuple(getattr(detector, name) for name in _SETTINGS)


def dump_adwin(detector: Any) -> Doc:
    """``detector``'s full state as a JSON-able dict; ``ValueError`` if it is not a plain ADWIN."""
    from river import drift  # not at import: river.drift imports every detector (and scipy)

    where = "adwin"
    if type(detector) is not drift.ADWIN:
        cls = type(detector)
        raise _fail(where, f"unsupported {cls.__module__}.{cls.__qualname__} (this format holds only drift.ADWIN)")
    _attrs(detector, _ADWIN_ATTRS, where)
    if type(detector._helper) is not AdaptiveWindowing or type(detector._drift_detected) is not bool:
        raise _fail(where, f"an ADWIN holding {_short(detector._helper)} / {_short(detector._drift_detected)}")
    w = _check(_parse(detector._helper.__getstate__(), where), where)
    for name in _SETTINGS:
        value = getattr(detector, name)
        if type(value) is not (float if name == "delta" else int) or value != getattr(w, name):
            raise _fail(f"{where}.{name}", f"{value!r} differs from the Rust window's {getattr(w, name)!r}")
    return {
        "format": FORMAT,
        "v": FORMAT_VERSION,
        "kind": "ADWIN",
        **{name: getattr(w, name) for name in _SETTINGS},
        "drift_detected": detector._drift_detected,
        "window": {
            "total": _enc(w.total),
            "variance": _enc(w.variance),
            "width": w.width,
            "total_width": _enc(w.total_width),
            "n_buckets": w.n_buckets,
            "max_n_buckets": w.max_n_buckets,
            "tick": w.tick,
            "n_detections": w.n_detections,
            "buckets": [[_encoded(totals), _encoded(variances)] for totals, variances in w.levels],
        },
    }


def _floats(value: Any, where: str, limit: int) -> Sequence[float]:
    """A list of at most ``limit`` numbers (NaN/±inf as their tokens), as floats."""
    if type(value) not in _ARRAYS or len(value) > limit:
        raise _fail(where, f"expected a list of at most {limit} numbers, got {_short(value)}")
    return [float(_num(v, f"{where}[{i}]", finite=False)) for i, v in enumerate(value)]


def _plain(value: Any, limit: int) -> bool:
    """``value`` is a list of at most ``limit`` plain floats (no NaN/inf tokens)."""
    return type(value) in _ARRAYS and len(value) <= limit and _ONLY_FLOATS.issuperset(map(type, value))


def _levels(value: Any, where: str, max_buckets: int) -> list[tuple[Sequence[float], Sequence[float]]]:
    if type(value) not in _ARRAYS or len(value) > MAX_LEVELS:
        raise _fail(where, f"expected a list of at most {MAX_LEVELS} levels, got {_short(value)}")
    out = []
    for i, level in enumerate(value):
        if type(level) not in _ARRAYS or len(level) != 2:
            raise _fail(f"{where}[{i}]", f"expected [totals, variances], got {_short(level)}")
        totals, variances = level
        if _plain(totals, max_buckets) and _plain(variances, max_buckets):
            out.append((totals, variances))  # the common case: no call per entry, no message built
            continue
        out.append(
            (_floats(level[0], f"{where}[{i}][0]", max_buckets), _floats(level[1], f"{where}[{i}][1]", max_buckets))
        )
    return out


def load_adwin(doc: Any) -> Any:
    """The ``drift.ADWIN`` that ``doc`` (from ``dump_adwin``) describes; ``ValueError`` if invalid."""
    from river import drift

    where = "adwin"
    if isinstance(doc, dict) and doc.get("kind") != "ADWIN":
        raise _fail(where, f"unknown kind {_short(doc.get('kind'))} (expected 'ADWIN')")
    d = _header(doc, where, "ADWIN", _FIELDS)
    win = d["window"]
    if not isinstance(win, dict) or set(win) != _WINDOW:
        raise _fail(f"{where}.window", f"expected an object with fields {sorted(_WINDOW)}, got {_short(win)}")
    if type(d["drift_detected"]) is not bool:
        raise _fail(f"{where}.drift_detected", f"expected a bool, got {_short(d['drift_detected'])}")
    max_buckets = _int(d["max_buckets"], f"{where}.max_buckets", 2, MAX_BUCKETS + 1)
    w = _check(
        _Window(
            _delta(d["delta"], f"{where}.delta"),
            _int(d["clock"], f"{where}.clock", 1, _I32),
            max_buckets,
            _int(d["min_window_length"], f"{where}.min_window_length", 1, _I32),
            _int(d["grace_period"], f"{where}.grace_period", 0, _I32),
            float(_num(win["total"], f"{where}.window.total", finite=False)),
            float(_num(win["variance"], f"{where}.window.variance", finite=False)),
            float(_num(win["width"], f"{where}.window.width", lo=0.0)),
            float(_num(win["total_width"], f"{where}.window.total_width", finite=False, lo=0.0)),
            _int(win["n_buckets"], f"{where}.window.n_buckets", -_I32, _I32),
            _int(win["max_n_buckets"], f"{where}.window.max_n_buckets", -_I32, _I32),
            _int(win["tick"], f"{where}.window.tick", -_I32, _I32),
            _int(win["n_detections"], f"{where}.window.n_detections", -_I32, _I32),
            _levels(win["buckets"], f"{where}.window.buckets", max_buckets),
        ),
        where,
    )
    detector = drift.ADWIN(
        delta=w.delta,
        clock=w.clock,
        max_buckets=w.max_buckets,
        min_window_length=w.min_window_length,
        grace_period=w.grace_period,
    )
    detector._helper.__setstate__(_pack(w))
    detector._drift_detected = d["drift_detected"]
    return detector

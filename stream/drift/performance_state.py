"""The ``PerformanceTracker``'s state document: written from plain fields, read with every field checked.

Why apart from ``performance``: reading untrusted bytes is most of this code, and the
tracker's module stays about metrics and signals. The document (orjson bytes):

- ``format``/``v``: ``driftline.performance-tracker``, version 2 (version 1 was pickle);
- ``task``, ``pos_label``, ``delta``, ``infer_rows``: the tracker's settings;
- ``buffer``: rows kept for task inference, each ``[model_id, event_id, ts, model_version,
  prediction, score, label, scores, label_ts]`` — not their features, which no metric or
  signal reads;
- ``versions``: ``[[model_version, track], ...]`` in the tracker's order; a track holds its
  River metrics (``river_state.dump_metric``), its ADWIN (``adwin_state.dump_adwin``), the
  counts ``n``/``n_scored`` and the ``warmup``/``recent`` error buffers and ``clip``.

Floats that diverged are the strings ``"NaN"``/``"Infinity"``/``"-Infinity"``, as in
``river_state``. Readers build objects by their constructors only; nothing is looked up by
a name from the data. ``performance.PerformanceTracker.from_state`` then checks that each
version's metrics and detector are the ones its task builds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from driftline.stream.drift.adwin_state import dump_adwin, load_adwin
from driftline.stream.drift.label_join import JoinedRow
from driftline.stream.drift.river_state import MAX_CLASSES, _enc, _label, _name, _num, _short, dump_metric, load_metric

__all__ = ["MAX_INFER_ROWS", "MAX_VERSIONS", "STATE_FORMAT", "STATE_VERSION", "TrackDoc", "TrackerDoc", "read", "write"]

STATE_FORMAT = "driftline.performance-tracker"
STATE_VERSION = 2  # 1 was pickle: refused since
MAX_VERSIONS = 10_000
"""Model versions in one tracker's state."""
MAX_INFER_ROWS = 100_000
"""``infer_rows`` a state may declare (it bounds the buffered rows)."""
_MAX_METRICS = 8
_FIELDS = frozenset({"format", "v", "task", "pos_label", "delta", "infer_rows", "buffer", "versions"})
_TRACK_FIELDS = frozenset({"metrics", "detector", "n", "n_scored", "warmup", "recent", "clip"})
_TASKS = ("binary", "multiclass", "regression")
_WHERE = "PerformanceTracker state"


@dataclasses.dataclass
class TrackDoc:
    """One version's checked track (the fields of ``performance._VersionTrack``)."""

    metrics: dict[str, Any]
    detector: Any
    n: int
    n_scored: int
    warmup: list[float]
    recent: list[float]
    clip: float | None


@dataclasses.dataclass
class TrackerDoc:
    """A checked tracker state."""

    task: str | None
    pos_label: Any
    delta: float
    infer_rows: int
    buffer: list[JoinedRow]
    versions: dict[str, TrackDoc]


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"{_WHERE}: {where}: {message}")


def _number(value: Any) -> Any:
    return None if value is None else _enc(value)


def _errors(values: Any) -> list[Any]:
    """Error buffers for JSON: NaN/±inf as their tokens (a finite sum means there are none)."""
    out = list(values)
    total = sum(out)
    return out if total - total == 0.0 else [_enc(e) for e in out]


def write(tracker: Any) -> bytes:
    """``tracker``'s state document as orjson bytes; ``ValueError`` if a River object is unsupported."""
    versions = [
        [
            name,
            {
                "metrics": {k: dump_metric(m) for k, m in t.metrics.items()},
                "detector": dump_adwin(t.detector),
                "n": t.n,
                "n_scored": t.n_scored,
                "warmup": _errors(t.warmup),
                "recent": _errors(t.recent),
                "clip": _number(t.clip),
            },
        ]
        for name, t in tracker._versions.items()
    ]
    buffer = [
        [
            r.model_id,
            r.event_id,
            _enc(r.ts),
            r.model_version,
            r.prediction,
            _number(r.score),
            r.label,
            None if r.scores is None else {k: _enc(v) for k, v in r.scores.items()},
            _number(r.label_ts),
        ]
        for r in tracker._buffer
    ]
    doc = {
        "format": STATE_FORMAT,
        "v": STATE_VERSION,
        "task": tracker.task,
        "pos_label": tracker.pos_label,
        "delta": tracker.delta,
        "infer_rows": tracker.infer_rows,
        "buffer": buffer,
        "versions": versions,
    }
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def _count(value: Any, where: str, hi: int = 2**63, lo: int = 0) -> int:
    n = int(_num(value, where, integer=True, lo=lo))
    if n >= hi:
        raise _fail(where, f"{n} out of range (must be below {hi})")
    return n


def _list(value: Any, where: str, limit: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise _fail(where, f"expected a list of at most {limit} entries, got {_short(value)}")
    return value


def _floats(value: Any, where: str, limit: int) -> list[float]:
    values = _list(value, where, limit)
    if all(type(v) is float for v in values):
        return values  # the common case (JSON floats are finite): no call per entry
    return [float(_num(v, f"{where}[{i}]", finite=False)) for i, v in enumerate(values)]


def _optional_number(value: Any, where: str, **kw: Any) -> float | None:
    return None if value is None else _num(value, where, finite=False, **kw)


def _row(value: Any, where: str) -> JoinedRow:
    if not isinstance(value, list) or len(value) != 9:
        raise _fail(where, f"expected a row of 9 fields, got {_short(value)}")
    model_id, event_id, ts, version, prediction, score, label, scores, label_ts = value
    if scores is not None:
        if not isinstance(scores, dict) or len(scores) > MAX_CLASSES:
            raise _fail(f"{where}.scores", f"expected an object of at most {MAX_CLASSES} scores, got {_short(scores)}")
        scores = {_name(k, f"{where}.scores key"): _num(v, f"{where}.scores", finite=False) for k, v in scores.items()}
    return JoinedRow(
        _name(model_id, f"{where}.model_id"),
        _name(event_id, f"{where}.event_id"),
        _num(ts, f"{where}.ts", finite=False),
        None if version is None else _name(version, f"{where}.model_version"),
        _label(prediction, f"{where}.prediction"),
        _optional_number(score, f"{where}.score"),
        _label(label, f"{where}.label"),
        None,
        scores,
        _optional_number(label_ts, f"{where}.label_ts"),
    )


def _track(value: Any, where: str, warmup: int, recent: int) -> TrackDoc:
    if not isinstance(value, dict) or set(value) != _TRACK_FIELDS:
        raise _fail(where, f"expected an object with fields {sorted(_TRACK_FIELDS)}, got {_short(value)}")
    metrics = value["metrics"]
    if not isinstance(metrics, dict) or len(metrics) > _MAX_METRICS:
        raise _fail(f"{where}.metrics", f"expected an object of at most {_MAX_METRICS} metrics")
    track = TrackDoc(
        {_name(k, f"{where}.metrics key"): load_metric(m) for k, m in metrics.items()},
        load_adwin(value["detector"]),
        _count(value["n"], f"{where}.n"),
        _count(value["n_scored"], f"{where}.n_scored"),
        _floats(value["warmup"], f"{where}.warmup", warmup - 1),
        _floats(value["recent"], f"{where}.recent", recent),
        None if value["clip"] is None else float(_num(value["clip"], f"{where}.clip", finite=False, lo=0.0)),
    )
    if track.clip is not None and track.warmup:
        raise _fail(where, "warm-up errors kept after the clip was set (they are fed and dropped then)")
    return track


def read(state: bytes, *, warmup: int, recent: int) -> TrackerDoc:
    """The checked document in ``state`` (``warmup``/``recent``: the tracker's buffer sizes);
    ``ValueError`` for anything ``write`` does not produce, old pickles included."""
    data = bytes(state)
    if data[:1] == b"\x80":  # pickle protocol 2+; what version 1 wrote
        raise ValueError(
            "this is an old pickled PerformanceTracker state (version 1), which is no longer "
            "loaded (pickle from a topic can run code): start a fresh tracker"
        )
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not a PerformanceTracker state (not JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise ValueError("not a PerformanceTracker state (no format marker)")
    if doc.get("v") != STATE_VERSION or isinstance(doc.get("v"), bool):
        raise ValueError(f"unknown PerformanceTracker state version {doc.get('v')!r:.40}")
    if set(doc) != _FIELDS:
        raise _fail("fields", f"{sorted(map(str, set(doc) ^ _FIELDS))} missing or unknown")
    task = doc["task"]
    if task is not None and task not in _TASKS:
        raise _fail("task", f"unknown task {_short(task)}")
    delta = float(_num(doc["delta"], "delta"))
    if not 0.0 < delta < 1.0:
        raise _fail("delta", f"{delta!r} out of range (a significance level in (0, 1))")
    infer_rows = _count(doc["infer_rows"], "infer_rows", MAX_INFER_ROWS + 1, lo=1)
    buffer = [_row(r, f"buffer[{i}]") for i, r in enumerate(_list(doc["buffer"], "buffer", infer_rows - 1))]
    pairs = _list(doc["versions"], "versions", MAX_VERSIONS)
    versions: dict[str, TrackDoc] = {}
    for i, pair in enumerate(pairs):
        if not isinstance(pair, list) or len(pair) != 2:
            raise _fail(f"versions[{i}]", f"expected a [model_version, track] pair, got {_short(pair)}")
        name = _name(pair[0], f"versions[{i}] name")
        if name in versions:
            raise _fail(f"versions[{i}]", f"model_version {name!r:.60} repeated")
        versions[name] = _track(pair[1], f"versions[{name!r:.60}]", warmup, recent)
    if task is None and versions:
        raise _fail("versions", "tracks without a task (a tracker infers its task before its first track)")
    if task is not None and buffer:
        raise _fail("buffer", "rows buffered although the task is known (they are fed once it is)")
    pos_label = None if doc["pos_label"] is None else _label(doc["pos_label"], f"{_WHERE}: pos_label")
    return TrackerDoc(task, pos_label, delta, infer_rows, buffer, versions)

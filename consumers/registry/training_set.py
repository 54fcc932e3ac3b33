"""Training sets as exact offset ranges of ``driftline.labeled``, with a content hash.

Why offsets: ``driftline.labeled`` is kept forever and only appended to, so
``(topic, partition, [start, end))`` names the same records forever; with the selection
rule (``select_rows``) and the SHA-256 of the canonical rows, anyone can rebuild the
training set of any version and prove it is the same (``rebuild``).

Pure: the rule and the hash. Reading the ranges is
``driftline.consumers.trainer.labeled_reader``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from driftline.schemas.registry import OffsetRange, TrainingLineage

__all__ = ["Located", "TrainingSet", "finish_training_set", "newest_overall", "rows_sha256", "select_rows"]

#: One model row as read: (partition, offset, decoded JoinedRow dict).
Located = tuple[int, int, dict[str, Any]]


@dataclass(frozen=True)
class TrainingSet:
    """The selected rows (time-ordered) and the lineage that reproduces them."""

    rows: list[dict[str, Any]]
    lineage: TrainingLineage


def select_rows(located: Iterable[Located], model_id: str, min_ts: float | None = None) -> list[dict[str, Any]]:
    """The selection rule (pure): the model's labeled rows with features, ``ts >= min_ts``,
    first occurrence of each ``event_id`` by (partition, offset), ordered by ``(ts, event_id)``.

    Examples
    --------
    >>> r = lambda e, ts: {"model_id": "m", "event_id": e, "ts": ts, "label": 1, "features": {"x": 1}}
    >>> [x["event_id"] for x in select_rows([(0, 5, r("b", 2.0)), (0, 3, r("a", 3.0)), (0, 9, r("b", 2.0))], "m")]
    ['b', 'a']
    """
    seen: set[str] = set()
    rows = []
    for _p, _o, row in sorted(located, key=lambda item: (item[0], item[1])):
        if row.get("model_id") != model_id or row.get("label") is None or not row.get("features"):
            continue
        if min_ts is not None and float(row["ts"]) < min_ts:
            continue
        if row["event_id"] in seen:
            continue
        seen.add(row["event_id"])
        rows.append(row)
    rows.sort(key=lambda row: (float(row["ts"]), str(row["event_id"])))
    return rows


def rows_sha256(rows: Sequence[dict[str, Any]]) -> str:
    """SHA-256 of the rows as canonical JSON lines (orjson, sorted keys, ``\\n``-terminated)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))
        digest.update(b"\n")
    return digest.hexdigest()


def newest_overall(
    scanned: dict[int, tuple[int, int, list[Located]]], max_rows: int
) -> dict[int, tuple[int, int, list[Located]]]:
    """Cut each partition's ``(start, end, rows)`` so that about ``max_rows`` rows are kept overall.

    Each partition was scanned for ``max_rows`` rows of its own; when a model's rows are in
    several partitions, only the newest ``max_rows`` by ``ts`` across all of them are wanted.
    A partition keeps its rows from the first one at or after that cut-off time, so its range
    stays a contiguous ``[start, end)`` that ``rebuild`` re-reads exactly.

    Examples
    --------
    >>> row = lambda ts: {"ts": ts}
    >>> cut = newest_overall({0: (0, 3, [(0, 0, row(1.0)), (0, 1, row(3.0)), (0, 2, row(5.0))]),
    ...                       1: (0, 2, [(1, 0, row(2.0)), (1, 1, row(4.0))])}, 3)
    >>> {p: (start, end, len(rows)) for p, (start, end, rows) in cut.items()}
    {0: (1, 3, 2), 1: (1, 2, 1)}
    """
    stamps = sorted((float(item[2].get("ts", 0.0)) for _, _, rows in scanned.values() for item in rows), reverse=True)
    if len(stamps) <= max_rows:
        return scanned
    cutoff = stamps[max_rows - 1]
    kept = {}
    for partition, (_start, end, rows) in scanned.items():
        first = next((i for i, item in enumerate(rows) if float(item[2].get("ts", 0.0)) >= cutoff), None)
        if first is not None:
            kept[partition] = (rows[first][1], end, rows[first:])
    return kept


def finish_training_set(
    topic: str, model_id: str, ranges: list[OffsetRange], located: list[Located], policy: str, min_ts: float | None
) -> TrainingSet:
    """The selected rows of ``located`` and the lineage (ranges, rule, hash) that reproduces them."""
    rows = select_rows(located, model_id, min_ts)
    lineage = TrainingLineage(topic, model_id, tuple(ranges), len(rows), rows_sha256(rows), policy, min_ts)
    return TrainingSet(rows, lineage)

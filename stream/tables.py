"""How one model's state lives in the agent's changelogged table, and how it is written.

Everything the agent keeps goes in **one** faust Table (``<app_id>-state``, raw bytes),
keyed by strings that all contain the model id:

- ``s|<model>`` → the model record: ``b"<partition>:<offset>\\n"`` + JSON of the monitor's
  ``to_state()`` (minus its reference rows, see below), the challenger's and the
  score-drift detectors' explicit JSON states (base64), the post-deployment check's state,
  and the list of reference-row chunks. The prefix is the source position of
  the last batch applied: the agent skips any redelivered batch at or below it, so the
  state sees every batch exactly once although faust runs at-least-once.
- ``rc|<model>|<start>`` → a chunk of the reference rows the monitor collects while it
  builds its own reference (raw values, up to ``reference.max_rows``): written once per
  batch as a delta instead of rewriting every row into every state record.
- ``j|…``, ``b|…``, ``m|…`` → the label-join buffer (``stream.label_join``), JSON.

Why one table: faust writes a table change to the changelog partition of the event being
processed, and one changelog partition is one ordered log. Written in the order
join → chunks → model record, a crash leaves a *prefix*: if the record with offset N is
in the changelog, so is everything batch N wrote. Join writes are staged
(``StagedStore``) and applied only after the batch's outputs were delivered, so a crash
re-emits outputs (same deterministic ids) and never records state for unsent ones.

**No code from data.** Nothing in a record is unpickled: every River object is in an
explicit format (``stream.drift.river_state``/``adwin_state``) read by fixed readers. A
part that is refused on decode — an old pickled state, a forged or damaged one — is
logged, counted (``refused``, and ``on_refused(model_id, part, reason)`` for the worker's
metrics) and replaced by a fresh object; the rest of the record still loads.

Decoded monitors are cached per model together with the position they were saved at; a
cache entry is used only if the table still holds that very position. The worker also
drops the whole cache on every partition revocation and assignment (``invalidate``):
after a rebalance the table, just rebuilt from the changelog, is the only truth. (An
earlier guard kept the cache when the table held an *older* position; that hid the real
bug — a batch finishing during recovery, see ``stream.app`` — and would trust state the
changelog never got, e.g. batches whose writes died with a killed worker.)
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import logging
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, cast

import orjson

from driftline.logs import log
from driftline.stream.drift.challenger import OnlineChallenger
from driftline.stream.drift.monitor import ModelMonitor, MonitorConfig
from driftline.stream.drift.performance import PerformanceTracker, Task
from driftline.stream.drift.score_drift import ScoreDrift
from driftline.stream.drift.served_quality import ServedQualityWatch

__all__ = ["JsonView", "ModelState", "ModelStateStore", "StagedStore", "state_key"]

logger = logging.getLogger(__name__)
_DELETED = object()
_STATE_VERSION = 1


def state_key(model_id: str) -> str:
    return f"s|{model_id}"


class JsonView(MutableMapping):
    """A str → JSON-able view of a str → bytes table (orjson both ways)."""

    def __init__(self, table: MutableMapping) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        return orjson.loads(self.table[key])

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.table.get(key)
        return default if raw is None else orjson.loads(raw)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key] = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)

    def __delitem__(self, key: str) -> None:
        del self.table[key]

    def __contains__(self, key: object) -> bool:
        return key in self.table

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


class StagedStore(MutableMapping):
    """Reads through to ``base``; writes are kept until ``flush()`` applies them in order.

    Examples:
        >>> base = {"a": 1}
        >>> s = StagedStore(base); s["b"] = 2; del s["a"]
        >>> ("a" in s, s.get("b"), base)
        (False, 2, {'a': 1})
        >>> s.flush(); base
        {'b': 2}
    """

    def __init__(self, base: MutableMapping) -> None:
        self.base = base
        self.writes: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self.writes:
            value = self.writes[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return self.base[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if key in self.writes:
            return self.writes[key] is not _DELETED
        return key in self.base

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self.writes[key] = _DELETED

    def __iter__(self) -> Iterator[str]:
        raise TypeError("StagedStore is not iterable (the base may be a large table)")

    def __len__(self) -> int:
        raise TypeError("StagedStore has no length (the base may be a large table)")

    def flush(self) -> None:
        """Apply staged writes to ``base`` in the order they were first made; forget them."""
        for key, value in self.writes.items():
            if value is _DELETED:
                if key in self.base:
                    del self.base[key]
            else:
                self.base[key] = value
        self.writes = {}


@dataclasses.dataclass
class ModelState:
    """One model's live objects and the position of the last batch applied to them."""

    monitor: ModelMonitor
    challenger: OnlineChallenger | None
    score_drift: ScoreDrift
    source: tuple[int, int] | None = None
    chunks: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    # base64 states of the challenger and score detector (JSON) as last saved; ``None`` = stale.
    # The agent clears one when it updates that object: re-serialising River models on
    # every batch was the costliest part of a save, and most batches change neither.
    blobs: dict[str, str | None] = dataclasses.field(default_factory=dict)
    quality: ServedQualityWatch | None = None
    """The post-deployment check of the serving version (JSON state, saved with the record)."""

    def touched(self, part: str) -> None:
        """``part`` (``challenger`` / ``score_drift``) changed: serialise it again at the next save."""
        self.blobs.pop(part, None)

    def applied(self, partition: int, offset: int) -> bool:
        """True if the batch at ``(partition, offset)`` is already in this state."""
        return self.source is not None and self.source[0] == partition and offset <= self.source[1]


class ModelStateStore:
    """Loads and saves ``ModelState`` in the table (layout in the module docstring)."""

    def __init__(
        self,
        table: MutableMapping,
        config: MonitorConfig,
        challenger: bool = True,
        tombstones: bool = False,
        on_refused: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.table = table
        self.config = config
        self.challenger = challenger
        self.tombstones = tombstones
        self.on_refused = on_refused
        """Called with ``(model_id, part, reason)`` for each refused part (the worker counts it)."""
        self.refused: collections.Counter[tuple[str, str]] = collections.Counter()
        """Refused parts so far, by ``(part, reason)``; reason ``pickle`` (an old pickled state) or ``invalid``."""
        self._cache: dict[str, tuple[bytes, ModelState]] = {}
        # a fresh tracker's state: ModelMonitor.from_state gets it in place of the saved one,
        # which is decoded here, where a refusal costs that part only, not the whole record
        fresh = PerformanceTracker(cast(Task, config.policy.task) or None)  # checked by PolicySettings
        self._fresh_tracker = base64.b64encode(fresh.to_state()).decode()

    def load(self, model_id: str, join_store: MutableMapping) -> ModelState:
        """The model's state (a fresh one if it has none), its join pointed at ``join_store``."""
        raw = self.table.get(state_key(model_id))
        if raw is None:
            self._cache.pop(model_id, None)
            monitor = ModelMonitor(model_id, self.config, join_store=join_store)
            state = ModelState(
                monitor,
                OnlineChallenger(self.config.policy.task or None) if self.challenger else None,
                ScoreDrift(),
                quality=ServedQualityWatch(model_id, self.config.quality),
            )
        else:
            head = bytes(raw[: raw.index(b"\n")])
            cached = self._cache.pop(model_id, None)  # mutated from here on: re-cached by save()
            if cached is not None and cached[0] == head:
                state = cached[1]
            else:
                if cached is not None:
                    log(
                        logger,
                        logging.INFO,
                        "table holds other state than the cached one; re-read",
                        model_id=model_id,
                        table=head.decode(),
                        cached=cached[0].decode(),
                    )
                state = self._decode(model_id, raw, join_store)
        state.monitor.join.store = join_store
        state.monitor.join.tombstones = self.tombstones
        return state

    def _decode(self, model_id: str, raw: bytes, join_store: MutableMapping) -> ModelState:
        head, _, body = bytes(raw).partition(b"\n")
        partition, offset = (int(x) for x in head.split(b":"))
        doc = orjson.loads(body)
        if doc.get("v") != _STATE_VERSION:
            raise ValueError(f"{model_id}: unknown state version {doc.get('v')!r}")
        chunks = [(int(s), int(n)) for s, n in doc["chunks"]]
        monitor_state = dict(doc["monitor"])
        monitor_state["reference_columns"] = self._read_chunks(model_id, chunks)
        tracker = self._part(model_id, "tracker", monitor_state.get("tracker"), PerformanceTracker.from_state)
        monitor_state["tracker"] = self._fresh_tracker
        monitor = ModelMonitor.from_state(monitor_state, self.config, join_store=join_store)
        if tracker is not None:
            monitor.tracker = tracker
        challenger, blob = self._challenger(model_id, doc.get("challenger")) if self.challenger else (None, None)
        blobs: dict[str, str | None] = {}
        score_drift = self._part(model_id, "score_drift", doc.get("score_drift"), ScoreDrift.from_state)
        if score_drift is None:
            score_drift = ScoreDrift()
        else:
            blobs["score_drift"] = doc["score_drift"]
        if blob:
            blobs["challenger"] = blob
        return ModelState(
            monitor,
            challenger,
            score_drift,
            (partition, offset),
            chunks,
            blobs,
            self._quality(model_id, doc.get("quality")),
        )

    def _part(self, model_id: str, part: str, blob: Any, read: Callable[[bytes], Any]) -> Any:
        """``read`` of the base64 ``blob``; ``None`` if there is none or it is refused (logged, counted)."""
        if blob is None:
            return None
        raw = b""
        try:
            if not isinstance(blob, str):
                raise ValueError(f"expected a base64 string, got {type(blob).__name__}")
            raw = base64.b64decode(blob, validate=True)
            return read(raw)
        except ValueError as exc:  # binascii.Error included
            self._refuse(model_id, part, "pickle" if raw[:1] == b"\x80" else "invalid", exc)
            return None

    def _refuse(self, model_id: str, part: str, reason: str, exc: Exception) -> None:
        self.refused[part, reason] += 1
        log(
            logger,
            logging.WARNING,
            f"{part.replace('_', ' ')} state refused; starting a fresh one",
            model_id=model_id,
            part=part,
            reason=reason,
            error=str(exc)[:300],
        )
        if self.on_refused is not None:
            self.on_refused(model_id, part, reason)

    def _challenger(self, model_id: str, blob: str | None) -> tuple[OnlineChallenger, str | None]:
        """The saved challenger and its blob; a fresh one (no blob) if none was saved or it is refused
        (an old pickle, a forged record)."""
        if blob:
            challenger = self._part(model_id, "challenger", blob, OnlineChallenger.from_state)
            if challenger is not None:
                return challenger, blob
        return OnlineChallenger(self.config.policy.task or None), None

    def _quality(self, model_id: str, doc: Any) -> ServedQualityWatch:
        if doc is None:
            return ServedQualityWatch(model_id, self.config.quality)
        try:
            return ServedQualityWatch.from_state(model_id, doc, self.config.quality)
        except ValueError as exc:
            self._refuse(model_id, "quality", "invalid", exc)
            return ServedQualityWatch(model_id, self.config.quality)

    def _read_chunks(self, model_id: str, chunks: list[tuple[int, int]]) -> dict[str, list]:
        columns: dict[str, list] = {}
        rows = 0
        for start, n in chunks:
            chunk = orjson.loads(self.table[f"rc|{model_id}|{start}"])
            for name in chunk:
                columns.setdefault(name, [None] * rows)
            for name, column in columns.items():
                column.extend(chunk.get(name) or [None] * n)
            rows += n
        return columns

    def save(self, state: ModelState, partition: int, offset: int) -> None:
        """Write the reference-row delta, then the model record stamped ``partition:offset``."""
        monitor = state.monitor
        model_id = monitor.model_id
        self._write_chunks(model_id, state)
        doc = monitor.to_state()
        doc["reference_columns"] = {}
        record = {
            "v": _STATE_VERSION,
            "monitor": doc,
            "chunks": state.chunks,
            "challenger": None if state.challenger is None else self._blob(state, "challenger", state.challenger),
            "score_drift": self._blob(state, "score_drift", state.score_drift),
            "quality": None if state.quality is None else state.quality.to_state(),
        }
        head = f"{partition}:{offset}".encode()
        self.table[state_key(model_id)] = head + b"\n" + orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY)
        state.source = (partition, offset)
        self._cache[model_id] = (head, state)

    @staticmethod
    def _blob(state: ModelState, part: str, obj: Any) -> str:
        blob = state.blobs.get(part)
        if blob is None:
            blob = state.blobs[part] = base64.b64encode(obj.to_state()).decode()
        return blob

    def _write_chunks(self, model_id: str, state: ModelState) -> None:
        monitor = state.monitor
        persisted = sum(n for _, n in state.chunks)
        rows = monitor.reference_rows if monitor.reference_columns else 0
        if rows < persisted:  # the reference was built (columns dropped): drop the chunks
            for start, _ in state.chunks:
                self.table.pop(f"rc|{model_id}|{start}", None)
            state.chunks, persisted = [], 0
        if rows > persisted:
            chunk = {name: column[persisted:rows] for name, column in monitor.reference_columns.items()}
            self.table[f"rc|{model_id}|{persisted}"] = orjson.dumps(chunk, option=orjson.OPT_SERIALIZE_NUMPY)
            state.chunks = [*state.chunks, (persisted, rows - persisted)]

    def keep(self, state: ModelState) -> None:
        """Re-cache a loaded state that was not changed (a skipped redelivery)."""
        if state.source is not None:
            head = f"{state.source[0]}:{state.source[1]}".encode()
            self._cache[state.monitor.model_id] = (head, state)

    def forget(self, model_id: str) -> None:
        """Drop the decoded cache entry (tests; the position check makes it optional)."""
        self._cache.pop(model_id, None)

    def invalidate(self) -> None:
        """Drop every cached state (on rebalance: the recovered table is the truth)."""
        self._cache.clear()

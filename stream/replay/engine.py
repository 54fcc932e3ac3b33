"""Backtesting: run the live monitor over a file of past events.

``driftline replay`` exists so users can try a policy on their own history before trusting
it in production; that is only worth anything if it runs *exactly* the code the live
agent runs. So this module does no drift logic at all: it decodes lines with the event
codec, packs each model's events into the same columnar batches ingest produces, and
hands them to ``ModelMonitor``. Batch boundaries do not change results (the monitor
cuts batches at window closes), so ``batch_size`` only trades memory for speed.

Output order: lines are decoded in chunks of ``batch_size`` into one batch per model, so
a chunk's batches cover one range of input lines, and their decisions are emitted sorted
by ``at_index``; stdout is therefore in input order across models too.

``jobs > 1`` decodes the chunks in ``jobs - 1`` worker processes, and here when they
have enough to do (`stream.replay_decode`); the monitor stays here, and chunks are
applied in input order, so the output is the same as with one process.
`Replay.feed_file` lets the workers read a regular file themselves.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any, cast

from driftline.schemas.batch import ObservationBatch
from driftline.schemas.codec import decode_event
from driftline.schemas.control import RetrainRequested
from driftline.schemas.events import InvalidEvent
from driftline.stream.drift.feature_types import FeatureType
from driftline.stream.drift.monitor import ModelMonitor, MonitorConfig
from driftline.stream.drift.policy import WindowClosed
from driftline.stream.drift.reference import ReferenceProfile
from driftline.stream.replay.decode import DecodedChunk, ParallelDecoder, decode_chunk, line_ranges

__all__ = ["InvalidLine", "Replay", "ReplaySummary", "read_reference", "replay_lines"]

FILE_CHUNK_BYTES = 1 << 20
"""Bytes read at a time by `Replay.feed_stream` (and `Replay.feed_file` in one process)."""
RANGE_BYTES_PER_EVENT = 512
"""A worker's byte range is ``batch_size`` times this (about a batch of 20-feature lines)."""

MAX_INVALID_LISTED = 100
"""Invalid lines kept with their reasons in the summary (all are counted)."""


@dataclasses.dataclass(frozen=True)
class InvalidLine:
    """A line the codec rejected: 0-based line number and the rule it broke."""

    line: int
    field: str
    rule: str
    detail: str


@dataclasses.dataclass
class ReplaySummary:
    """Counts for the end-of-run summary on stderr."""

    lines: int = 0
    events: int = 0
    invalid: int = 0
    invalid_lines: list[InvalidLine] = dataclasses.field(default_factory=list)
    windows: int = 0
    decisions: int = 0
    late_events: int = 0
    models: int = 0
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["events_per_s"] = round(self.events_per_s, 1)
        return out


Sink = Callable[[Any], None]


class Replay:
    """Feeds lines of raw events to one ``ModelMonitor`` per model.

    ``on_decision`` receives each ``RetrainRequested`` and ``on_window`` each
    ``WindowClosed``, in input order.

    Examples
    --------
    >>> decisions = []
    >>> r = Replay(on_decision=decisions.append)
    >>> r.feed([b'{"model_id": "m", "event_id": "e1", "ts": 1, "features": {"x": 1.5}}', b'not json'])
    >>> s = r.finish(); (s.events, s.invalid, s.invalid_lines[0].line, decisions)
    (1, 1, 1, [])
    """

    def __init__(
        self,
        config: MonitorConfig | None = None,
        references: Mapping[str, ReferenceProfile] | None = None,
        batch_size: int = 4096,
        on_decision: Sink | None = None,
        on_window: Sink | None = None,
        jobs: int = 1,
    ) -> None:
        self.config = config or MonitorConfig()
        self.references = dict(references or {})
        self.batch_size = max(1, int(batch_size))
        self.on_decision = on_decision
        self.on_window = on_window
        self.jobs = max(1, int(jobs))
        """Processes decoding lines, this one included; above 1, ``jobs - 1`` `ParallelDecoder`
        workers (the monitor stays here)."""
        self.monitors: dict[str, ModelMonitor] = {}
        self.summary = ReplaySummary()
        self._carry: list[bytes] = []  # lines not yet in a full chunk
        self._next_line = 0
        self._decoder: ParallelDecoder | None = None
        self._started = time.perf_counter()

    def feed(self, lines: Iterable[bytes]) -> None:
        """Decode and process lines (continuing the line numbering of earlier calls).

        Lines are cut into chunks of ``batch_size``; each chunk is decoded a run at a
        time by ``decode_features`` (columns, no event objects) into one batch per model
        (`decode_chunk`), and the batches go to the monitors in input order.
        """
        self._carry.extend(lines)
        size = self.batch_size
        if len(self._carry) < size:
            return
        cut = len(self._carry) - len(self._carry) % size
        full, self._carry = self._carry[:cut], self._carry[cut:]
        for start in range(0, cut, size):
            self._decode(full[start : start + size])

    def feed_file(self, path: str | os.PathLike[str], on_chunk: Callable[[], None] | None = None) -> None:
        """Process every line of a regular file (``on_chunk`` after each chunk, e.g. progress).

        With ``jobs > 1`` the workers read byte ranges themselves, about
        ``batch_size * RANGE_BYTES_PER_EVENT`` bytes each (`ParallelDecoder.submit_range`);
        with one process, or a file of one range, the lines are read here and fed. The
        output is the same either way.
        """
        if self._carry:
            raise ValueError("feed_file after feed: the lines fed so far must be finished first")
        ranges = line_ranges(path, self.batch_size * RANGE_BYTES_PER_EVENT) if self.jobs > 1 else []
        if len(ranges) < 2:
            with open(path, "rb") as handle:
                self.feed_stream(handle, on_chunk)
            return
        if self._decoder is None:
            self._decoder = ParallelDecoder(self.jobs)
        for chunk in self._decoder.drain():  # chunks of earlier `feed` calls come first
            self._apply(chunk)
        for offset, length in ranges:
            for chunk in self._decoder.submit_range(str(path), offset, length):
                self._apply_next(chunk)
                if on_chunk is not None:
                    on_chunk()
        for chunk in self._decoder.drain():  # numbered here, so none is left for `finish`
            self._apply_next(chunk)

    def feed_stream(self, handle: IO[bytes], on_chunk: Callable[[], None] | None = None) -> None:
        """Process every line of an open binary stream (stdin, a pipe), read about
        ``FILE_CHUNK_BYTES`` at a time (``on_chunk`` after each)."""
        while chunk := handle.readlines(FILE_CHUNK_BYTES):
            self.feed(chunk)
            if on_chunk is not None:
                on_chunk()

    def _apply_next(self, chunk: DecodedChunk) -> None:
        """A chunk of a file range: its lines follow the lines applied so far."""
        chunk = chunk.rebased(self._next_line)
        self._next_line += chunk.lines
        self._apply(chunk)

    def _decode(self, lines: list[bytes]) -> None:
        base = self._next_line
        self._next_line += len(lines)
        if self.jobs == 1:
            self._apply(decode_chunk(base, lines))
            return
        if self._decoder is None:
            self._decoder = ParallelDecoder(self.jobs)  # only once a full chunk exists
        for chunk in self._decoder.submit(base, lines):
            self._apply(chunk)

    def _apply(self, chunk: DecodedChunk) -> None:
        for line, event in chunk.invalid:
            self._invalid(line, event)
        self._process(chunk.batches)
        self.summary.lines = chunk.base + chunk.lines

    def _invalid(self, line_no: int, event: InvalidEvent) -> None:
        self.summary.invalid += 1
        if len(self.summary.invalid_lines) < MAX_INVALID_LISTED:
            self.summary.invalid_lines.append(InvalidLine(line_no, event.field, event.rule, event.detail))

    def _monitor(self, model_id: str) -> ModelMonitor:
        monitor = self.monitors.get(model_id)
        if monitor is None:
            reference = self.references.get(model_id)
            if reference is None and len(self.references) == 1:
                reference = next(iter(self.references.values()))
            monitor = self.monitors[model_id] = ModelMonitor(model_id, self.config, reference)
        return monitor

    def _process(self, batches: list[ObservationBatch]) -> None:
        """Run each model's batch (all from one range of lines); emit sorted by line."""
        decisions: list[RetrainRequested] = []
        windows: list[WindowClosed] = []
        for batch in batches:
            out = self._monitor(batch.model_id).process(batch)
            decisions += out.decisions
            windows += out.windows
            self.summary.events += len(batch)
            self.summary.late_events += out.late_events
        self.summary.windows += len(windows)
        self.summary.decisions += len(decisions)
        results: list[tuple[int, int, Any, Sink | None]] = [
            (w.window.at_index, 0, w, self.on_window) for w in windows
        ] + [(d.at_index, 1, d, self.on_decision) for d in decisions]
        results.sort(key=lambda r: (r[0], r[1]))  # stable: per-model order kept at equal rows
        for _, _, item, sink in results:
            if sink is not None:
                sink(item)

    def finish(self) -> ReplaySummary:
        """Process the last, partial chunk and return the summary. Windows still open are
        not closed: the watermark never passed them, exactly as in the live agent."""
        carry, self._carry = self._carry, []
        if self._decoder is None:  # one process, or a short input: no workers started
            if carry:
                self._apply(decode_chunk(self._next_line, carry))
                self._next_line += len(carry)
        else:
            try:
                if carry:
                    self._decode(carry)
                for chunk in self._decoder.drain():
                    self._apply(chunk)
            finally:
                self._decoder.close()
                self._decoder = None
        self.summary.models = len(self.monitors)
        self.summary.seconds = time.perf_counter() - self._started
        return self.summary


def replay_lines(
    lines: Iterable[bytes],
    config: MonitorConfig | None = None,
    references: Mapping[str, ReferenceProfile] | None = None,
    batch_size: int = 4096,
    jobs: int = 1,
) -> tuple[list[RetrainRequested], list[WindowClosed], ReplaySummary]:
    """Replay ``lines`` and collect everything (tests, notebooks, benchmarks)."""
    decisions: list[RetrainRequested] = []
    windows: list[WindowClosed] = []
    replay = Replay(config, references, batch_size, decisions.append, windows.append, jobs)
    replay.feed(lines)
    return decisions, windows, replay.finish()


def read_reference(lines: Iterable[bytes], config: MonitorConfig | None = None) -> dict[str, ReferenceProfile]:
    """Reference profiles per model from raw events: their features are the reference rows.

    Events without features (labels, bare predictions) and invalid lines are skipped.
    """
    settings = (config or MonitorConfig()).reference
    rows: dict[str, list[dict[str, Any]]] = {}
    for raw in lines:
        event = decode_event(raw)
        features = getattr(event, "features", None)
        if not isinstance(event, InvalidEvent) and features is not None:
            rows.setdefault(event.model_id, []).append(features)
    declared = cast(dict[str, FeatureType], dict(settings.types))  # FeatureType is a str enum
    return {
        model_id: ReferenceProfile.from_rows(model_rows, declared, settings.numeric_bins, settings.top_k)
        for model_id, model_rows in rows.items()
    }

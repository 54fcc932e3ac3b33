"""Decode replay lines into per-model batches, in worker processes and in this one.

On a file of 20-feature events, decoding (parsing, validation, columns) is about two
thirds of a replay's CPU time and the monitor one third; both are Python, so one
process uses one core. `ParallelDecoder` moves most of the decoding into worker
processes (`stream.decode_worker`) and keeps the monitor in the caller, which decodes
a chunk itself whenever the workers have enough queued: chunks go out in order and
come back in order, so the monitor sees the same events in the same order as with one
process.

A chunk comes back as small picklable pieces (`Packed`): numpy arrays, plain lists,
and the purely numeric feature columns as one float64 matrix — the same split as the
version 2 observation batch, so the caller rebuilds each batch without parsing.

From a regular file the workers read the lines themselves (`submit_range`: a byte
range that ends at a line end): the caller then neither reads nor pickles lines. A
worker numbers its lines from 0; the caller shifts them by the lines of the ranges
before (`DecodedChunk.rebased`).
"""

from __future__ import annotations

import io
import multiprocessing
import os
import pickle
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any

from driftline.schemas.batch import BatchBuilder, ObservationBatch
from driftline.schemas.columnar import FeatureRun, decode_features
from driftline.schemas.events import InvalidEvent
from driftline.stream.replay.decode_worker import WorkerProcess, scratch_directory, stop_workers

__all__ = ["DecodedChunk", "ParallelDecoder", "decode_chunk", "line_ranges"]

QUEUED_PER_WORKER = 3
"""Chunks waiting per worker before the caller's process decodes the next one itself."""


@dataclass
class DecodedChunk:
    """Lines ``base`` .. ``base + lines - 1``: each model's batch, and the invalid lines."""

    base: int
    lines: int
    batches: list[ObservationBatch]
    invalid: list[tuple[int, InvalidEvent]]

    def rebased(self, base: int) -> DecodedChunk:
        """The same chunk with its lines numbered from ``base`` instead of ``self.base``."""
        shift = base - self.base
        for batch in self.batches:
            if batch.index is not None:
                batch.index = batch.index + shift
        return DecodedChunk(base, self.lines, self.batches, [(line + shift, e) for line, e in self.invalid])


def decode_chunk(base: int, lines: list[bytes]) -> DecodedChunk:
    """Decode lines (numbered from `base`) into one batch per model, in first-seen order."""
    builders: dict[str, BatchBuilder] = {}
    invalid: list[tuple[int, InvalidEvent]] = []
    for item in decode_features(lines):
        if type(item) is FeatureRun:
            first = base + item.start
            for model_id, rows, picked in item.by_model():
                index = range(first, first + len(rows)) if picked is None else [first + row for row in picked]
                _builder(builders, model_id).add_run(rows, index)
            continue
        row, event = item  # type: ignore[misc]
        if isinstance(event, InvalidEvent):
            invalid.append((base + row, event))
        else:
            _builder(builders, event.model_id).add(event, base + row)
    return DecodedChunk(base, len(lines), [b.build() for b in builders.values()], invalid)


def _builder(builders: dict[str, BatchBuilder], model_id: str) -> BatchBuilder:
    builder = builders.get(model_id)
    if builder is None:
        builder = builders[model_id] = BatchBuilder(model_id)
    return builder


Packed = tuple[Any, ...]


def pack(batch: ObservationBatch) -> Packed:
    """A batch as picklable parts; numeric feature columns as one float64 matrix."""
    names, lists = batch.numeric_split()
    matrix = batch.numeric_matrix(names) if names else None
    return (
        batch.model_id,
        batch.kind,
        batch.event_id,
        batch.ts,
        batch.has_features,
        batch.model_version,
        batch.prediction,
        batch.score,
        batch.scores,
        batch.label,
        batch.index,
        names,
        lists,
        matrix,
    )


def unpack(parts: Packed) -> ObservationBatch:
    """The batch `pack` took apart (numeric columns read from the matrix, lists on demand)."""
    (
        model_id,
        kind,
        event_id,
        ts,
        has_features,
        model_version,
        prediction,
        score,
        scores,
        label,
        index,
        names,
        lists,
        matrix,
    ) = parts
    batch = ObservationBatch(
        model_id, kind, event_id, ts, has_features, lists, model_version, prediction, score, scores, label, index
    )
    if names:
        batch.attach_numeric(names, matrix)
    return batch


def line_ranges(path: str | os.PathLike[str], size: int) -> list[tuple[int, int]]:
    """``(offset, length)`` ranges of about ``size`` bytes covering the file, each ending
    just after a line end (the last at the end of the file)."""
    ranges = []
    with open(path, "rb") as handle:
        end = os.fstat(handle.fileno()).st_size
        start = 0
        while start < end:
            stop = min(start + size, end)
            if stop < end:
                handle.seek(stop - 1)
                stop = stop - 1 + len(handle.readline())  # through the next line end (or EOF)
            ranges.append((start, stop - start))
            start = stop
    return ranges


def read_lines(path: str | os.PathLike[str], offset: int, length: int) -> list[bytes]:
    """The lines of a byte range, split exactly as ``readlines`` splits the file."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        return io.BytesIO(handle.read(length)).readlines()


def _context() -> multiprocessing.context.BaseContext:
    """fork where there is one (workers start at once, modules already imported): replay
    runs no threads of its own; spawn elsewhere."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class ParallelDecoder:
    """Decode chunks in ``jobs - 1`` worker processes and in this one; results come back
    in submission order.

    This process also runs the monitor, so it decodes a chunk itself only when every
    worker already has `QUEUED_PER_WORKER` chunks to do: then the workers are the
    bottleneck, and this process would otherwise wait for them. On two cores, one worker
    plus this process beats two workers and a monitor that waits: three busy processes
    on two cores pay in context switches and cold caches.

    At most ``4 * jobs`` chunks are in flight (decoded here or not), so memory stays
    bounded on any file.
    """

    def __init__(self, jobs: int) -> None:
        self.jobs = max(2, jobs)
        self._directory = scratch_directory()
        context = _context()
        self._workers = [
            WorkerProcess(_run_task, self._directory, context, f"driftline-decode-{i}") for i in range(self.jobs - 1)
        ]
        self._stop = weakref.finalize(self, stop_workers, self._workers, self._directory)
        self._slots: deque[tuple[WorkerProcess, int] | DecodedChunk] = deque()
        self._received: dict[int, DecodedChunk] = {}
        self._next_task = 0
        self.decoded_here = 0
        """Chunks this process decoded itself (how the work was shared; for benchmarks)."""

    def submit(self, base: int, lines: list[bytes]) -> list[DecodedChunk]:
        """Queue a chunk; return the chunks finished meanwhile, in order."""
        worker = self._free_worker()
        if worker is None:
            return self._keep(decode_chunk(base, lines))
        path = os.path.join(self._directory, f"lines-{self._next_task}")
        with open(path, "wb") as handle:  # not through the pipe: a full pipe would block us
            pickle.dump(lines, handle, protocol=pickle.HIGHEST_PROTOCOL)
        return self._send(worker, ("lines", path, 0, 0, base))

    def submit_range(self, path: str, offset: int, length: int) -> list[DecodedChunk]:
        """Like `submit`, for the lines of a byte range read by whoever decodes it
        (numbered from 0: see `DecodedChunk.rebased`)."""
        worker = self._free_worker()
        if worker is None:
            return self._keep(decode_chunk(0, read_lines(path, offset, length)))
        return self._send(worker, ("range", path, offset, length, 0))

    def drain(self) -> list[DecodedChunk]:
        """Every chunk still in flight, in order."""
        return [self._take() for _ in range(len(self._slots))]

    def close(self) -> None:
        """Stop the workers and remove their files (chunks not taken are dropped)."""
        self._stop()

    def _free_worker(self) -> WorkerProcess | None:
        """The worker with the fewest chunks to do, unless all have enough."""
        self._collect()
        worker = min(self._workers, key=lambda w: w.outstanding)
        return worker if worker.outstanding < QUEUED_PER_WORKER else None

    def _send(self, worker: WorkerProcess, task: tuple[Any, ...]) -> list[DecodedChunk]:
        task_id = self._next_task
        self._next_task += 1
        worker.send(task_id, task)
        return self._keep((worker, task_id))

    def _keep(self, slot: tuple[WorkerProcess, int] | DecodedChunk) -> list[DecodedChunk]:
        if type(slot) is DecodedChunk:
            self.decoded_here += 1
        self._slots.append(slot)
        done = []
        while self._slots and (len(self._slots) > 4 * self.jobs or self._ready(self._slots[0])):
            done.append(self._take())
        return done

    def _ready(self, slot: tuple[WorkerProcess, int] | DecodedChunk) -> bool:
        return isinstance(slot, DecodedChunk) or slot[1] in self._received

    def _take(self) -> DecodedChunk:
        slot = self._slots.popleft()
        if isinstance(slot, DecodedChunk):
            return slot
        worker, task_id = slot
        while task_id not in self._received:  # a worker's results arrive in send order
            self._receive(worker)
        return self._received.pop(task_id)

    def _collect(self) -> None:
        """Receive every result already finished, so `_free_worker` counts only work left."""
        for worker in self._workers:
            while worker.ready():
                self._receive(worker)

    def _receive(self, worker: WorkerProcess) -> None:
        task_id, (base, lines, packed, invalid) = worker.receive()
        self._received[task_id] = DecodedChunk(base, lines, [unpack(p) for p in packed], invalid)


def _run_task(task: tuple[Any, ...]) -> tuple[int, int, list[Packed], list[tuple[int, InvalidEvent]]]:
    """A worker's task: the lines of a byte range, or a list of lines left in a file."""
    kind, path, offset, length, base = task
    if kind == "lines":
        with open(path, "rb") as handle:
            lines = pickle.load(handle)
        os.unlink(path)
    else:
        lines = read_lines(path, offset, length)
    chunk = decode_chunk(base, lines)
    return chunk.base, chunk.lines, [pack(b) for b in chunk.batches], chunk.invalid

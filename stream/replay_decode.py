"""Decode replay lines into per-model batches, in worker processes.

On a file of 20-feature events, decoding (orjson, validation, columns) is about two
thirds of a replay's CPU time and the monitor one third; both are Python, so one
process uses one core. `ParallelDecoder` moves the decoding into worker processes and
keeps the monitor in the caller: chunks of lines go out in order and come back in
order, so the monitor sees the same events in the same order as with one process.

A chunk comes back as small picklable pieces (`Packed`): numpy arrays, plain lists,
and the purely numeric feature columns as one float64 matrix — the same split as the
version 2 observation batch, so the caller rebuilds each batch without parsing.

From a regular file the workers read the lines themselves (`submit_range`: a byte
range that ends at a line end): the caller then neither reads nor pickles lines, and
only the monitor is left in its process. A worker numbers its lines from 0; the caller
shifts them by the lines of the ranges before (`DecodedChunk.rebased`).
"""

from __future__ import annotations

import io
import multiprocessing
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from driftline.schemas.batch import BatchBuilder, ObservationBatch
from driftline.schemas.columnar import FeatureRun, decode_features
from driftline.schemas.events import InvalidEvent

__all__ = ["DecodedChunk", "ParallelDecoder", "decode_chunk", "line_ranges"]


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
                index = (range(first, first + len(rows)) if picked is None
                         else [first + row for row in picked])
                _builder(builders, model_id).add_run(rows, index)
            continue
        row, event = item  # type: ignore[misc]
        if type(event) is InvalidEvent:
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
    return (batch.model_id, batch.kind, batch.event_id, batch.ts, batch.has_features,
            batch.model_version, batch.prediction, batch.score, batch.scores, batch.label,
            batch.index, names, lists, matrix)


def unpack(parts: Packed) -> ObservationBatch:
    """The batch `pack` took apart (numeric columns read from the matrix, lists on demand)."""
    (model_id, kind, event_id, ts, has_features, model_version, prediction, score, scores,
     label, index, names, lists, matrix) = parts
    batch = ObservationBatch(model_id, kind, event_id, ts, has_features, lists, model_version,
                             prediction, score, scores, label, index)
    if names:
        batch.attach_numeric(names, matrix)
    return batch


def _work(base: int, lines: list[bytes]) -> tuple[int, int, list[Packed], list[tuple[int, InvalidEvent]]]:
    chunk = decode_chunk(base, lines)
    return chunk.base, chunk.lines, [pack(b) for b in chunk.batches], chunk.invalid


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


def _work_range(path: str, offset: int, length: int) -> tuple[int, int, list[Packed], list[tuple[int, InvalidEvent]]]:
    return _work(0, read_lines(path, offset, length))


def _context() -> multiprocessing.context.BaseContext:
    """fork where there is one (workers start at once, modules already imported): replay
    runs no threads of its own; spawn elsewhere."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class ParallelDecoder:
    """Decode chunks in `jobs` worker processes; results come back in submission order.

    At most ``4 * jobs`` chunks are in flight, so memory stays bounded on any file.
    """

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self._pool = ProcessPoolExecutor(jobs, mp_context=_context())
        self._pending: deque[Future[Any]] = deque()

    def submit(self, base: int, lines: list[bytes]) -> list[DecodedChunk]:
        """Queue a chunk; return the chunks finished meanwhile once the queue is full."""
        return self._queue(self._pool.submit(_work, base, lines))

    def submit_range(self, path: str, offset: int, length: int) -> list[DecodedChunk]:
        """Like `submit`, for the lines of a byte range the worker reads itself (numbered
        from 0: see `DecodedChunk.rebased`)."""
        return self._queue(self._pool.submit(_work_range, path, offset, length))

    def _queue(self, future: Future[Any]) -> list[DecodedChunk]:
        self._pending.append(future)
        done = []
        while len(self._pending) > 4 * self.jobs:
            done.append(self._take())
        return done

    def drain(self) -> list[DecodedChunk]:
        """Every chunk still in flight, in order."""
        return [self._take() for _ in range(len(self._pending))]

    def close(self) -> None:
        """Stop the workers (chunks still queued after an error are dropped)."""
        self._pool.shutdown(cancel_futures=True)

    def _take(self) -> DecodedChunk:
        base, lines, packed, invalid = self._pending.popleft().result()
        return DecodedChunk(base, lines, [unpack(p) for p in packed], invalid)


"""``driftline replay EVENTS.jsonl``: backtest the drift policy on a file of past events.

stdout carries only results, one JSON object per line (``retrain_requested``, and with
``--windows`` every ``window_closed``), so it can be piped into ``jq`` or a file;
everything for humans (progress when stderr is a terminal, the summary) goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from driftline.config import load_settings
from driftline.errors import DriftlineError
from driftline.stream.drift.monitor_config import MonitorConfig

if TYPE_CHECKING:  # the replay core pulls in River and scipy: import it only when replaying
    from driftline.stream.replay.engine import ReplaySummary

__all__ = ["register", "run"]

CHUNK_BYTES = 1 << 20
INVALID_SHOWN = 20


def register(subparsers: Any) -> None:
    """Add ``replay``."""
    parser = subparsers.add_parser(
        "replay",
        help="run the drift policy over a JSONL file of past events (backtesting)",
        description="Replays raw feature/prediction/label events in file order through exactly the "
        "monitor and policy the live agent runs; prints one JSON line per retrain decision.",
    )
    parser.add_argument("events", help="JSONL file of raw events ('-' for stdin)")
    parser.add_argument("--reference", help="JSONL of raw events whose features form the reference profile")
    parser.add_argument("--config", dest="replay_config", help="driftline.toml ([windows], [policy], [reference])")
    parser.add_argument("--windows", action="store_true", help="also print every closed window's scores")
    parser.add_argument(
        "--batch-size", type=int, default=4096, help="events per micro-batch (results do not depend on it)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="processes decoding lines, this one included (default: cores, at most 4; "
        "1 = no worker processes); results do not depend on it",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, stdout: IO[bytes] | None = None, stderr: IO[str] | None = None) -> int:
    """Handler: replay, stream results to stdout, summary to stderr. Exit 0 even with invalid lines."""
    out = stdout or sys.stdout.buffer
    err = stderr or sys.stderr
    config_path = getattr(args, "replay_config", None) or getattr(args, "config", None)
    from driftline.stream.replay.engine import Replay, read_reference

    config = MonitorConfig.from_settings(load_settings(config_path))
    references = read_reference(_lines(args.reference), config) if args.reference else None
    if args.reference and not references:
        raise DriftlineError(f"--reference {args.reference}: no valid event with features")

    def emit(item: Any) -> None:
        out.write(orjson.dumps(item.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")

    replay = Replay(config, references, args.batch_size, emit, emit if args.windows else None, getattr(args, "jobs", 1))
    progress = _Progress(err) if err.isatty() else None

    def after_chunk() -> None:
        out.flush()
        if progress:
            progress.show(replay.summary)

    if args.events == "-":
        replay.feed_stream(sys.stdin.buffer, after_chunk)
    else:  # a file: with --jobs, the workers read it themselves
        _open(args.events).close()  # a clear error before any work
        replay.feed_file(args.events, on_chunk=after_chunk)
    summary = replay.finish()
    out.flush()
    if progress:
        progress.clear()
    err.write(format_summary(summary))
    return 0


def _open(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return Path(path).open("rb")
    except OSError as exc:
        raise DriftlineError(f"cannot read {path}: {exc.strerror}") from None


def _chunks(path: str) -> Iterator[list[bytes]]:
    """Lines in ~1 MiB chunks: bounded memory, few Python calls per line."""
    handle = _open(path)
    try:
        while chunk := handle.readlines(CHUNK_BYTES):
            yield chunk
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def _lines(path: str) -> Iterator[bytes]:
    for chunk in _chunks(path):
        yield from chunk


class _Progress:
    """One self-overwriting status line, at most every half second."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.started = self.last = time.perf_counter()

    def show(self, summary: ReplaySummary) -> None:
        now = time.perf_counter()
        if now - self.last < 0.5:
            return
        self.last = now
        rate = summary.lines / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r{summary.lines:,} lines  {summary.windows:,} windows  {summary.decisions:,} decisions  "
            f"{rate:,.0f} events/s"
        )
        self.stream.flush()

    def clear(self) -> None:
        self.stream.write("\r\x1b[K")


def format_summary(summary: ReplaySummary) -> str:
    """The end-of-run summary (stderr)."""
    lines = [
        f"replay: {summary.lines:,} lines read, {summary.events:,} events, {summary.invalid:,} invalid, "
        f"{summary.models} model(s)",
        f"replay: {summary.windows:,} windows closed, {summary.decisions:,} decisions, "
        f"{summary.late_events:,} late events",
        f"replay: {summary.seconds:.2f} s, {summary.events_per_s:,.0f} events/s",
    ]
    if summary.invalid:
        shown = summary.invalid_lines[:INVALID_SHOWN]
        more = summary.invalid - len(shown)
        lines.append("replay: invalid lines (0-based):")
        lines += [f"  line {i.line}: {i.field}: {i.rule}: {i.detail}" for i in shown]
        if more > 0:
            lines.append(f"  … and {more:,} more")
    return "\n".join(lines) + "\n"

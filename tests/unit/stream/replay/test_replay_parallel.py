"""Replay with decoding in worker processes gives exactly what one process gives."""

from __future__ import annotations

import numpy as np
import orjson

from driftline.schemas.batch import batch_from_events
from driftline.schemas.codec import decode_event
from driftline.stream.replay import replay_lines
from driftline.stream.replay.decode import decode_chunk, pack, unpack
from driftline.testing import synthetic


def _lines() -> list[bytes]:
    """Two models, a drift, categoricals, predictions and labels, and invalid lines."""
    drifting = synthetic.with_mean_shift(9_000, 6_000, feature="x2", n_numeric=4, n_categorical=1, rate=50.0, seed=11)
    concept = synthetic.with_concept_drift(6_000, 3_500, label_delay=50, seed=12)
    for event in concept:
        event["model_id"] = "other"
    lines = synthetic.to_jsonl(drifting + concept).splitlines()
    lines[100:100] = [b"not json", b'{"model_id": "m"}', b'{"model_id":"m","event_id":"x","ts":1,"features":{"a":[1]}}']
    return lines


def test_decisions_windows_and_summary_equal_one_process() -> None:
    lines = _lines()
    one = replay_lines(lines, batch_size=700)
    many = replay_lines(lines, batch_size=700, jobs=2)
    assert [d.to_dict() for d in one[0]] == [d.to_dict() for d in many[0]]
    assert one[0], "the stream holds a drift: the comparison must include decisions"
    assert [w.to_dict() for w in one[1]] == [w.to_dict() for w in many[1]]
    a, b = one[2].to_dict(), many[2].to_dict()
    for volatile in ("seconds", "events_per_s"):
        a.pop(volatile), b.pop(volatile)
    assert a == b
    assert a["invalid"] == 3 and a["lines"] == len(lines)


def test_a_short_input_starts_no_workers_and_matches() -> None:
    lines = _lines()[:500]
    assert replay_lines(lines, batch_size=4096, jobs=4)[2].events == replay_lines(lines)[2].events


def test_pack_and_unpack_keep_every_column() -> None:
    raws = [
        orjson.dumps(
            {
                "model_id": "m",
                "event_id": f"e{i}",
                "ts": float(i),
                "features": {"x": i, "y": None if i % 3 else i / 2, "c": "abc"[i % 3]},
            }
        )
        for i in range(50)
    ]
    raws.append(
        orjson.dumps(
            {"model_id": "m", "event_id": "p", "ts": 60.0, "model_version": "1", "prediction": 1, "score": 0.5}
        )
    )
    (batch,) = decode_chunk(0, raws).batches
    assert batch == batch_from_events("m", [decode_event(r) for r in raws], range(len(raws)))
    back = unpack(pack(batch))
    assert back == batch and np.array_equal(back.index, batch.index)
    for name in ("x", "y"):
        assert back.only_numbers(name)
        np.testing.assert_array_equal(back.numeric_column(name), batch.numeric_column(name))
    assert not back.only_numbers("c") and back.features["c"] == batch.features["c"]


def test_workers_reading_the_file_give_what_one_process_gives(tmp_path, monkeypatch) -> None:
    """`feed_file` with workers: byte ranges read in the workers, lines renumbered here."""
    import driftline.stream.replay.engine as replay_module
    from driftline.stream.replay import Replay

    lines = _lines()
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setattr(replay_module, "RANGE_BYTES_PER_EVENT", 64)  # many ranges, many in flight
    one = replay_lines(lines, batch_size=700)
    decisions: list = []
    windows: list = []
    replay = Replay(batch_size=700, on_decision=decisions.append, on_window=windows.append, jobs=2)
    chunks: list[int] = []
    replay.feed_file(path, on_chunk=lambda: chunks.append(replay.summary.lines))
    summary = replay.finish()
    assert [d.to_dict() for d in one[0]] == [d.to_dict() for d in decisions] and decisions
    assert [w.to_dict() for w in one[1]] == [w.to_dict() for w in windows]
    assert [(i.line, i.rule) for i in summary.invalid_lines] == [(i.line, i.rule) for i in one[2].invalid_lines]
    assert summary.lines == len(lines) and summary.events == one[2].events
    assert len(chunks) > 4 and chunks == sorted(chunks), "progress after every range, in order"
    assert replay._decoder is None, "the workers are stopped"


def test_a_file_of_one_range_starts_no_workers(tmp_path, monkeypatch) -> None:
    from driftline.stream.replay import Replay
    from driftline.stream.replay import engine as replay_module

    path = tmp_path / "short.jsonl"
    path.write_bytes(b"\n".join(_lines()[:300]) + b"\n")
    started: list[int] = []
    monkeypatch.setattr(replay_module, "ParallelDecoder", lambda jobs: started.append(jobs))
    replay = Replay(jobs=2)
    replay.feed_file(path)
    assert replay.finish().lines == 300 and started == []


def test_line_ranges_cover_the_file_and_end_at_line_ends(tmp_path) -> None:
    from driftline.stream.replay.decode import line_ranges, read_lines

    data = b"".join(b"x" * (i % 37) + b"\n" for i in range(500)) + b"no newline at the end"
    path = tmp_path / "f"
    path.write_bytes(data)
    for size in (1, 10, 100, 4096, len(data) * 2):
        ranges = line_ranges(path, size)
        assert sum(length for _, length in ranges) == len(data)
        assert all(a + la == b for (a, la), (b, _) in zip(ranges, ranges[1:]))
        assert all(data[o + n - 1 : o + n] == b"\n" for o, n in ranges[:-1])
        assert [line for o, n in ranges for line in read_lines(path, o, n)] == data.splitlines(keepends=True)

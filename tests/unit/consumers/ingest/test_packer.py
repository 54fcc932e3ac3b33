"""Ingest's packer: batches bounded in events and in bytes, every row kept, in order."""

from __future__ import annotations

import orjson

from driftline.consumers.ingest.packer import BatchPacker
from driftline.schemas.batch_wire import decode_batch
from driftline.schemas.codec import decode_event
from driftline.schemas.columnar import decode_features

MIB = 1024 * 1024


def _raws(n: int, strings: bool = False, width: int = 0) -> list[bytes]:
    """Feature events of model ``a``; ``width`` string features of 1,000 characters make them big."""
    out = []
    for i in range(n):
        features: dict = {"x": i, "y": f"s{i}" if strings else i / 2}
        features.update({f"w{j}": f"{i:04d}" + "v" * 996 for j in range(width)})
        out.append(orjson.dumps({"model_id": "a", "event_id": f"e{i}", "ts": float(i), "features": features}))
    return out


def _rows(batches: list[tuple[str, bytes, int]]) -> list[str]:
    decoded = [decode_batch(payload) for _, payload, _ in batches]
    assert all(len(b) == n for b, (_, _, n) in zip(decoded, batches))
    return [e for b in decoded for e in b.event_id]


def test_runs_are_cut_at_max_events_and_keep_every_row() -> None:
    packer = BatchPacker(max_events=4, max_bytes=4 * MIB)
    raws = _raws(10, strings=True)
    (run,) = decode_features(raws, "feature")
    sizes = [len(r) for r in raws]
    assert packer.add_run("a", run.slice(0, 3), sizes[:3]) == []
    full = packer.add_run("a", run.slice(3, 10), sizes[3:])
    assert [n for _, _, n in full] == [4, 4]
    rest = list(packer.drain())
    assert [n for _, _, n in rest] == [2]
    batches = [decode_batch(payload) for _, payload, _ in full + rest]
    assert [e for b in batches for e in b.event_id] == [f"e{i}" for i in range(10)]
    assert [v for b in batches for v in b.features["y"]] == [f"s{i}" for i in range(10)]


def test_twelve_one_megabyte_events_make_batches_below_the_byte_bound() -> None:
    """The issue's proof: 12 valid ~1 MB events once made one 11 MB batch the broker refused."""
    raws = _raws(12, width=1000)
    assert all(0.95 * MIB < len(r) < MIB for r in raws)
    (run,) = decode_features(raws, "feature")
    packer = BatchPacker(max_events=1000, max_bytes=4 * MIB)
    full = packer.add_run("a", run, [len(r) for r in raws]) + list(packer.drain())
    assert all(len(payload) <= 4 * MIB for _, payload, _ in full)
    assert [n for _, _, n in full] == [4, 4, 4]
    assert _rows(full) == [f"e{i}" for i in range(12)]


def test_events_added_one_by_one_are_cut_by_bytes_too() -> None:
    raws = _raws(9, width=1000)
    packer = BatchPacker(max_events=1000, max_bytes=4 * MIB)
    full = [batch for raw in raws for batch in packer.add(decode_event(raw), len(raw))] + list(packer.drain())
    assert [n for _, _, n in full] == [4, 4, 1]
    assert all(len(payload) <= 4 * MIB for _, payload, _ in full)
    assert _rows(full) == [f"e{i}" for i in range(9)]


def test_an_encoding_larger_than_the_raw_events_is_split_until_it_fits() -> None:
    """Sparse feature names make a dense columnar layout, larger than the raw JSON."""
    raws = [
        orjson.dumps(
            {"model_id": "a", "event_id": f"e{i}", "ts": float(i), "features": {f"only{i}_{j}": 1.0 for j in range(20)}}
        )
        for i in range(200)
    ]
    (run,) = decode_features(raws, "feature")
    raw_total = sum(len(r) for r in raws)
    packer = BatchPacker(max_events=1000, max_bytes=raw_total)  # by raw size it all fits one batch
    full = packer.add_run("a", run, [len(r) for r in raws]) + list(packer.drain())
    assert len(full) > 1 and all(len(payload) <= raw_total for _, payload, _ in full)
    assert _rows(full) == [f"e{i}" for i in range(200)]
    for _, payload, _ in full:
        batch = decode_batch(payload)
        for row, event_id in enumerate(batch.event_id):
            i = int(event_id[1:])
            present = {name: values[row] for name, values in batch.features.items() if values[row] is not None}
            assert present == {f"only{i}_{j}": 1.0 for j in range(20)}

"""driftline processes run with batch-friendly collector thresholds."""

from __future__ import annotations

import gc

from driftline.cli import main
from driftline.gc_tuning import BATCH_THRESHOLDS, tune_for_batches


def test_tuning_sets_the_batch_thresholds_and_reports_the_old_ones() -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        assert tune_for_batches() == (700, 10, 10)
        assert gc.get_threshold() == BATCH_THRESHOLDS
        assert BATCH_THRESHOLDS[0] > 700, "the point: fewer young-generation collections"
    finally:
        gc.set_threshold(*saved)


def test_every_subcommand_runs_with_them(tmp_path, capsys) -> None:
    saved = gc.get_threshold()
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"model_id":"m","event_id":"e","ts":1,"features":{"x":1}}\n')
    try:
        gc.set_threshold(700, 10, 10)
        assert main(["replay", str(events)]) == 0
        assert gc.get_threshold() == BATCH_THRESHOLDS
    finally:
        gc.set_threshold(*saved)

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


FAULTS_SCRIPT = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from driftline.malloc_tuning import keep_freed_memory
    assert keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):  # a batch's arrays: 100 of 640 KB (20 features x 4096 rows), then freed
    arrays = [np.ones((20, 4096)) for _ in range(100)]
    del arrays
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_freed_batch_memory_is_reused_instead_of_faulted_in_again() -> None:
    """Ten batches of arrays, each batch freed before the next: with glibc's defaults
    the freed heap top goes back to the kernel and every batch faults its 64 MB in
    again; tuned, later batches reuse the first one's pages."""
    import subprocess
    import sys

    faults = {
        mode: int(
            subprocess.run(
                [sys.executable, "-c", FAULTS_SCRIPT, mode], check=True, capture_output=True, text=True
            ).stdout
        )
        for mode in ("default", "tuned")
    }
    assert faults["tuned"] * 3 < faults["default"], faults


def test_malloc_tuning_can_be_turned_off_and_keeps_glibcs_own_settings(monkeypatch) -> None:
    from driftline.malloc_tuning import keep_freed_memory

    monkeypatch.setenv("DRIFTLINE_MALLOC_TUNING", "off")
    assert keep_freed_memory() is False
    monkeypatch.delenv("DRIFTLINE_MALLOC_TUNING")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert keep_freed_memory() is False  # both set by the user: nothing of ours applies

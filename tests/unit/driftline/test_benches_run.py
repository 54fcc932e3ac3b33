"""The benchmarks that need no broker still run against today's code.

Benchmarks are not timed tests (their figures are printed, never asserted); but a
benchmark that no longer runs reports nothing, and `bench/profile_update.py` had
quietly broken when the batch interface moved on. Each is run here with small
arguments, and what it says about correctness (not speed) is checked.
"""

from __future__ import annotations

from ...bench_runs import bench_output


def test_profile_update_bench_runs_and_the_profile_stays_small() -> None:
    out = bench_output("profile_update.py", "--rows", "1000", "--features", "8", "--batches", "5")
    assert out.count("WindowProfile.update") == 2 and "real ObservationBatch" in out
    sizes = [
        int(line.split("to_dict")[1].split("B")[0].replace(",", ""))
        for line in out.splitlines()
        if "pickled to_dict" in line
    ]
    assert len(sizes) == 3 and max(sizes) < 2 * min(sizes), "O(features x bins), not O(events)"


def test_codec_bench_runs() -> None:
    out = bench_output("codec_vs_orjson.py", "--events", "2000", "--rounds", "1")
    assert "ratio decode_event / orjson.loads" in out


def test_replay_bench_runs_and_jobs_give_the_same_decisions() -> None:
    out = bench_output("replay_throughput.py", "--events", "60000", "--runs", "1")  # a drift at 70 %
    assert "replay FILE --jobs" in out
    line = next(line for line in out.splitlines() if line.startswith("decisions:"))
    assert int(line.split()[1]) >= 1 and line.endswith("--jobs gives the same: True"), out

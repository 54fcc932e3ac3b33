"""Worker processes fed through pipes, results through files (`stream.decode_worker`),
and how `ParallelDecoder` shares chunks between them and the calling process."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from pathlib import Path

import pytest

from driftline.stream.replay import decode as replay_decode
from driftline.stream.replay.decode_worker import WorkerFailed, WorkerProcess, scratch_directory, stop_workers


def square_or_fail(task: int) -> int:
    if task < 0:
        raise ValueError(f"negative task {task}")
    return task * task


@pytest.fixture
def worker():
    directory = scratch_directory()
    process = WorkerProcess(square_or_fail, directory, multiprocessing.get_context("fork"), "test-worker")
    yield process, directory
    stop_workers([process], directory)


def test_results_come_back_in_order_and_their_files_are_removed(worker) -> None:
    process, directory = worker
    for task_id in range(20):
        process.send(task_id, task_id + 1000)
    assert process.outstanding == 20
    assert [process.receive() for _ in range(20)] == [(i, (i + 1000) ** 2) for i in range(20)]
    assert process.outstanding == 0 and not process.ready()
    assert os.listdir(directory) == []


def test_a_task_that_raises_comes_back_as_an_error_with_its_traceback(worker) -> None:
    process, _ = worker
    process.send(7, -3)
    with pytest.raises(WorkerFailed, match=r"task 7(.|\n)*ValueError: negative task -3"):
        process.receive()
    process.send(8, 4)  # the worker goes on with the next task
    assert process.receive() == (8, 16)


def test_a_dead_worker_is_an_error_that_says_what_to_do(worker) -> None:
    process, _ = worker
    os.kill(process.process.pid, signal.SIGKILL)
    process.process.join(5)
    with pytest.raises(WorkerFailed, match="--jobs 1"):
        process.send(1, 2)
        process.receive()


def test_stop_workers_ends_the_processes_and_removes_the_directory() -> None:
    directory = scratch_directory()
    workers = [WorkerProcess(square_or_fail, directory, multiprocessing.get_context("fork"), f"w{i}") for i in range(2)]
    for worker in workers:
        worker.send(0, 3)  # a result never taken
    stop_workers(workers, directory)
    assert all(not w.process.is_alive() and w.process.exitcode == 0 for w in workers)
    assert not os.path.exists(directory)


def _file(tmp_path: Path, lines: int) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b"".join(
            b'{"model_id":"m","event_id":"e%d","ts":%d,"features":{"x":%d.5,"y":%d}}\n' % (i, i, i % 7, i % 3)
            for i in range(lines)
        )
        + b"not json\n"
    )
    return path


@pytest.mark.parametrize(("queued", "here"), [(0, "all"), (10_000, "none")])
def test_chunks_are_decoded_here_only_when_the_workers_have_enough(tmp_path, monkeypatch, queued, here) -> None:
    """With no room in the workers' queues every chunk is decoded here; with unlimited
    room none is; either way the chunks come back in order, equal to one process's."""
    monkeypatch.setattr(replay_decode, "QUEUED_PER_WORKER", queued)
    path = _file(tmp_path, 3_000)
    ranges = replay_decode.line_ranges(path, 4_000)
    expected = [replay_decode.decode_chunk(0, replay_decode.read_lines(path, o, n)) for o, n in ranges]
    decoder = replay_decode.ParallelDecoder(3)
    try:
        got = [chunk for o, n in ranges for chunk in decoder.submit_range(str(path), o, n)] + decoder.drain()
    finally:
        decoder.close()
    assert decoder.decoded_here == (len(ranges) if here == "all" else 0)
    assert len(got) == len(ranges) > 8
    for a, b in zip(got, expected):
        assert (a.base, a.lines, a.invalid) == (b.base, b.lines, b.invalid)
        assert a.batches == b.batches


def test_lines_submitted_go_through_a_file_and_the_directory_is_removed_at_close() -> None:
    decoder = replay_decode.ParallelDecoder(2)
    lines = [b'{"model_id":"m","event_id":"e%d","ts":%d,"features":{"x":1}}' % (i, i) for i in range(50)]
    directory = decoder._directory
    got = decoder.submit(100, lines) + decoder.drain()
    decoder.close()
    assert [(c.base, c.lines, len(c.batches[0])) for c in got] == [(100, 50, 50)]
    assert list(got[0].batches[0].index) == list(range(100, 150))
    assert not os.path.exists(directory)


def test_workers_exit_and_remove_the_scratch_directory_when_their_caller_is_killed(tmp_path) -> None:
    """kill -9 of the replaying process leaves no worker waiting for tasks forever, and
    no scratch files holding memory on tmpfs."""
    import subprocess
    import time

    script = tmp_path / "caller.py"
    script.write_text(
        "import sys, time\n"
        "from driftline.stream.replay.decode import ParallelDecoder\n"
        "decoder = ParallelDecoder(3)\n"
        "print(decoder._directory, *(w.process.pid for w in decoder._workers), flush=True)\n"
        "time.sleep(60)\n"
    )
    caller = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    directory, *pids = caller.stdout.readline().split()
    pids = [int(p) for p in pids]
    assert len(pids) == 2 and os.path.isdir(directory)
    caller.kill()
    caller.wait()
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in pids if _running(p)]
    assert not alive, f"workers {alive} outlived their caller"
    assert not os.path.exists(directory)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_scratch_files_go_to_tmpfs_only_when_it_has_room(tmp_path, monkeypatch) -> None:
    import tempfile

    from driftline.stream.replay import decode_worker

    monkeypatch.setattr(decode_worker, "SHARED_MEMORY_ROOT", str(tmp_path))
    roomy = scratch_directory()
    monkeypatch.setattr(decode_worker, "SHARED_MEMORY_MIN_FREE", 1 << 62)
    small = scratch_directory()
    monkeypatch.setattr(decode_worker, "SHARED_MEMORY_ROOT", str(tmp_path / "missing"))
    missing = scratch_directory()
    try:
        assert Path(roomy).parent == tmp_path
        assert all(os.stat(d).st_mode & 0o777 == 0o700 for d in (roomy, small)), "results are unpickled"
        assert Path(small).parent == Path(missing).parent == Path(tempfile.gettempdir())
    finally:
        for directory in (roomy, small, missing):
            os.rmdir(directory)

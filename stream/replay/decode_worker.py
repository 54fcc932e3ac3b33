"""A worker process fed through a pipe that hands its results back through files.

Why not ``ProcessPoolExecutor``: its submissions and results pass through two helper
threads in the calling process, and those need the GIL, which replay's busy monitor
holds (Python hands it over every 5 ms). Measured on `driftline replay --jobs 2`, the
worker sat idle 30-40 % of the run waiting for chunks it had already been given. Here
the caller writes a task straight into the worker's pipe, and the worker never waits
for the caller to read: a result (hundreds of kB for a chunk) goes into a file in a
private directory, on tmpfs where there is one, and only the file's name into the pipe.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import tempfile
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["WorkerFailed", "WorkerProcess", "scratch_directory", "stop_workers"]

SHARED_MEMORY_ROOT = "/dev/shm"
"""Where result files go when it is writable and roomy (tmpfs: the files never reach a disk)."""
SHARED_MEMORY_MIN_FREE = 256 << 20
"""Below this much free space (a container's /dev/shm is often 64 MiB) the system's
temporary directory is used instead: a full tmpfs would fail the replay."""


class WorkerFailed(RuntimeError):
    """A task raised in the worker, or the worker process died."""


def scratch_directory() -> str:
    """A new directory for task and result files (remove it with `stop_workers`).

    Private (mode 0700, from ``mkdtemp``): results are unpickled, so only this user may
    put files there.
    """
    try:
        usage = os.statvfs(SHARED_MEMORY_ROOT)
        roomy = usage.f_bavail * usage.f_frsize >= SHARED_MEMORY_MIN_FREE
    except OSError:
        roomy = False
    root = SHARED_MEMORY_ROOT if roomy and os.access(SHARED_MEMORY_ROOT, os.W_OK) else None
    return tempfile.mkdtemp(prefix="driftline-workers-", dir=root)


class WorkerProcess:
    """One process running ``handler(task)`` for each task sent, results in send order.

    ``handler`` must be a module-level function (picklable, for the spawn start method).
    """

    def __init__(
        self, handler: Callable[[Any], Any], directory: str, context: Any, name: str
    ) -> None:  # a multiprocessing context
        here, there = context.Pipe()
        inherited = here if context.get_start_method() == "fork" else None  # the child closes its copy
        self.process = context.Process(
            target=_serve, args=(handler, there, directory, inherited), name=name, daemon=True
        )
        self.process.start()
        there.close()
        self._conn: Connection = here
        self.outstanding = 0
        """Tasks sent whose results have not been received yet."""

    def send(self, task_id: int, task: Any) -> None:
        """Queue a task (small: it is pickled into the pipe; bulky inputs go in files)."""
        try:
            self._conn.send((task_id, task))
        except OSError as exc:
            raise self._died() from exc
        self.outstanding += 1

    def ready(self) -> bool:
        """Whether a result can be received without waiting."""
        return self.outstanding > 0 and self._conn.poll()

    def receive(self) -> tuple[int, Any]:
        """The next result, waiting for it if needed: ``(task_id, handler's return value)``."""
        try:
            task_id, path, error = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc
        self.outstanding -= 1
        if error is not None:
            raise WorkerFailed(f"worker process {self.process.name} failed on task {task_id}:\n{error}")
        with open(path, "rb") as handle:
            value = pickle.load(handle)
        os.unlink(path)
        return task_id, value

    def _died(self) -> WorkerFailed:
        self.process.join(1)
        return WorkerFailed(
            f"worker process {self.process.name} exited (exit code {self.process.exitcode}) "
            "before returning its results; it may have run out of memory: retry with "
            "--jobs 1 to decode in one process"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit after the tasks it has (killed if it does not in time)."""
        try:
            self._conn.send(None)
        except OSError:
            pass  # already gone
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self._conn.close()


def stop_workers(workers: Sequence[WorkerProcess], directory: str) -> None:
    """Stop every worker and remove their scratch directory (results not taken are lost)."""
    for worker in workers:
        worker.stop()
    shutil.rmtree(directory, ignore_errors=True)


def _serve(handler: Callable[[Any], Any], conn: Connection, directory: str, callers_end: Connection | None) -> None:
    """The worker's loop: run tasks until ``None`` arrives or the caller goes away.

    A forked worker holds a copy of the caller's end of its pipe; it closes it, or the
    pipe would never report the caller gone (a killed caller would leave it waiting).
    A caller gone without stopping its workers (killed) cannot remove their scratch
    directory, and on tmpfs its files would hold memory until a reboot: the worker that
    finds the caller gone removes it.
    """
    if callers_end is not None:
        callers_end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    try:
        while (message := conn.recv()) is not None:
            conn.send(_run(handler, message, directory))
    except (EOFError, OSError):  # the caller is gone
        shutil.rmtree(directory, ignore_errors=True)


def _run(handler: Callable[[Any], Any], message: tuple[int, Any], directory: str) -> tuple[int, str | None, str | None]:
    """One task: ``(task_id, result file, None)``, or ``(task_id, None, traceback)``."""
    task_id, task = message
    try:
        value = handler(task)
        path = os.path.join(directory, f"result-{os.getpid()}-{task_id}")
        with open(path, "wb") as handle:
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return task_id, None, traceback.format_exc()
    return task_id, path, None

"""Run driftline's processes as real OS processes for the demo, and end exactly those."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

__all__ = ["DriftlineProcess"]


class DriftlineProcess:
    """One ``driftline <command>`` child; its log goes to a file the demo points users to."""

    def __init__(self, command: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.command = command
        self.args = args
        self.log_path = log_dir / f"{command}.log"
        self.env = dict(os.environ, **(env or {}))
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        cmd = [sys.executable, "-m", "driftline.cli", self.command, *self.args]
        self._process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        return self._process.returncode

    def tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

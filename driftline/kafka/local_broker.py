"""A single-node Apache Kafka broker (KRaft) run from Maven Central jars.

Why: tests, the demo and CI need a *real* broker, and a machine without a Docker engine
still has Java and Maven. The jars are resolved once into a cache shared by every
instance; each instance directory holds its own config, data, pid file and log, so
several brokers (one per developer or test session) run side by side on their own ports.

The jars come from `driftline.kafka.kafka_jars`. The broker runs detached (its own
session) so ``driftline kafka start`` can return.
``stop`` ends exactly the process recorded in the pid file, and only after checking that
the pid still belongs to a java process started for this instance directory, so a
recycled pid is never signalled.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from driftline.errors import BrokerUnavailable
from driftline.kafka.admin import KafkaAdmin
from driftline.kafka.kafka_jars import INSTALL_HINT, KAFKA_VERSION, RUNTIME_DIR, ensure_jars

__all__ = [
    "DEFAULT_PORT",
    "KAFKA_VERSION",
    "BrokerStatus",
    "LocalBroker",
    "configured_port",
    "default_instance_dir",
]

DEFAULT_PORT = 9092
HOST = "127.0.0.1"
_START_MARKER = "--- driftline: starting kafka"
#: C1-only JIT: the broker answers in about half the time, and on a 2-core machine no C2
#: compiler threads compete with the tests. Override with $KAFKA_JVM_PERFORMANCE_OPTS.
_JVM_OPTS = "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError"
_LOG = logging.getLogger(__name__)


def default_instance_dir() -> Path:
    """``.driftline/kafka`` under the current directory (``.driftline/`` is gitignored)."""
    return Path.cwd() / ".driftline" / "kafka"


def configured_port(explicit: int | None, setting: int) -> int | None:
    """The port to ask ``LocalBroker`` for: a flag, else a non-default ``kafka.local_port``.

    ``None`` (nothing configured) lets an existing instance keep the port it last ran on.
    """
    return explicit or (setting if setting != DEFAULT_PORT else None)


@dataclass(frozen=True)
class BrokerStatus:
    """What ``status()`` found: ``running`` (answers), ``unresponsive`` (alive, not answering), ``stopped``."""

    state: Literal["running", "unresponsive", "stopped"]
    pid: int | None
    bootstrap_servers: str
    instance_dir: Path
    log_path: Path

    @property
    def alive(self) -> bool:
        """The broker process exists (it may still be starting or be stuck)."""
        return self.state != "stopped"


class LocalBroker:
    """One broker instance in ``instance_dir``; constructing it touches nothing.

    ``port`` is the client port to start on; ``None`` means the port the instance last
    ran on, else 9092. ``controller_port`` defaults to port+1 (or any free port) on the
    first start and is fixed from then on, because KRaft keeps it in the quorum's voter
    set. ``bootstrap_servers`` names the port the instance runs (or last ran) on.

    A variant (``driftline.kafka.secure_broker``) overrides the ``_server_config``,
    ``_format_arguments`` and ``_admin`` hooks and ``default_port``; the process
    mechanics (ports, pid file, ownership checks, stop) stay here.
    """

    #: The client port when neither the caller nor the instance's record names one.
    default_port = DEFAULT_PORT

    def __init__(
        self,
        instance_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        controller_port: int | None = None,
        *,
        cache_root: str | os.PathLike[str] | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.instance_dir = Path(instance_dir or default_instance_dir()).expanduser().resolve()
        self.requested_port = port
        self.requested_controller_port = controller_port
        self.cache_root = cache_root
        self.die_with_parent = die_with_parent  # tests: the kernel stops the broker if we die
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.instance_dir / "broker.log"

    @property
    def pid_path(self) -> Path:
        return self.instance_dir / "broker.pid"

    @property
    def data_dir(self) -> Path:
        return self.instance_dir / "data"

    @property
    def _record_path(self) -> Path:
        return self.instance_dir / "instance.json"

    def _recorded(self) -> dict[str, int]:
        """Ports of the last start: ``{"port": .., "controller_port": ..}`` or ``{}``."""
        try:
            data = json.loads(self._record_path.read_text())
            return {"port": int(data["port"]), "controller_port": int(data["controller_port"])}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    @property
    def port(self) -> int:
        return self._recorded().get("port") or self.requested_port or self.default_port

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>``, the address clients should use."""
        return f"{HOST}:{self.port}"

    def status(self, timeout: float = 2.0) -> BrokerStatus:
        """Whether our broker process is alive, and whether it answers a metadata request."""
        pid = self._live_pid()
        state: Literal["running", "unresponsive", "stopped"] = "stopped"
        if pid is not None:
            answers = _port_open(self.port) and self._admin().ping(timeout)
            state = "running" if answers else "unresponsive"
        return BrokerStatus(state, pid, self.bootstrap_servers, self.instance_dir, self.log_path)

    def start(self, timeout: float = 60.0) -> BrokerStatus:
        """Start the broker (a no-op when it already runs) and return once it answers."""
        pid = self._live_pid()
        if pid is not None:
            if self.requested_port not in (None, self.port):
                raise BrokerUnavailable(
                    f"the broker in {self.instance_dir} already runs on port {self.port} (pid {pid}); "
                    "stop it first to change the port"
                )
            _LOG.info("kafka already running at %s (pid %d)", self.bootstrap_servers, pid)
            self._wait_ready(pid, timeout)
            return self.status()
        port, controller_port = self._choose_ports()
        java = _java()
        libs = ensure_jars(self.cache_root)
        self.instance_dir.mkdir(parents=True, exist_ok=True)
        config = self.instance_dir / "server.properties"
        config.touch(mode=0o600)  # a variant's config holds key passwords: never world-readable
        config.chmod(0o600)
        config.write_text(self._server_config(port, controller_port))
        if not (self.data_dir / "meta.properties").exists():
            self._format(java, libs, config)
        self._record_path.write_text(
            json.dumps({"port": port, "controller_port": controller_port, "kafka_version": KAFKA_VERSION})
        )
        pid = self._spawn(java, libs, config)
        _LOG.info("kafka starting at %s (pid %d, log %s)", self.bootstrap_servers, pid, self.log_path)
        try:
            self._wait_ready(pid, timeout)
        except BrokerUnavailable:
            self.stop()  # never leave a half-started broker of ours behind
            raise
        _LOG.info("kafka ready at %s", self.bootstrap_servers)
        return self.status()

    def stop(self, timeout: float = 20.0) -> bool:
        """End our broker: SIGTERM, then SIGKILL after ``timeout``. False if it was not running."""
        pid = self._live_pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        _LOG.info("stopping kafka (pid %d)", pid)
        self._signal(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            _LOG.warning("kafka (pid %d) did not stop within %.0f s; killing it", pid, timeout)
            self._signal(pid, signal.SIGKILL)
            self._wait_gone(pid, 10.0)
        self.pid_path.unlink(missing_ok=True)
        _LOG.info("kafka stopped")
        return True

    # -- internals ------------------------------------------------------------------
    def _choose_ports(self) -> tuple[int, int]:
        recorded = self._recorded()
        port = self.requested_port or recorded.get("port") or self.default_port
        controller_port = recorded.get("controller_port") if (self.data_dir / "meta.properties").exists() else None
        wanted = self.requested_controller_port
        if controller_port is not None and wanted not in (None, controller_port):
            raise BrokerUnavailable(
                f"{self.instance_dir} was formatted with controller port {controller_port}; "
                f"use it, or a new instance directory for controller port {wanted}"
            )
        if controller_port is None:
            controller_port = wanted or (port + 1 if _port_free(port + 1) else _free_port())
        if port == controller_port:
            raise BrokerUnavailable(f"port {port} is this instance's controller port; choose another client port")
        for p in (port, controller_port):
            if not _port_free(p):
                what = "a Kafka broker answers there" if KafkaAdmin(f"{HOST}:{p}").ping(1.0) else "another process"
                raise BrokerUnavailable(
                    f"port {p} on {HOST} is already in use ({what}); choose another with --port, "
                    f"or use that broker with KAFKA_BOOTSTRAP_SERVERS={HOST}:{p}"
                )
        return port, controller_port

    def _server_config(self, port: int, controller_port: int) -> str:
        """The broker's ``server.properties`` text (a variant adds listeners and security)."""
        return _server_properties(port, controller_port, self.data_dir)

    def _format_arguments(self) -> list[str]:
        """Extra ``kafka-storage format`` arguments (a variant adds its SCRAM users)."""
        return []

    def _admin(self) -> KafkaAdmin:
        """An admin client that can reach this broker (readiness and status pings)."""
        return KafkaAdmin(self.bootstrap_servers)

    def _format(self, java: str, libs: Path, config: Path) -> None:
        _LOG.info("formatting kafka storage in %s", self.data_dir)
        cmd = [
            java,
            "-XX:TieredStopAtLevel=1",
            *_log4j_opts(),
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            _cluster_id(),
            "-c",
            str(config),
            *self._format_arguments(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerUnavailable(f"kafka storage format failed:\n{(proc.stdout + proc.stderr).strip()}")

    def _spawn(self, java: str, libs: Path, config: Path) -> int:
        _rotate(self.log_path)
        heap = os.environ.get("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m").split()
        jvm = os.environ.get("KAFKA_JVM_PERFORMANCE_OPTS", _JVM_OPTS).split()
        cmd = [
            java,
            *heap,
            *jvm,
            "-Djava.awt.headless=true",
            *_log4j_opts(),
            f"-Ddriftline.instance={self.instance_dir}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(config),
        ]
        with open(self.log_path, "ab") as log:
            log.write(f"{_START_MARKER} {KAFKA_VERSION} at {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.instance_dir,
                start_new_session=True,
                preexec_fn=_parent_death_signal() if self.die_with_parent else None,
            )
        self.pid_path.write_text(f"{self._process.pid}\n")
        return self._process.pid

    def _wait_ready(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        admin = self._admin()
        while time.monotonic() < deadline:
            if not self._is_ours(pid):
                raise BrokerUnavailable(
                    f"kafka exited during start; last lines of {self.log_path}:\n{self._log_tail()}"
                )
            if _port_open(self.port) and admin.ping(1.0):
                return
            time.sleep(0.2)
        raise BrokerUnavailable(
            f"kafka (pid {pid}) did not answer at {self.bootstrap_servers} within {timeout:.0f} s; "
            f"last lines of {self.log_path}:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` the broker logged since its latest start."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        latest = text[text.rfind(_START_MARKER) :] if _START_MARKER in text else text
        return "\n".join(latest.splitlines()[-lines:])

    def _live_pid(self) -> int | None:
        """The recorded pid if that process is still our broker, else None."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_ours(pid) else None

    def _is_ours(self, pid: int) -> bool:
        """True while ``pid`` is a live (non-zombie) java started for this instance dir."""
        if self._process is not None and self._process.pid == pid:
            # Our own child: definitive (an unreaped pid cannot be reused), and /proc's
            # cmdline is briefly empty while the child is still inside exec.
            return self._process.poll() is None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        marker = f"-Ddriftline.instance={self.instance_dir}".encode()
        return state != "Z" and marker in cmdline and b"kafka.Kafka" in cmdline

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        """Signal ``pid`` through a pidfd opened *after* re-checking ownership (no pid-reuse race)."""
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            if self._is_ours(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            return
        try:
            if self._is_ours(pid):
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, sig)
        finally:
            os.close(fd)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.pid == pid:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=0.1)
            if not self._is_ours(pid):
                return True
            time.sleep(0.1)
        return not self._is_ours(pid)


# -- helpers ------------------------------------------------------------------------
def _java() -> str:
    """The java executable (``$JAVA_HOME/bin/java`` first), checked to be Java 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if java is None:
        raise BrokerUnavailable(f"no java found to run the local Kafka broker; {INSTALL_HINT}")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):
        major = int(match.group(2))  # "1.8.0" style
    if major < 17:
        raise BrokerUnavailable(f"{java} is Java {major or '?'}; Kafka {KAFKA_VERSION} needs 17+; {INSTALL_HINT}")
    return java


def _log4j_opts() -> list[str]:
    return [f"-Dlog4j2.configurationFile={RUNTIME_DIR / 'log4j2.xml'}"]


def _server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    """KRaft combined broker+controller, everything on loopback, sized for one small node."""
    return render_properties(server_props(port, controller_port, data_dir))


def render_properties(props: dict[str, str]) -> str:
    """``key=value`` lines of a Java properties file."""
    return "".join(f"{k}={v}\n" for k, v in props.items())


def server_props(port: int, controller_port: int, data_dir: Path) -> dict[str, str]:
    """The plain broker's properties as a dict (the secured variant replaces its listeners)."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        # Topics come from `driftline topics create`; a typo must fail, not make a 1-partition topic.
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
    }
    return props


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, not starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _rotate(log: Path, max_bytes: int = 20 * 1024 * 1024) -> None:
    with contextlib.suppress(OSError):
        if log.stat().st_size > max_bytes:
            log.replace(log.with_name(log.name + ".1"))


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM does: TIME_WAIT is not "taken"
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _parent_death_signal():  # type: ignore[no-untyped-def]
    """A preexec_fn making the kernel SIGTERM the broker when its parent dies (tests only).

    libc and prctl are looked up before fork; the child only makes the one syscall.
    """
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec

"""The project's local broker: start, status, stop, restart — and it never kills a stranger."""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftline.commands import kafka as kafka_command
from driftline.errors import BrokerUnavailable
from driftline.kafka.admin import KafkaAdmin, create_topics
from driftline.kafka.bootstrap import resolve_bootstrap
from driftline.kafka.kafka_jars import ensure_jars, jar_cache_dir
from driftline.kafka.local_broker import LocalBroker
from driftline.kafka.topics import TopicSpec
from driftline.testing.kafka import broker_unavailable, free_ports


def _or_skip(exc: BrokerUnavailable) -> None:
    """Java/Maven missing: a failure in CI, a skip on a developer's machine."""
    broker_unavailable(f"local broker unavailable: {exc}")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A started broker in its own directory on free ports, stopped after the module."""
    port, controller_port = free_ports(2)
    broker = LocalBroker(tmp_path_factory.mktemp("local-broker"), port, controller_port, die_with_parent=True)
    try:
        broker.start(timeout=90)
    except BrokerUnavailable as exc:
        _or_skip(exc)
    yield broker
    broker.stop()
    # Anything the CLI (re)started from a fresh LocalBroker object is ended via the pid file too.
    LocalBroker(broker.instance_dir).stop()


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    kafka_command.register(parser.add_subparsers())
    args = parser.parse_args(["kafka", *argv])
    return int(args.func(args))


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


@pytest.mark.kafka
def test_started_broker_answers_and_status_names_our_pid(broker: LocalBroker) -> None:
    status = broker.status()
    assert status.state == "running"
    assert status.bootstrap_servers == broker.bootstrap_servers
    assert str(broker.instance_dir).encode() in _cmdline(status.pid or 0)
    assert KafkaAdmin(broker.bootstrap_servers).ping()
    assert (broker.data_dir / "meta.properties").exists()
    assert "kafka.server" in broker.log_path.read_text(), "broker log lines must reach the instance log"


@pytest.mark.kafka
def test_second_start_while_running_is_a_noop(broker: LocalBroker, caplog: pytest.LogCaptureFixture) -> None:
    before = broker.status().pid
    with caplog.at_level(logging.INFO, logger="driftline.kafka.local_broker"):
        after = broker.start(timeout=10)
    assert after.pid == before
    assert "already running" in caplog.text
    other_port = free_ports(1)[0]
    with pytest.raises(BrokerUnavailable, match="already runs on port"):
        LocalBroker(broker.instance_dir, other_port).start(timeout=10)


@pytest.mark.kafka
def test_stop_never_signals_a_pid_that_is_not_our_broker(broker: LocalBroker, tmp_path: Path) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for foreign_pid in (stranger.pid, broker.status().pid):  # a random process; another instance's broker
            other = LocalBroker(tmp_path / "other")
            other.instance_dir.mkdir(exist_ok=True)
            other.pid_path.write_text(f"{foreign_pid}\n")
            assert other.status().state == "stopped"
            assert other.stop() is False
            assert not other.pid_path.exists(), "a stale pid file is cleaned up"
        assert stranger.poll() is None, "the unrelated process must still run"
        assert broker.status().state == "running", "the other instance's broker must still run"
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.kafka
def test_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(BrokerUnavailable, match=f"port {port} .* already in use"):
            LocalBroker(tmp_path / "k", port).start(timeout=10)


@pytest.mark.kafka
def test_cli_stop_then_start_reuses_jars_and_data(
    broker: LocalBroker, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    admin = KafkaAdmin(broker.bootstrap_servers)
    create_topics(admin, [TopicSpec("survives-restart", 2)])
    old_pid = broker.status().pid
    marker_mtime = (jar_cache_dir() / ".complete").stat().st_mtime
    directory = str(broker.instance_dir)

    assert _cli("stop", "--dir", directory) == 0
    assert "kafka stopped" in capsys.readouterr().out
    assert not Path(f"/proc/{old_pid}").exists() or b"kafka.Kafka" not in _cmdline(old_pid or 0)
    assert _cli("status", "--dir", directory) == kafka_command.EXIT_STOPPED
    assert _cli("stop", "--dir", directory) == 0
    assert "was not running" in capsys.readouterr().out

    with caplog.at_level(logging.INFO, logger="driftline.kafka.local_broker"):
        assert _cli("start", "--dir", directory) == 0  # port comes from the instance's record
    out = capsys.readouterr().out
    assert f"kafka running at {broker.bootstrap_servers}" in out
    assert "resolving kafka" not in caplog.text and "formatting" not in caplog.text
    assert (jar_cache_dir() / ".complete").stat().st_mtime == marker_mtime
    assert admin.partition_counts(["survives-restart"]) == {"survives-restart": 2}
    assert _cli("status", "--dir", directory) == kafka_command.EXIT_RUNNING


def test_start_fails_fast_with_the_log_tail_when_java_dies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_HEAP_OPTS", "-Xmx1k")  # the JVM refuses to start
    broker = LocalBroker(tmp_path / "k", *free_ports(2))
    with pytest.raises(BrokerUnavailable) as info:
        broker.start(timeout=60)
    message = str(info.value)
    if "exited during start" not in message:
        _or_skip(info.value)  # no java/mvn here at all
    assert "heap" in message.lower(), "the JVM's own complaint comes from the log tail"
    assert str(broker.log_path) in message
    assert broker.status().state == "stopped"
    assert not broker.pid_path.exists()


def test_missing_java_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    hint = "apt-get install openjdk-17-jre-headless maven.*KAFKA_BOOTSTRAP_SERVERS"
    with pytest.raises(BrokerUnavailable, match=hint):
        LocalBroker(tmp_path / "k", *free_ports(2)).start()


def test_missing_maven_on_first_run_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerUnavailable, match="Maven .*apt-get install openjdk-17-jre-headless maven"):
        ensure_jars(tmp_path / "empty-cache")
    assert not (jar_cache_dir(tmp_path / "empty-cache") / ".complete").exists()


def test_resolve_bootstrap_prefers_env_and_starts_nothing(tmp_path: Path) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092"}
    assert resolve_bootstrap(instance_dir=tmp_path / "k", env=env) == "kafka-1:9092,kafka-2:9092"
    assert resolve_bootstrap(instance_dir=tmp_path / "k", servers="explicit:1", env=env) == "explicit:1"
    assert not (tmp_path / "k").exists()
    with pytest.raises(BrokerUnavailable, match="driftline kafka start"):
        resolve_bootstrap(start_local=False, instance_dir=tmp_path / "k", env={})


def test_controller_port_is_fixed_once_formatted_and_never_the_client_port(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "k", *free_ports(1))
    broker.data_dir.mkdir(parents=True)
    (broker.data_dir / "meta.properties").write_text("formatted\n")
    (broker.instance_dir / "instance.json").write_text('{"port": 40001, "controller_port": 40002}')
    assert broker.bootstrap_servers == "127.0.0.1:40001", "names where the instance runs or last ran"
    with pytest.raises(BrokerUnavailable, match="formatted with controller port 40002"):
        LocalBroker(broker.instance_dir, 40001, 40005).start()
    with pytest.raises(BrokerUnavailable, match="port 40002 is this instance's controller port"):
        LocalBroker(broker.instance_dir, 40002).start()

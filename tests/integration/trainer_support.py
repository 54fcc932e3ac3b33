"""Helpers for the trainer/subscriber tests: labeled rows, requests, a trainer in a thread or a process."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from driftline.consumers.registry.state import RegistryState
from driftline.consumers.trainer.client import send_command
from driftline.consumers.trainer.metrics import TrainerMetrics
from driftline.consumers.trainer.service import Trainer
from driftline.consumers.trainer.state_loader import load_state
from driftline.consumers.training.config import GovernanceSettings, TrainerSettings
from driftline.consumers.training.run import TrainingContext
from driftline.kafka.topics import TopicNames
from driftline.schemas.control import RetrainRequested
from driftline.schemas.registry import ModelCommand
from driftline.trust.keys import private_key_from_hex, public_hex

KEY_HEX = "5e" * 32  # the trainer's Ed25519 seed in these tests
KEY = private_key_from_hex(KEY_HEX, "test key")
PUBLIC_KEY = KEY.public_key()
#: Operator keys the test trainers trust: ana may approve major bumps, ops may not.
OPERATOR_SEEDS = {"ana": "a1" * 32, "ops": "0b" * 32}
OPERATOR_KEYS = {name: private_key_from_hex(seed, name) for name, seed in OPERATOR_SEEDS.items()}
OPERATORS = {
    "ana": {"key": public_hex(OPERATOR_KEYS["ana"].public_key()), "roles": ["operator", "approver"]},
    "ops": {"key": public_hex(OPERATOR_KEYS["ops"].public_key()), "roles": ["operator"]},
}
T0 = 1_767_225_600.0


def labeled_rows(
    model_id: str, n: int, *, n_features: int = 5, seed: int = 0, start: int = 0, extra_feature: bool = False
) -> list[dict[str, Any]]:
    """Binary rows whose label is a noisy linear rule of the features (learnable, ~90 % accuracy)."""
    rng = random.Random(seed)
    rows = []
    for i in range(start, start + n):
        x = {f"f{j}": rng.gauss(0.0, 1.0) for j in range(n_features)}
        if extra_feature:
            x["extra"] = rng.gauss(0.0, 1.0)
        y = x["f0"] + 0.5 * x["f1"] + rng.gauss(0.0, 0.3) > 0
        rows.append(
            {
                "model_id": model_id,
                "event_id": f"{model_id}-{i}",
                "ts": T0 + i,
                "model_version": None,
                "prediction": y,
                "score": None,
                "label": y,
                "features": x,
                "scores": None,
                "label_ts": None,
            }
        )
    return rows


def produce_rows(produce: Any, topic: str, rows: list[dict[str, Any]]) -> None:
    produce(topic, [(r["model_id"], orjson.dumps(r)) for r in rows], transactional=True)


def request(model_id: str, window_start: float = 0.0, rule: str = "drift") -> tuple[str, bytes]:
    req = RetrainRequested(model_id, window_start, window_start + 60, rule, ("x: psi 0.4 > 0.2",), {"psi": 0.4}, T0, 1)
    return model_id, orjson.dumps(req.to_dict())


def settings(**overrides: Any) -> TrainerSettings:
    base: dict[str, Any] = {
        "cooldown_s": 0.0,
        "min_rows": 50,
        "max_rows": 5000,
        "min_rows_after_drift": 50,
        "transactional_id": f"test-trainer-{os.urandom(4).hex()}",
        "group_id": f"test-trainer-{os.urandom(4).hex()}",
    }
    base.update(overrides)
    return TrainerSettings(**base)


@contextlib.contextmanager
def trainer_thread(
    bootstrap: str,
    names: TopicNames,
    tmp: Path,
    trainer_settings: TrainerSettings | None = None,
    governance: GovernanceSettings | None = None,
) -> Iterator[Trainer]:
    """A trainer running in a thread for the duration of the block."""
    s = trainer_settings or settings()
    ctx = TrainingContext(
        KEY, str(tmp / "artifacts"), s.inline_limit_bytes, governance or GovernanceSettings(operators=OPERATORS)
    )
    registry = CollectorRegistry()
    trainer = Trainer(bootstrap, names, s, ctx, TrainerMetrics(registry))
    trainer.metrics_registry = registry  # type: ignore[attr-defined] - for the tests' metric checks
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            trainer.run(stop)
        except BaseException as exc:  # surfaced in the test, not lost in the thread
            failures.append(exc)
            raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield trainer
    finally:
        stop.set()
        thread.join(30)
        if failures:
            raise AssertionError(f"trainer thread died: {failures[0]!r}") from failures[0]


def send_signed(bootstrap: str, names: TopicNames, cmd: ModelCommand) -> None:
    """``cmd`` signed with the key of its actor (an operator of `OPERATOR_KEYS`)."""
    send_command(bootstrap, names.control, cmd, OPERATOR_KEYS[cmd.actor])


def operator_config(tmp: Path, name: str = "ana") -> str:
    """``[operator]`` lines for a CLI config: ``name``'s key written to a 0600 file under ``tmp``."""
    path = tmp / f"{name}.key"
    if not path.exists():
        path.write_text(OPERATOR_SEEDS[name] + "\n", encoding="utf-8")
        path.chmod(0o600)
    return f'[operator]\nkey_file = "{path}"\n'


def values(consume_all: Any, topic: str, min_count: int = 0, timeout: float = 60.0) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in consume_all(topic, min_count=min_count, timeout=timeout) if r.value]


def wait_state(bootstrap: str, names: TopicNames, ok: Any, timeout: float = 60.0) -> RegistryState:
    """Poll the rebuilt registry state until ``ok(state)``; AssertionError with the last state on timeout."""
    deadline = time.monotonic() + timeout
    state = load_state(bootstrap, names)
    while not ok(state):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"condition not met in {timeout} s; audit: "
                f"{[(e['type'], e.get('reason'), e.get('detail')) for es in state.audit.values() for e in es]}"
            )
        time.sleep(0.5)
        state = load_state(bootstrap, names)
    # the topics were read one after another: read again so every topic includes what was seen
    return load_state(bootstrap, names)


def trainer_process(
    bootstrap: str,
    names: TopicNames,
    tmp: Path,
    transactional_id: str,
    group_id: str,
    plugin_dir: Path | None = None,
    model: str = "river",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``driftline trainer`` as a real process (its own config file), for kill -9 tests."""
    config = tmp / "driftline.toml"
    config.write_text(
        f'[topics]\nprefix = "{names.prefix}"\n'
        f'[trainer]\ntransactional_id = "{transactional_id}"\ngroup_id = "{group_id}"\nmetrics_port = 0\n'
        f'cooldown_s = 0.0\nmin_rows = 50\nmodel = "{model}"\nsigning_key = "{KEY_HEX}"\n'
        f'artifact_dir = "{tmp / "artifacts"}"\n',
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(plugin_dir or ""), os.environ.get("PYTHONPATH", "")])),
        **(env or {}),
    }
    log = open(tmp / f"trainer-{time.time_ns()}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "driftline.cli", "--config", str(config), "trainer", "--bootstrap-servers", bootstrap],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )

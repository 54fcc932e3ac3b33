"""The demo's serving side: register version 1.0.0 per model, follow model updates."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from driftline.config import Settings
from driftline.consumers.signing import load_verify_key
from driftline.consumers.subscriber import ModelSubscriber
from driftline.demo.traffic import SyntheticTraffic
from driftline.kafka.topics import TopicNames

__all__ = ["register_first_versions", "DemoSubscriber"]


def register_first_versions(bootstrap: str, models: tuple[str, ...], log_dir: Path, env: dict[str, str],
                            say: Callable[[str], None], timeout_s: float = 120.0) -> bool:
    """``driftline models register`` each model from pre-drift rows, through the same gate as retrains."""
    rows_file = log_dir / "training-rows.jsonl"
    rows_file.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in SyntheticTraffic().training_rows(4000)))
    ok = True
    for model in models:
        cmd = [sys.executable, "-m", "driftline.cli", "models", "--bootstrap-servers", bootstrap, "register", model,
               "--from-file", str(rows_file), "--by", "demo", "--reason", "first version", "--wait", str(timeout_s)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 30, env={**os.environ, **env})
        lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
        say(f"registered {model}: {lines[-1] if lines else done.stderr.strip()[-300:]}")
        ok = ok and done.returncode == 0
    return ok


class DemoSubscriber:
    """A ``ModelSubscriber`` like a serving process would run; reports every swap."""

    def __init__(self, settings: Settings, bootstrap: str, names: TopicNames, model_id: str, run_id: str,
                 say: Callable[[str], None], registry: CollectorRegistry | None = None) -> None:
        s = settings.subscriber
        key = load_verify_key(s.verify_key, s.verify_key_file, settings.trainer.signing_key)
        self.say = say
        self.model_id = model_id
        self.versions: list[str] = []
        self.subscriber = ModelSubscriber(
            model_id, bootstrap, names.model_updates, key, cache_dir=f"{s.cache_dir}/{run_id}",
            artifact_dir=s.artifact_dir or None, on_update=self._on_update, on_error=self._on_error,
            registry=registry)

    def _on_update(self, model_id: str, version: str, _model: Any, event: dict[str, Any]) -> None:
        self.versions.append(version)
        self.say(f"  >> subscriber: {model_id} now serving {version} "
                 f"({event.get('type')} by {event.get('actor')}: {str(event.get('reason'))[:120]})")

    def _on_error(self, model_id: str, version: str | None, exc: BaseException) -> None:
        self.say(f"  >> subscriber: refused {model_id} {version}: {exc}")

    def start(self) -> None:
        self.subscriber.start()

    def stop(self) -> None:
        self.subscriber.stop()

    def wait_for_first(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.versions and time.monotonic() < deadline:
            time.sleep(0.2)
        return bool(self.versions)

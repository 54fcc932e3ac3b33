"""The demo's serving side: register version 1.0.0 per model, follow model updates.

What the demo serves is what these subscribers hold: ``ClosedLoopServing`` predicts each
request with ``DemoSubscriber.current``, so a swap reported here changes the accuracy
the demo prints next.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from driftline.consumers.subscriber import ServedModel
from driftline.demo.loop_runner import LoopRunner
from driftline.demo.scenarios import training_rows

__all__ = ["DemoSubscriber", "register_first_versions"]

FIRST_ROWS = 5_000
"""Concept-A rows each model's 1.0.0 is trained on."""


def register_first_versions(
    runner: LoopRunner,
    models: tuple[str, ...],
    say: Callable[[str], None],
    rows: int = FIRST_ROWS,
    timeout_s: float = 120.0,
) -> bool:
    """``driftline models register`` each model from pre-drift rows, through the same gate as retrains."""
    first = training_rows(rows)
    ok = True
    for model in models:
        done, line = runner.register(model, first, reason="first version", timeout_s=timeout_s)
        say(f"registered {model}: {line}")
        ok = ok and done
    return ok


class DemoSubscriber:
    """A ``ModelSubscriber`` like a serving process would run; reports every swap and the
    event being served when it happened (``position``, set once serving starts)."""

    def __init__(
        self, runner: LoopRunner, model_id: str, say: Callable[[str], None], registry: CollectorRegistry | None = None
    ) -> None:
        self.say = say
        self.model_id = model_id
        self.versions: list[str] = []
        self.position: Callable[[], int] | None = None
        self.subscriber = runner.subscriber(
            model_id, on_update=self._on_update, on_error=self._on_error, registry=registry
        )

    @property
    def current(self) -> ServedModel | None:
        return self.subscriber.current

    def _on_update(self, model_id: str, version: str, _model: Any, event: dict[str, Any]) -> None:
        self.versions.append(version)
        where = f" at event {self.position():,}" if self.position is not None else ""
        self.say(
            f"  >> subscriber: {model_id} now serving {version}{where} "
            f"({event.get('type')} by {event.get('actor')}: {str(event.get('reason'))[:120]})"
        )

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

"""Tumbling windows driven by the monitor's own watermark, over whole batches.

driftline keeps its own window state instead of faust's windowed tables (see DESIGN.md,
"Own the windows"), so the state machine here must be pure, JSON-able (persisted in a
changelog table after every batch) and exact about *which input row* closed a window:
replay reports that row as ``at_index`` and the live agent must make the same decision
whatever the batch boundaries were.

Event-time windows: ``[k * size_s, (k + 1) * size_s)``. The watermark is the largest
event time seen minus the allowed lateness. A row is first checked against the watermark
*before* it: if its window already closed it is late (counted, not added). Otherwise it
joins its window; then the watermark advances and every window whose end it reached is
closed *by that row*. A row can never close its own window (its window ends after its
``ts``, which is at least the new watermark plus the lateness), so every row of a window
precedes the row that closes it.

Count windows: every ``size_events`` consecutive events form a window, closed by its
last event; nothing is ever late.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from driftline.errors import ConfigError

__all__ = ["WindowAssignment", "WindowClock", "WindowSettings"]


@dataclasses.dataclass(frozen=True)
class WindowSettings:
    """``[windows]``: how events are cut into windows.

    ``kind`` is ``"time"`` (tumbling event-time windows of ``size_s`` seconds, closed by
    the watermark ``max ts - allowed_lateness_s``) or ``"count"`` (``size_events``
    consecutive events). ``label_ttl_s`` bounds how long a prediction waits for its label.
    """

    kind: str = "time"
    size_s: float = 60.0
    size_events: int = 1000
    allowed_lateness_s: float = 10.0
    label_ttl_s: float = 86400.0

    def __post_init__(self) -> None:
        if self.kind not in ("time", "count"):
            raise ConfigError("windows.kind", f"must be 'time' or 'count', got {self.kind!r}")
        if not (self.size_s > 0 and math.isfinite(self.size_s)):
            raise ConfigError("windows.size_s", "must be a positive number of seconds")
        if self.size_events < 1:
            raise ConfigError("windows.size_events", "must be >= 1")
        if not (self.allowed_lateness_s >= 0 and math.isfinite(self.allowed_lateness_s)):
            raise ConfigError("windows.allowed_lateness_s", "must be >= 0")
        if not self.label_ttl_s > 0:
            raise ConfigError("windows.label_ttl_s", "must be > 0")


@dataclasses.dataclass(frozen=True)
class WindowAssignment:
    """Where each row of one batch goes, and which rows close which windows.

    ``window_id[i]`` is row ``i``'s window (meaningless where ``late[i]``);
    ``closes`` lists ``(window_id, row)`` in row order: window ``window_id`` closes right
    after row ``row`` has been applied.
    """

    window_id: np.ndarray
    late: np.ndarray
    closes: list[tuple[int, int]]
    max_ts: float = -math.inf

    def windows(self) -> list[int]:
        """Distinct window ids that receive rows of this batch, ascending."""
        return [int(w) for w in np.unique(self.window_id[~self.late])]

    def rows_of(self, window_id: int) -> np.ndarray:
        """Boolean mask of the (not late) rows that go to ``window_id``."""
        return (self.window_id == window_id) & ~self.late


class WindowClock:
    """The window state machine: assigns rows to windows and says when windows close.

    ``assign`` is pure (returns the assignment, leaves the state alone) and ``advance``
    commits it, so a caller that fails half-way through a batch can retry from the
    persisted state.

    Examples
    --------
    >>> import numpy as np
    >>> clock = WindowClock(WindowSettings(size_s=10.0, allowed_lateness_s=2.0))
    >>> a = clock.assign(np.array([1.0, 5.0, 11.0, 12.5, 3.0, 13.0, 30.0]))
    >>> a.window_id.tolist(), a.late.tolist()
    ([0, 0, 1, 1, 0, 1, 3], [False, False, False, False, True, False, False])
    >>> a.closes   # window 0 closes at row 3 (watermark 10.5), window 1 at row 6
    [(0, 3), (1, 6)]
    >>> clock.advance(a); clock.open_windows
    [3]
    """

    def __init__(self, settings: WindowSettings | None = None) -> None:
        self.settings = settings or WindowSettings()
        self.max_ts = -math.inf
        self.events = 0
        self.open_windows: list[int] = []
        self.late_events = 0

    @property
    def watermark(self) -> float:
        """Largest event time seen minus the allowed lateness (-inf before any event)."""
        return self.max_ts - self.settings.allowed_lateness_s

    def bounds(self, window_id: int) -> tuple[float, float]:
        """``(start, end)`` of a window: seconds for time windows, event numbers for count."""
        if self.settings.kind == "count":
            size = self.settings.size_events
            return float(window_id * size), float((window_id + 1) * size)
        size_s = self.settings.size_s
        return window_id * size_s, (window_id + 1) * size_s

    def assign(self, ts: np.ndarray) -> WindowAssignment:
        """Assign one batch's rows (``ts`` in row order) without changing the state."""
        ts = np.asarray(ts, dtype=np.float64)
        if self.settings.kind == "count":
            return self._assign_count(len(ts))
        return self._assign_time(ts)

    def advance(self, assignment: WindowAssignment) -> None:
        """Commit an assignment made by ``assign`` on this same state."""
        n = len(assignment.window_id)
        if n == 0:
            return
        closed = {w for w, _ in assignment.closes}
        if self.settings.kind == "time":
            self.max_ts = max(self.max_ts, assignment.max_ts)
        self.events += n
        self.late_events += int(assignment.late.sum())
        opened = set(self.open_windows) | set(assignment.windows())
        self.open_windows = sorted(opened - closed)

    def _assign_time(self, ts: np.ndarray) -> WindowAssignment:
        size = self.settings.size_s
        lateness = self.settings.allowed_lateness_s
        window_id = np.floor(ts / size).astype(np.int64)
        running = np.maximum.accumulate(np.maximum(ts, self.max_ts)) if len(ts) else ts
        wm_after = running - lateness
        wm_before = np.empty_like(wm_after)
        if len(ts):
            wm_before[0] = self.watermark
            wm_before[1:] = wm_after[:-1]
        late = (window_id + 1) * size <= wm_before
        candidates = set(self.open_windows) | {int(w) for w in np.unique(window_id[~late])}
        closes = []
        for w in sorted(candidates):
            row = int(np.searchsorted(wm_after, (w + 1) * size, side="left"))
            if row < len(ts):
                closes.append((w, row))
        closes.sort(key=lambda c: (c[1], c[0]))
        return WindowAssignment(window_id, late, closes, float(running[-1]) if len(ts) else self.max_ts)

    def _assign_count(self, n: int) -> WindowAssignment:
        size = self.settings.size_events
        position = self.events + np.arange(n, dtype=np.int64)
        window_id = position // size
        ends = np.nonzero((position + 1) % size == 0)[0]
        closes = [(int(window_id[r]), int(r)) for r in ends]
        return WindowAssignment(window_id, np.zeros(n, dtype=bool), closes)

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (``-inf`` watermark stored as ``None``)."""
        return {
            "max_ts": None if self.max_ts == -math.inf else self.max_ts,
            "events": self.events,
            "open_windows": list(self.open_windows),
            "late_events": self.late_events,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: WindowSettings | None = None) -> WindowClock:
        """Rebuild a clock persisted with ``to_state``."""
        clock = cls(settings)
        clock.max_ts = -math.inf if state.get("max_ts") is None else float(state["max_ts"])
        clock.events = int(state.get("events", 0))
        clock.open_windows = [int(w) for w in state.get("open_windows", [])]
        clock.late_events = int(state.get("late_events", 0))
        return clock

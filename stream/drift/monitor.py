"""The per-model monitor: the one piece of code the live agent and ``driftline replay`` share.

``ModelMonitor.process(batch)`` takes one columnar micro-batch of one model and returns
everything that follows from it: closed windows with their scores, retrain decisions,
joined (prediction, label) rows for ``driftline.labeled``, and counters. No I/O and no
global state: given the same sequence of batches it returns the same outputs, *whatever
the batch boundaries* — a batch is cut at every row that closes a window, and everything
the policy sees is ordered by row — so replay's ``at_index`` is exact and the agent,
restarted from ``to_state()``, continues exactly where it stopped.

Without a reference (no trained version yet) the first ``reference.windows`` full
windows' rows become the reference (the window holding the very first event is partial,
so it is skipped); windows opened before that reference existed are reported
``unscored``.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping, MutableMapping
from typing import Any, cast

import numpy as np

from driftline.schemas.control import RetrainRequested
from driftline.stream.drift.calibration import FeatureNull, nulls_from_reference
from driftline.stream.drift.feature_types import FeatureType
from driftline.stream.drift.label_join import JoinedRow, LabelJoin
from driftline.stream.drift.monitor_config import MonitorConfig, ReferenceSettings
from driftline.stream.drift.performance import PerformanceSignal, PerformanceTracker, Task
from driftline.stream.drift.policy import DriftPolicy, WindowClosed, WindowInfo
from driftline.stream.drift.reference import ReferenceProfile, select_rows, take
from driftline.stream.drift.scores import score_window
from driftline.stream.drift.window_profile import WindowProfile
from driftline.stream.drift.windows import WindowAssignment, WindowClock

__all__ = ["ModelMonitor", "MonitorConfig", "MonitorOutput", "ReferenceSettings"]

KIND_FEATURE, KIND_PREDICTION, KIND_LABEL = 0, 1, 2
"""``ObservationBatch.kind`` codes (``driftline.schemas.batch``)."""


@dataclasses.dataclass
class MonitorOutput:
    """What one batch produced, in row order.

    ``joined``: (prediction, label) rows for ``driftline.labeled``; ``reference``: the
    profile built from this model's first windows, when that happened in this batch.
    """

    decisions: list[RetrainRequested] = dataclasses.field(default_factory=list)
    windows: list[WindowClosed] = dataclasses.field(default_factory=list)
    joined: list[JoinedRow] = dataclasses.field(default_factory=list)
    performance: list[PerformanceSignal] = dataclasses.field(default_factory=list)
    late_events: int = 0
    expired_joins: int = 0
    reference: ReferenceProfile | None = None
    checks: list[Any] = dataclasses.field(default_factory=list)
    """Post-deployment checks of the serving version (``VersionChecked``; the live agent's)."""


@dataclasses.dataclass
class _OpenWindow:
    """A window that has rows and is not closed yet. ``role``: scored/reference/unscored."""

    role: str
    n_events: int = 0
    profile: WindowProfile | None = None

    def to_state(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "n_events": self.n_events,
            "profile": None if self.profile is None else self.profile.to_dict(),
        }


class ModelMonitor:
    """Windows, profiles, scores, label join, performance and policy for one model.

    Examples
    --------
    >>> monitor = ModelMonitor("churn")
    >>> monitor.reference is None, monitor.to_state()["events"]
    (True, 0)
    """

    def __init__(
        self,
        model_id: str,
        config: MonitorConfig | None = None,
        reference: ReferenceProfile | None = None,
        join_store: MutableMapping | None = None,
        model_version: str | None = None,
    ) -> None:
        self.model_id = model_id
        self.config = config or MonitorConfig()
        self.clock = WindowClock(self.config.windows)
        self.policy = DriftPolicy(model_id, self.config.policy)
        self.join = LabelJoin({} if join_store is None else join_store, ttl_s=self.config.windows.label_ttl_s)
        self.tracker = PerformanceTracker(cast(Task, self.config.policy.task) or None)  # checked by PolicySettings
        self.reference: ReferenceProfile | None = None
        self.model_version = model_version
        self._nulls: dict[str, FeatureNull] = {}
        self.first_window: int | None = None
        self.reference_windows: list[int] = []
        self.reference_columns: dict[str, list] = {}
        self.reference_rows = 0
        self.open: dict[int, _OpenWindow] = {}
        self.joining = False
        self.counters = {"events": 0, "late_events": 0, "windows": 0, "decisions": 0, "expired_joins": 0}
        if reference is not None:
            self.set_reference(reference, model_version)

    # -- reference ---------------------------------------------------------------------

    def set_reference(self, profile: ReferenceProfile, model_version: str | None = None) -> None:
        """Score from now on against ``profile`` (a newly served version's training profile).

        Open windows were counted on the old bins: they close ``unscored``. The streak and
        calibrated thresholds are reset; a running cooldown is kept.
        """
        self.reference = profile
        self.model_version = model_version
        self._nulls = nulls_from_reference(profile)
        self.policy.reset()
        self.reference_columns, self.reference_rows = {}, 0
        for window in self.open.values():
            window.role, window.profile = "unscored", None

    def _role_for(self, window_id: int) -> str:
        if self.reference is not None:
            return "scored"
        if self.first_window is None:
            self.first_window = window_id
        full = self.config.windows.kind == "count" or window_id > self.first_window
        if full and len(self.reference_windows) < self.config.reference.windows:
            self.reference_windows.append(window_id)
            return "reference"
        return "unscored"

    def _collect_reference(self, batch: Any, rows: np.ndarray | slice | None) -> None:
        idx = select_rows(batch, rows)
        if idx is None:
            idx = np.arange(len(batch))
        room = self.config.reference.max_rows - self.reference_rows
        idx = idx[: max(room, 0)]
        if len(idx) == 0:
            return
        for name in batch.features:
            self.reference_columns.setdefault(name, [None] * self.reference_rows)
        for name, column in self.reference_columns.items():
            source = batch.features.get(name)
            column.extend(take(source, idx) if source is not None else [None] * len(idx))
        self.reference_rows += len(idx)

    def _build_reference(self) -> ReferenceProfile:
        ref = self.config.reference
        declared = {name: FeatureType(kind) for name, kind in ref.types.items()}
        return ReferenceProfile.from_columns(
            self.reference_columns, self.reference_rows, declared, ref.numeric_bins, ref.top_k
        )

    # -- processing --------------------------------------------------------------------

    def process(self, batch: Any) -> MonitorOutput:
        """Apply one batch of this model's observations; returns what it produced."""
        out = MonitorOutput()
        n = len(batch)
        if n == 0:
            return out
        assignment = self.clock.assign(batch.ts)
        joined = self._join(batch)
        signals = self.tracker.update(joined) if joined else []
        out.joined, out.performance = joined, list(signals)
        steps = self._steps(assignment, _signal_rows(batch, joined, signals))
        start = 0
        for row, kind, payload in steps:
            if row >= start:
                self._route(batch, assignment, start, row + 1)
                start = row + 1
            if kind == "close":
                self._close(batch, assignment, payload, row, out)
            else:
                self._performance(batch, assignment, payload, row, out)
        if start < n:
            self._route(batch, assignment, start, n)
        self.clock.advance(assignment)
        out.late_events = int(assignment.late.sum())
        expired = self.join.expire(self.clock.watermark, self.model_id)
        out.expired_joins = sum(dataclasses.astuple(expired))
        self._count(n, out)
        return out

    def _join(self, batch: Any) -> list[JoinedRow]:
        """Label join, from the first batch holding a prediction or a label on.

        A model that only sends feature events has nothing to join, and holding every
        feature row in the join store for ``label_ttl_s`` would cost memory and ~10 µs
        per event; so feature rows seen before any prediction/label are not stored.
        """
        if not self.joining:
            if not (batch.kind != KIND_FEATURE).any():
                return []
            self.joining = True
        return self.join.add_batch(batch)

    def _steps(self, assignment: WindowAssignment, signals: list[tuple[int, Any]]) -> list[tuple[int, str, Any]]:
        """Closes and performance signals by row; at one row, closes come first."""
        steps = [(row, "close", window_id) for window_id, row in assignment.closes]
        steps += [(row, "signal", s) for row, s in signals]
        steps.sort(key=lambda s: (s[0], s[1] != "close"))
        return steps

    def _route(self, batch: Any, assignment: WindowAssignment, start: int, stop: int) -> None:
        """Add rows ``[start, stop)`` to their windows (opening windows as needed).

        Profiles read the segment as a row range of the whole batch (a slice when all
        its rows go to one window), not from a sliced copy of every column: the batch's
        numeric columns are converted once and each segment reads views of them.
        """
        ids = assignment.window_id[start:stop]
        live = ~assignment.late[start:stop]
        whole = (start, stop) == (0, len(batch))
        window_ids = np.unique(ids[live]).tolist()
        for window_id in window_ids:
            mask = live if len(window_ids) == 1 else live & (ids == window_id)
            window = self.open.get(window_id)
            if window is None:
                window = self.open[window_id] = self._open_window(window_id)
            every = bool(mask.all())
            window.n_events += len(mask) if every else int(mask.sum())
            rows = (None if whole else slice(start, stop)) if every else np.flatnonzero(mask) + start
            if window.role == "scored" and window.profile is not None:
                window.profile.update(batch, rows=rows)
            elif window.role == "reference":
                self._collect_reference(batch, rows)

    def _open_window(self, window_id: int) -> _OpenWindow:
        role = self._role_for(window_id)
        profile = WindowProfile(self.reference) if role == "scored" and self.reference is not None else None
        return _OpenWindow(role, 0, profile)

    def _info(self, batch: Any, window_id: int, window: _OpenWindow, row: int) -> WindowInfo:
        start, end = self.clock.bounds(window_id)
        n_rows = window.profile.n_rows if window.profile is not None else 0
        return WindowInfo(window_id, start, end, window.n_events, n_rows, float(batch.ts[row]), self._index(batch, row))

    def _index(self, batch: Any, row: int) -> int:
        index = getattr(batch, "index", None)
        return int(index[row]) if index is not None else self.clock.events + row

    def _close(self, batch: Any, assignment: WindowAssignment, window_id: int, row: int, out: MonitorOutput) -> None:
        window = self.open.pop(window_id, None)
        if window is None:
            return
        info = self._info(batch, window_id, window, row)
        if window.role == "scored" and window.profile is not None and self.reference is not None:
            scores = score_window(self.reference, window.profile)
            closed, decision = self.policy.on_window(info, scores, self._nulls, self.model_version)
            out.windows.append(closed)
            if decision is not None:
                out.decisions.append(decision)
            return
        out.windows.append(WindowClosed(self.model_id, info, window.role))
        if window.role == "reference" and self.reference is None and self._reference_complete():
            self.set_reference(self._build_reference(), self.model_version)
            out.reference = self.reference

    def _reference_complete(self) -> bool:
        wanted = self.config.reference.windows
        pending = [w for w in self.reference_windows if w in self.open]
        return len(self.reference_windows) >= wanted and not pending

    def _performance(self, batch: Any, assignment: WindowAssignment, signal: Any, row: int, out: MonitorOutput) -> None:
        window_id = int(assignment.window_id[row])
        start, end = self.clock.bounds(window_id)
        info = WindowInfo(window_id, start, end, 0, 0, float(batch.ts[row]), self._index(batch, row))
        if not signal.degraded:
            return  # errors went down: nothing to retrain for
        evidence = {"window": {"id": window_id, "start": start, "end": end}, **signal.to_dict()}
        decision = self.policy.on_performance(info, signal.detector, evidence, signal.model_version)
        if decision is not None:
            out.decisions.append(decision)

    def _count(self, n: int, out: MonitorOutput) -> None:
        c = self.counters
        c["events"] += n
        c["late_events"] += out.late_events
        c["windows"] += len(out.windows)
        c["decisions"] += len(out.decisions)
        c["expired_joins"] += out.expired_joins

    # -- state -------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (the join store is external and not included)."""
        return {
            "v": 1,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "reference": None if self.reference is None else self.reference.to_dict(),
            "clock": self.clock.to_state(),
            "policy": self.policy.to_state(),
            "tracker": base64.b64encode(self.tracker.to_state()).decode("ascii"),
            "first_window": self.first_window,
            "joining": self.joining,
            "reference_windows": list(self.reference_windows),
            "reference_columns": self.reference_columns,
            "reference_rows": self.reference_rows,
            "open": {str(k): w.to_state() for k, w in sorted(self.open.items())},
            "counters": dict(self.counters),
            "events": self.counters["events"],
        }

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        config: MonitorConfig | None = None,
        join_store: MutableMapping | None = None,
    ) -> ModelMonitor:
        """Rebuild a monitor persisted with ``to_state`` (same config, same join store)."""
        monitor = cls(state["model_id"], config, join_store=join_store)
        cfg = monitor.config
        if state.get("reference") is not None:
            monitor.reference = ReferenceProfile.from_dict(state["reference"])
            monitor._nulls = nulls_from_reference(monitor.reference)
        monitor.model_version = state.get("model_version")
        monitor.clock = WindowClock.from_state(state["clock"], cfg.windows)
        monitor.policy = DriftPolicy.from_state(monitor.model_id, state["policy"], cfg.policy)
        monitor.tracker = PerformanceTracker.from_state(base64.b64decode(state["tracker"]))
        monitor.first_window = state.get("first_window")
        monitor.joining = bool(state.get("joining", False))
        monitor.reference_windows = list(state.get("reference_windows", []))
        monitor.reference_columns = {k: list(v) for k, v in state.get("reference_columns", {}).items()}
        monitor.reference_rows = int(state.get("reference_rows", 0))
        monitor.open = {int(k): monitor._restore_window(w) for k, w in state.get("open", {}).items()}
        monitor.counters.update(state.get("counters", {}))
        return monitor

    def _restore_window(self, state: Mapping[str, Any]) -> _OpenWindow:
        profile = state.get("profile")
        restored = None
        if profile is not None and self.reference is not None:
            restored = WindowProfile.from_dict(profile, self.reference)
        return _OpenWindow(state["role"], int(state["n_events"]), restored)


def _signal_rows(batch: Any, joined: list[Any], signals: list[Any]) -> list[tuple[int, Any]]:
    """The batch row behind each performance signal: the row that completed its join.

    A joined row is completed by the later of its prediction and its label rows in this
    batch (the earlier part may have come in a previous batch). A signal raised on rows
    the tracker had buffered from earlier batches maps to this batch's last completion.
    """
    if not signals:
        return []
    wanted = {s.event_id for s in signals}
    first: dict[tuple[str, int], int] = {}
    kinds = batch.kind.tolist()
    for row, event_id in enumerate(batch.event_id):
        if event_id in wanted and kinds[row] in (KIND_PREDICTION, KIND_LABEL):
            first.setdefault((event_id, kinds[row]), row)
    completed: dict[str, int] = {}
    for r in joined:
        rows = [first[k] for k in ((r.event_id, KIND_PREDICTION), (r.event_id, KIND_LABEL)) if k in first]
        if rows:
            completed[r.event_id] = max(rows)
    fallback = max(completed.values(), default=len(batch) - 1)
    return [(completed.get(s.event_id, fallback), s) for s in signals]

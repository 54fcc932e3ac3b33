"""Detection report: driftline's default policy beside per-feature ADWIN (Bonferroni), same streams.

Streams (100 events/s, change at ``CHANGE`` of ``N`` events, several seeds each):

- concept drift from River ``datasets.synth`` via ``ConceptDriftStream`` (SEA variant
  0 → 2, Agrawal function 0 → 2; width 200 events — River overflows
  ``math.exp`` when position / width > ~177): a River Hoeffding tree trained on the first 3,000
  pre-change rows and then frozen serves predictions; labels arrive 200 events late;
- covariate shift from ``driftline/testing/synthetic.py``: 0.5σ mean shift in 1 of 20 features,
  variance doubling, a new category at 20 %, missing rate 1 % → 30 %;
- a stationary stream (false alarms only).

Baseline: River ``drift.ADWIN`` on every feature (numeric value; categorical: indicator
of the reference's modal category) plus the 0/1 error stream when labels exist, with
``delta = 0.002 / m`` (Bonferroni over the ``m`` signals); an alarm is any detection.

Columns: detected / runs, mean delay in events after the change (first alarm after the
change), false alarms (alarms before the change) per million events.

    .venv/bin/python bench/detection_report.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from river import drift, tree
from river.datasets import synth

ROOT = Path(__file__).resolve().parents[1]

from driftline.stream.replay.engine import replay_lines
from driftline.testing import synthetic

N, CHANGE, RATE, LABEL_DELAY, TRAIN, WIDTH = 40_000, 25_000, 100.0, 200, 3_000, 200
OUT = ROOT / "bench" / "out"


def concept_stream(make: Callable[[int, int], object], seed: int) -> list[dict]:
    """Prediction events (inline features) + labels ``LABEL_DELAY`` events late."""
    stream = synth.ConceptDriftStream(
        stream=make(0, seed), drift_stream=make(1, seed + 100), position=CHANGE, width=WIDTH, seed=seed
    )
    rows = list(stream.take(N))
    model = tree.HoeffdingTreeClassifier()
    for x, y in rows[:TRAIN]:
        model.learn_one(x, y)
    events: list[dict] = []
    start = synthetic.START_TS
    for i, (x, _y) in enumerate(rows):
        ts = round(start + i / RATE, 6)
        features = {f"f{k}" if isinstance(k, int) else k: float(v) for k, v in x.items()}
        events.append(
            {
                "model_id": "m",
                "event_id": f"e{i}",
                "ts": ts,
                "model_version": "1.0.0",
                "prediction": int(bool(model.predict_one(x))),
                "features": features,
            }
        )
        j = i - LABEL_DELAY
        if j >= 0:
            events.append({"model_id": "m", "event_id": f"e{j}", "ts": ts, "label": int(bool(rows[j][1]))})
    return events


def sea(which: int, seed: int):
    return synth.SEA(variant=(0, 2)[which], seed=seed)


def agrawal(which: int, seed: int):
    return synth.Agrawal(classification_function=(0, 2)[which], seed=seed)


COVARIATE = {
    "mean shift 0.5σ (1/20)": lambda s: synthetic.with_mean_shift(N, CHANGE, feature="x7", seed=s),
    "variance ×2": lambda s: synthetic.with_variance_change(N, CHANGE, feature="x3", seed=s),
    "new category 20%": lambda s: synthetic.with_new_category(N, CHANGE, feature="c0", seed=s),
    "missing 1%→30%": lambda s: synthetic.with_missing_rate(N, CHANGE, feature="x5", seed=s),
    "stationary": lambda s: synthetic.stationary_events(N, seed=s),
}
CONCEPT = {
    "SEA 0→2 (ConceptDriftStream)": lambda s: concept_stream(sea, s),
    "Agrawal 0→2 (ConceptDriftStream)": lambda s: concept_stream(agrawal, s),
}


def change_line(events: list[dict]) -> int:
    return next(i for i, e in enumerate(events) if e["event_id"] == f"e{CHANGE}" and "label" not in e)


def ordinal(events: list[dict]) -> np.ndarray:
    """Line → number of non-label events up to it (delays are counted in served events)."""
    return np.cumsum([0 if "label" in e else 1 for e in events])


def driftline_alarms(events: list[dict]) -> list[int]:
    decisions, _, _ = replay_lines(synthetic.to_jsonl(events).splitlines())
    return [d.at_index for d in decisions]


def adwin_alarms(events: list[dict]) -> list[int]:
    names = sorted({k for e in events for k in e.get("features") or {}})
    first = [e["features"] for e in events[:5000] if e.get("features")]
    modal = {}
    for name in names:
        values = [f.get(name) for f in first if isinstance(f.get(name), str)]
        if values:
            modal[name] = max(set(values), key=values.count)
    has_labels = any("label" in e for e in events)
    m = len(names) + (1 if has_labels else 0)
    detectors = {name: drift.ADWIN(delta=0.002 / m) for name in names}
    errors = drift.ADWIN(delta=0.002 / m)
    predictions: dict[str, int] = {}
    alarms = []
    for line, e in enumerate(events):
        fired = False
        if "label" in e:
            p = predictions.pop(e["event_id"], None)
            if p is not None:
                errors.update(float(p != e["label"]))
                fired = errors.drift_detected
        else:
            if "prediction" in e:
                predictions[e["event_id"]] = e["prediction"]
            for name, value in e["features"].items():
                if value is None:
                    continue
                x = float(value == modal.get(name)) if isinstance(value, str) else float(value)
                detector = detectors[name]
                detector.update(x)
                fired |= detector.drift_detected
        if fired:
            alarms.append(line)
    return alarms


def evaluate(name: str, make: Callable[[int], list[dict]], seeds: int) -> list[tuple]:
    rows = []
    stationary = name == "stationary"
    for method, detect in (("driftline", driftline_alarms), ("ADWIN/feature+Bonf.", adwin_alarms)):
        detected, delays, false_alarms, events_total, seconds = 0, [], 0, 0, 0.0
        for seed in range(seeds):
            events = make(seed)
            served = ordinal(events)
            cut = len(events) if stationary else change_line(events)
            started = time.perf_counter()
            alarms = detect(events)
            seconds += time.perf_counter() - started
            false_alarms += sum(1 for a in alarms if a < cut)
            after = [a for a in alarms if a >= cut]
            if after and not stationary:
                detected += 1
                delays.append(int(served[after[0]] - served[cut]))
            events_total += int(served[-1])
        delay = f"{np.mean(delays):,.0f}" if delays else "-"
        found = "-" if stationary else f"{detected}/{seeds}"
        rows.append((name, method, found, delay, false_alarms / events_total * 1e6, seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    table = []
    for name, make in {**COVARIATE, **CONCEPT}.items():
        table += evaluate(name, make, args.seeds)
    header = f"{'stream':<34}{'method':<22}{'detected':>9}{'delay (events)':>16}{'FA / 1M events':>16}{'time s':>8}"
    lines = [header, "-" * len(header)]
    for name, method, found, delay, fa, seconds in table:
        lines.append(f"{name:<34}{method:<22}{found:>9}{delay:>16}{fa:>16.1f}{seconds:>8.1f}")
    lines.append(
        f"N={N:,} events per run, change at event {CHANGE:,}, {RATE:g} events/s (60 s windows = "
        f"{int(60 * RATE):,} events); delays in served events after the change; {args.seeds} seeds"
    )
    report = "\n".join(lines)
    print(report)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "detection_report.txt").write_text(report + "\n")


if __name__ == "__main__":
    main()

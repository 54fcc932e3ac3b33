"""Benchmark: does the model users are *served* stay accurate through a concept change?

For each scenario (``driftline.demo.scenarios``) on a real broker: its own topic prefix,
``driftline ingest|stream|trainer`` processes, stream app id, groups, transactional ids
and temp dirs (``driftline.demo.loop_runner``); version 1.0.0 registered on concept-A
rows; a ``ModelSubscriber``; then closed-loop serving — every request predicted by the
subscriber's current model, the prediction produced with that ``model_version``, the
label 200 events later — beside a River online learner and the oracle on the same
events. Prints per scenario a table of blocks (served / online / oracle accuracy and the
versions served), the versions served and when they started, for each change the
recovery and the mean accuracy after it beside both baselines, and PASS/FAIL lines for
the targets: recovery within 10,000 events, mean served accuracy after the change
>= 0.95 x the oracle's; stationary: no new version. Writes JSON to ``--out``. Exit 0
when it ran (the targets are reported, not asserted).

    .venv/bin/python bench/closed_loop.py [--scenarios stationary,concept_change] [--events 100000]
        [--rate 400] [--label-delay 200] [--out bench/out] [--bootstrap-servers HOST:PORT]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson

from driftline import logs
from driftline.config import load_settings
from driftline.demo.closed_loop import ServingOptions
from driftline.demo.loop_runner import ScenarioRun, run_scenario
from driftline.demo.scenarios import SCENARIOS, make_scenario
from driftline.errors import DriftlineError
from driftline.runtime import bootstrap_from

OUT = Path(__file__).parent / "out"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all)"
    )
    parser.add_argument("--events", type=int, default=100_000, help="events per scenario (default 100000)")
    parser.add_argument(
        "--change-at", type=int, default=None, help="event of the (first) change (default: 20%% of --events)"
    )
    parser.add_argument("--rate", type=float, default=400.0, help="wall-clock events/s (default 400)")
    parser.add_argument("--event-rate", type=float, default=100.0, help="event-time events/s (default 100)")
    parser.add_argument("--label-delay", type=int, default=200, help="events between prediction and label")
    parser.add_argument("--first-rows", type=int, default=20_000, help="concept-A rows version 1.0.0 is trained on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT, help="directory for the JSON results (default bench/out)")
    parser.add_argument(
        "--bootstrap-servers",
        default=None,
        help="broker (default $KAFKA_BOOTSTRAP_SERVERS, else the local one, started if needed)",
    )
    parser.add_argument("--keep-topics", action="store_true", help="leave each run's topics for inspection")
    args = parser.parse_args()
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    logs.configure("warning")
    bootstrap = (
        args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "") or bootstrap_from(load_settings(None))
    )
    options = ServingOptions(rate=args.rate, event_rate=args.event_rate, label_delay=args.label_delay, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    for name in names:
        scenario = make_scenario(name, args.events, args.change_at)
        work = Path(tempfile.mkdtemp(prefix=f"driftline-closed-loop-{name}-"))
        print(
            f"\n== {name}: {scenario.n_events:,} events, changes at "
            f"{', '.join(f'{c:,}' for c in scenario.changes) or 'none'}; broker {bootstrap}; "
            f"logs {work / 'logs'} ==",
            flush=True,
        )
        started = time.monotonic()
        try:
            run = run_scenario(
                bootstrap, scenario, options, work, first_rows=args.first_rows, say=lambda line: print(line, flush=True)
            )
        except Exception as exc:
            print(f"FAIL {name} did not run: {exc!r} (logs in {work / 'logs'})", flush=True)
            summary.append({"scenario": name, "error": repr(exc)})
            continue
        report(run, time.monotonic() - started)
        doc = {**run.to_dict(), "options": vars(options), "first_rows": args.first_rows}
        (args.out / f"closed_loop_{name}.json").write_bytes(
            orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
        summary.append(
            {
                "scenario": name,
                "targets": doc["targets"],
                "changes": doc["changes_report"],
                "version_starts": doc["version_starts"],
            }
        )
    (args.out / "closed_loop.json").write_bytes(
        orjson.dumps(
            {
                "events": args.events,
                "rate": args.rate,
                "label_delay": args.label_delay,
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "scenarios": summary,
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    print(f"\nresults: {args.out}/closed_loop*.json")
    return 0


def _acc(x: float) -> str:
    return "    -" if math.isnan(x) else f"{x:.3f}"


def report(run: ScenarioRun, seconds: float) -> None:
    """The block table, versions served, changes beside both baselines, targets."""
    r = run.result
    rows_per_line = max(1, r.n_events // 40_000)  # about 40 lines however long the run
    per_prediction = 1e6 * r.predict_s / max(r.served_events, 1)
    print(
        f"\n{r.scenario}: {r.served_events:,} events served in {r.wall_s:.0f} s "
        f"({r.served_events / max(r.wall_s, 1e-9):.0f} ev/s; served model {per_prediction:.0f} µs per prediction), "
        f"whole run {seconds:.0f} s"
    )
    print(f"  {'events':<17}{'served':>7}{'online':>8}{'oracle':>8}  versions")
    blocks = r.blocks()
    for k in range(0, len(blocks), rows_per_line):
        group = blocks[k : k + rows_per_line]
        start, end = group[0].start, group[-1].end
        served, online, oracle = r.accuracy(start, end)
        versions = sorted({v for b in group for v in b.versions}, key=r.versions.index)
        marks = [c for c in r.changes if start <= c < end]
        note = f"   <- change at {marks[0]:,}" if marks else ""
        print(
            f"  {f'{start:,}-{end:,}':<17}{_acc(served):>7}{_acc(online):>8}{_acc(oracle):>8}  "
            f"{','.join(versions)}{note}"
        )
    starts = "; ".join(f"{v} from event {e:,}" for v, e in r.version_starts())
    print(f"versions served: {starts}")
    for change in r.change_reports():
        recovery = "never" if change.recovery is None else f"{change.recovery:,} events"
        print(
            f"change at {change.at:,} (to {change.until:,}): recovery {recovery}; mean accuracy after it: "
            f"served {change.served:.3f} | online {change.online:.3f} | oracle {change.oracle:.3f}"
        )
    print(f"pipeline: {run.facts.describe()}")
    print(
        f"stream joined {run.joined:,} of {r.served_events:,} served events; rows whose model_version is "
        f"not the version that served them: {run.version_mismatches:,}"
    )
    for target in run.targets():
        print(target.line())


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DriftlineError as exc:  # a broker that cannot be had, a bad setting: say what to do, no traceback
        print(f"closed_loop: {exc}", file=sys.stderr)
        sys.exit(2)

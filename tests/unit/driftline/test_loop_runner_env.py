"""The closed loop's event time may run ahead of the clock: its ingest is told how far (ingest.max_future_s)."""

from driftline.demo.closed_loop import ServingOptions
from driftline.demo.loop_runner import _future_allowance
from driftline.demo.scenarios import make_scenario


def test_runs_whose_event_time_outruns_the_clock_widen_the_future_allowance() -> None:
    # the demo's and the benchmark's defaults stay within the one-hour default
    assert _future_allowance(make_scenario("concept_change", 100_000), ServingOptions()) == {}
    # 1M events at 400/s wall and 100/s event time end 7,500 s ahead of the clock
    wide = _future_allowance(make_scenario("concept_change", 1_000_000), ServingOptions())
    assert wide == {"DRIFTLINE_INGEST_MAX_FUTURE_S": "15000"}
    assert _future_allowance(make_scenario("stationary", 10_000), ServingOptions(rate=0)) == {}

"""The stream's post-deployment check: live accuracy of the serving version against its gate."""

from __future__ import annotations

import random

import pytest

from driftline.schemas.control import RetrainRequested, VersionChecked
from driftline.stream.drift.label_join import JoinedRow
from driftline.stream.drift.served_quality import QualitySettings, ServedQualityWatch, change_point

T0 = 1_767_225_600.0


def rows(start: int, n: int, accuracy: float, version: str = "1.0.0", seed: int = 0) -> list[JoinedRow]:
    rng = random.Random(seed + start)
    out = []
    for i in range(start, start + n):
        label = rng.random() < 0.5
        right = rng.random() < accuracy
        out.append(JoinedRow("m", f"e{i}", T0 + i, version, label if right else not label, None, label, {"x": 1.0}))
    return out


def feed(
    watch: ServedQualityWatch,
    batch: list[JoinedRow],
    version: str = "1.0.0",
    gate: float = 0.99,
    hits: list[bool | None] | None = None,
    size: int = 100,
) -> list[object]:
    out: list[object] = []
    for k in range(0, len(batch), size):
        part = batch[k : k + size]
        out += watch.observe(version, {"accuracy": gate}, part, (hits or [None] * len(batch))[k : k + size])
    return out


def test_a_version_serving_as_its_gate_said_is_checked_once_and_never_asked_for():
    watch = ServedQualityWatch("m")
    out = feed(watch, rows(0, 20_000, 0.985))
    assert [type(o) for o in out] == [VersionChecked]
    assert out[0].verdict == "ok" and out[0].live["n"] == 200 and out[0].gate == {"accuracy": 0.99}


def test_a_concept_change_is_reported_short_with_the_change_point_and_asked_for_again():
    watch = ServedQualityWatch("m", QualitySettings(reask_rows=1000))
    before = feed(watch, rows(0, 5000, 0.99))
    after = feed(watch, rows(5000, 3000, 0.5))
    requests = [o for o in after if isinstance(o, RetrainRequested)]
    checks = [o for o in after if isinstance(o, VersionChecked)]
    assert [c.verdict for c in before + checks] == ["ok", "short"]
    assert [r.rule for r in requests] == ["underperforming"] * 3  # at the start, then every 1,000 rows
    first = requests[0]
    assert first.model_version == "1.0.0" and first.id == "m:1.0.0:underperforming:0"
    assert abs(first.evidence["drift_started_ts"] - (T0 + 5000)) <= 40  # found near the change
    assert first.evidence["live"]["upper_bound"] < 0.99 - 0.05
    assert first.at_index - 5000 < 200  # asked within 200 rows of the change
    assert {r.evidence["drift_started_ts"] for r in requests} == {first.evidence["drift_started_ts"]}


def test_a_new_serving_version_starts_its_own_check():
    watch = ServedQualityWatch("m")
    feed(watch, rows(0, 2000, 0.5))
    out = feed(watch, rows(2000, 1000, 0.99, version="1.0.1"), version="1.0.1", gate=0.98)
    assert [(type(o), getattr(o, "verdict", None)) for o in out] == [(VersionChecked, "ok")]
    assert out[0].version == "1.0.1" and out[0].id == "m:1.0.1:check:0"


def test_rows_of_other_versions_do_not_count_for_the_serving_one():
    watch = ServedQualityWatch("m")
    assert feed(watch, rows(0, 3000, 0.5, version="0.9.0")) == []


def test_a_clearly_better_challenger_is_proposed():
    served = rows(0, 3000, 0.85)
    rng = random.Random(1)
    hits: list[bool | None] = [rng.random() < 0.97 for _ in served]
    out = feed(ServedQualityWatch("m"), served, gate=0.86, hits=hits)
    assert [o.rule for o in out if isinstance(o, RetrainRequested)][:1] == ["challenger"]
    lead = next(o for o in out if isinstance(o, RetrainRequested)).evidence["challenger_lead"]
    assert lead["lead"] > 0.05 and lead["z"] > 2.33


def test_an_equal_challenger_is_not_proposed():
    served = rows(0, 5000, 0.9)
    rng = random.Random(2)
    hits: list[bool | None] = [rng.random() < 0.9 for _ in served]
    out = feed(ServedQualityWatch("m"), served, gate=0.9, hits=hits)
    assert not [o for o in out if isinstance(o, RetrainRequested)]


def test_state_round_trip_continues_identically():
    a = ServedQualityWatch("m")
    feed(a, rows(0, 4000, 0.99))
    b = ServedQualityWatch.from_state("m", a.to_state())
    later = rows(4000, 3000, 0.5)
    assert [o.to_dict() for o in feed(a, later)] == [o.to_dict() for o in feed(b, later)]


@pytest.mark.parametrize(
    "state",
    [
        {"v": 2},
        {"v": 1, "version": None},
        {
            "v": 1,
            "version": None,
            "rows": "x",
            "n": 0,
            "checks": 0,
            "asks": 0,
            "verdict": None,
            "since_ask": None,
            "episode_start": None,
        },
    ],
)
def test_a_malformed_state_is_refused(state):
    with pytest.raises(ValueError):
        ServedQualityWatch.from_state("m", state)


def test_change_point_finds_a_step():
    rng = random.Random(3)
    errors = [int(rng.random() < 0.02) for _ in range(300)] + [int(rng.random() < 0.5) for _ in range(200)]
    assert abs(change_point(errors) - 300) <= 15

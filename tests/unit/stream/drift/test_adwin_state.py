"""ADWIN as explicit JSON: exact round trips on any stream, and forged windows refused, never a Rust panic."""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import drift

from driftline.stream.drift import adwin_state
from driftline.stream.drift.adwin_state import dump_adwin, load_adwin


def through_json(doc: Any) -> Any:
    return orjson.loads(orjson.dumps(doc))


def observe(d: Any) -> tuple[Any, ...]:
    """Everything an owner reads from a detector, exactly (repr tells -0.0 and NaN apart)."""
    return (d.drift_detected, repr(d.width), repr(d.estimation), repr(d.variance), repr(d.total), d.n_detections)


def values(seed: int, n: int, kind: str) -> list[float]:
    rng = random.Random(seed)
    step = rng.randrange(n or 1)
    if kind == "binary":
        return [float(rng.random() < (0.2 if i < step else 0.6)) for i in range(n)]
    if kind == "gauss":
        return [rng.gauss(0.0 if i < step else 3.0, 1.0) for i in range(n)]
    return [rng.choice([0.0, -0.0, 1e300, -1e300, 5e-324, rng.random()]) for _ in range(n)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 3000),
    split=st.floats(0.0, 1.0),
    kind=st.sampled_from(["binary", "gauss", "extreme"]),
    delta=st.sampled_from([0.001, 0.002, 0.05, 0.5]),
    clock=st.sampled_from([1, 4, 32]),
    max_buckets=st.sampled_from([2, 3, 5]),
    grace=st.sampled_from([0, 10]),
)
def test_a_restored_adwin_continues_exactly_like_its_twin(
    seed: int, n: int, split: float, kind: str, delta: float, clock: int, max_buckets: int, grace: int
) -> None:
    stream = values(seed, n, kind)
    cut = int(split * n)
    make = lambda: drift.ADWIN(delta=delta, clock=clock, max_buckets=max_buckets, grace_period=grace)  # noqa: E731
    twin = make()
    for x in stream[:cut]:
        twin.update(x)
    again = load_adwin(through_json(dump_adwin(twin)))
    assert type(again) is drift.ADWIN and again._helper.__getstate__() == twin._helper.__getstate__()
    assert observe(again) == observe(twin)
    for x in stream[cut:]:
        twin.update(x)
        again.update(x)
        assert observe(again) == observe(twin)
    assert dump_adwin(again) == dump_adwin(twin)


def test_diverged_windows_round_trip() -> None:
    adwin = drift.ADWIN()
    for x in [1.0, math.inf, 2.0, -math.inf, math.nan] * 20:
        adwin.update(x)
    doc = through_json(dump_adwin(adwin))
    assert "NaN" in orjson.dumps(doc).decode()
    again = load_adwin(doc)  # equal but for NaN's sign bit, which no comparison or sum sees
    assert dump_adwin(again) == dump_adwin(adwin) and observe(again) == observe(adwin)
    for x in [3.0, math.nan, 1.0] * 50:
        adwin.update(x)
        again.update(x)
        assert observe(again) == observe(adwin)


def test_the_format_is_plain_versioned_json() -> None:
    adwin = drift.ADWIN(delta=0.001)
    for i in range(200):
        adwin.update(float(i % 2))
    doc = dump_adwin(adwin)
    assert through_json(doc) == through_json(doc) and doc["format"] == "driftline.river-state" and doc["v"] == 1
    assert doc["kind"] == "ADWIN" and doc["delta"] == 0.001 and doc["window"]["width"] == 200.0
    assert sum(len(t) << i for i, (t, _) in enumerate(doc["window"]["buckets"])) == 200


class _MyADWIN(drift.ADWIN):
    pass


@pytest.mark.parametrize("detector", [drift.PageHinkley(), drift.KSWIN(), _MyADWIN(), drift.binary.DDM()])
def test_other_detectors_are_not_written(detector: Any) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        dump_adwin(detector)


def test_an_adwin_with_unknown_attributes_is_not_written() -> None:
    adwin = drift.ADWIN()
    adwin.extra = 1
    with pytest.raises(ValueError, match="attributes"):
        dump_adwin(adwin)


def _valid() -> dict[str, Any]:
    adwin = drift.ADWIN()
    for i in range(500):
        adwin.update(float(i % 3 == 0))
    return through_json(dump_adwin(adwin))


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def forge(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return forge


FORGED = {
    "kind": _set(("kind",), "subprocess.Popen"),
    "format": _set(("format",), "pickle"),
    "version": _set(("v",), 2),
    "version bool": _set(("v",), True),
    "clock 0": _set(("clock",), 0),
    "max_buckets 0": _set(("max_buckets",), 0),
    "max_buckets 1": _set(("max_buckets",), 1),  # River's own update can panic then
    "max_buckets huge": _set(("max_buckets",), 10**12),
    "delta 0": _set(("delta",), 0.0),
    "delta as text": _set(("delta",), "0.002"),
    "flag not bool": _set(("drift_detected",), 1),
    "width off": _set(("window", "width"), 499.0),
    "width fraction": _set(("window", "width"), 500.5),
    "tick overflow": _set(("window", "tick"), 2**31),
    "no levels": _set(("window", "buckets"), []),
    "too many levels": _set(("window", "buckets"), [[[], []]] * 65),
    "level not a pair": _set(("window", "buckets", 0), [[1.0]]),
    "level too full": _set(("window", "buckets", 0), [[1.0] * 6, [0.0] * 6]),
    "uneven level": _set(("window", "buckets", 0, 1), []),
    "a text total": _set(("window", "buckets", 0, 0, 0), "1.0"),
    "extra field": _set(("window", "extra"), 1),
}


@pytest.mark.parametrize("name", sorted(FORGED))
def test_a_forged_window_is_refused(name: str) -> None:
    doc = _valid()
    FORGED[name](doc)
    with pytest.raises(ValueError, match="river state: adwin"):
        load_adwin(doc)


@pytest.mark.parametrize("at", [0, 1, -1])
def test_an_empty_level_beside_others_is_refused(at: int) -> None:
    doc = _valid()
    levels = doc["window"]["buckets"]
    levels.insert(at if at >= 0 else len(levels), [[], []])
    with pytest.raises(ValueError, match="an empty level"):
        load_adwin(doc)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_forged_field_is_refused_or_loads_a_window_that_never_panics(data: Any) -> None:
    """Replace one field anywhere by any JSON: a ``ValueError``, or a detector that keeps working
    (a Rust panic is a ``BaseException`` and would fail this test, not be caught)."""
    doc = _valid()
    path = data.draw(st.sampled_from(_paths(doc)))
    forged = copy.deepcopy(doc)
    _set(path, data.draw(JSON))(forged)
    try:
        adwin = load_adwin(forged)
    except ValueError:
        return
    for i in range(300):
        adwin.update(float(i % 2))
    assert adwin.width >= 0


def test_limits_are_stated() -> None:
    assert adwin_state.MAX_LEVELS == 64 and adwin_state.MAX_BUCKETS >= 5

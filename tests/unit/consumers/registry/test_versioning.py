"""Semver bump rules: what changed against the champion decides the part bumped."""

import pytest

from driftline.consumers.registry.versioning import bump_kind, next_version, parse, sort_versions

SPEC = {"task": "binary", "model": "river", "params": {}, "features": ["a", "b"]}


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (SPEC, "patch"),
        ({**SPEC, "features": ["b", "a"]}, "patch"),
        ({**SPEC, "params": {"lr": 0.1}}, "minor"),
        ({**SPEC, "model": "plugin:m:f"}, "minor"),
        ({**SPEC, "features": ["a", "b", "c"]}, "major"),
        ({**SPEC, "features": ["a"], "params": {"lr": 0.1}}, "major"),
    ],
)
def test_bump_kind(candidate, expected):
    assert bump_kind(candidate, SPEC) == expected


def test_first_version_is_initial_and_one_zero_zero():
    assert bump_kind(SPEC, None) == "initial"
    assert next_version(None, "initial") == "1.0.0"
    assert next_version(None, "initial", taken={"1.0.0"}) == "2.0.0"  # 1.0.0 was a rejected candidate


@pytest.mark.parametrize(
    ("champion", "kind", "taken", "expected"),
    [
        ("1.2.3", "patch", (), "1.2.4"),
        ("1.2.3", "minor", (), "1.3.0"),
        ("1.2.3", "major", (), "2.0.0"),
        ("1.2.3", "patch", ("1.2.4", "1.2.5"), "1.2.6"),
        ("1.2.3", "major", ("2.0.0",), "3.0.0"),
    ],
)
def test_next_version_skips_taken_numbers(champion, kind, taken, expected):
    assert next_version(champion, kind, taken) == expected


def test_semver_order_and_parse_errors():
    assert sort_versions(["1.10.0", "1.9.0", "1.9.10", "1.9.2"]) == ["1.9.0", "1.9.2", "1.9.10", "1.10.0"]
    with pytest.raises(ValueError):
        parse("1.0")
    with pytest.raises(ValueError):
        parse("01.0.0")

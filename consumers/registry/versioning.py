"""Semantic versions of models: which part to bump, computed against the champion.

Why semver (MLflow #7280 asks for it): a subscriber or an operator can tell from the
number alone what changed. ``major`` = the feature set changed (callers must send other
inputs); ``minor`` = the model spec or hyperparameters changed; ``patch`` = same features
and spec, new data. Numbers already taken (a rejected candidate keeps its number) are
skipped, so a version string names one artifact forever.

Examples
--------
>>> bump_kind({"features": ["a"], "model": "lr"}, {"features": ["a"], "model": "lr"})
'patch'
>>> next_version("1.4.2", "minor", taken={"1.5.0"})
'1.6.0'
>>> next_version(None, "initial")
'1.0.0'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

__all__ = ["FIRST_VERSION", "Bump", "bump", "bump_kind", "next_version", "parse", "sort_versions"]

Bump = Literal["initial", "major", "minor", "patch"]
FIRST_VERSION = "1.0.0"
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


def parse(version: str) -> tuple[int, int, int]:
    """``"1.2.3"`` → ``(1, 2, 3)``; anything else raises ``ValueError``."""
    match = _SEMVER.match(version)
    if not match:
        raise ValueError(f"not a MAJOR.MINOR.PATCH version: {version!r}")
    return int(match[1]), int(match[2]), int(match[3])


def bump_kind(candidate: Mapping[str, Any], champion: Mapping[str, Any] | None) -> Bump:
    """What changed from ``champion``'s spec to ``candidate``'s (specs: ``features`` + the rest).

    No champion → ``initial`` (a first version is 1.0.0; governance decides separately
    whether a first version deploys without approval).
    """
    if champion is None:
        return "initial"
    if sorted(candidate.get("features", ())) != sorted(champion.get("features", ())):
        return "major"
    rest = {k: v for k, v in candidate.items() if k != "features"}
    champion_rest = {k: v for k, v in champion.items() if k != "features"}
    return "patch" if rest == champion_rest else "minor"


def bump(version: str, kind: Bump) -> str:
    """The next version of ``kind`` after ``version`` (lower parts reset to 0)."""
    major, minor, patch = parse(version)
    if kind in ("major", "initial"):
        return f"{major + 1}.0.0"
    if kind == "minor":
        return f"{major}.{minor + 1}.0"
    if kind == "patch":
        return f"{major}.{minor}.{patch + 1}"
    raise ValueError(f"unknown bump {kind!r}")


def next_version(champion: str | None, kind: Bump, taken: Iterable[str] = ()) -> str:
    """Bump ``champion`` by ``kind``, skipping numbers ``taken`` by earlier candidates."""
    used = set(taken)
    version = FIRST_VERSION if champion is None else bump(champion, kind)
    while version in used:
        version = bump(version, "major" if kind == "initial" else kind)
    return version


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Ascending semver order (not string order: 1.10.0 after 1.9.0)."""
    return sorted(versions, key=parse)

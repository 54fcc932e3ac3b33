"""Nothing in driftline unpickles data it reads, except signed artifacts after verification.

A pickle runs whatever callable it names when loaded. The stream's state is explicit JSON
(``stream.drift.river_state``/``adwin_state``), so the only unpickling of data read from
Kafka or disk is ``consumers/registry/artifacts.py``'s ``load_verified``, after the digest and
signature checks. The replay's worker processes pass their own results through private
files (a 0700 ``mkdtemp`` directory they wrote themselves); those two places are listed
too, so any new one fails here and has to be argued for.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("stream", "consumers", "driftline", "schemas")
UNPICKLING = re.compile(
    r"\bpickle\.loads?\s*\(|Unpickler|\bfrom\s+pickle\s+import\b|\bimport\s+_pickle\b|\b(?:cloudpickle|dill|joblib|"
    r"marshal|shelve)\b|read_pickle|allow_pickle\s*=\s*True"
)
ALLOWED = {
    ("consumers/registry/artifacts.py", "    return pickle.loads(blob)"),  # load_verified: signed, verified first
    ("stream/replay/decode.py", "            lines = pickle.load(handle)"),  # replay worker IPC, own 0700 files
    ("stream/replay/decode_worker.py", "            value = pickle.load(handle)"),  # replay worker IPC, own 0700 files
}


def _code(line: str) -> str:
    """The line without a trailing comment (docstrings naming pickle are prose; see the filter below)."""
    return line.split("#", 1)[0]


def test_only_verified_artifacts_are_unpickled() -> None:
    found = set()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for line in path.read_text().splitlines():
                stripped = line.strip()
                if stripped.startswith(("#", '"', "'", "``", "-", ">>>")) or not UNPICKLING.search(_code(line)):
                    continue
                found.add((rel, line.rstrip()))
    assert found <= ALLOWED, sorted(found - ALLOWED)
    assert ("consumers/registry/artifacts.py", "    return pickle.loads(blob)") in found  # the scan sees it


def test_the_stream_state_modules_never_import_pickle() -> None:
    for rel in (
        "stream/tables.py",
        "stream/drift/river_state.py",
        "stream/drift/adwin_state.py",
        "stream/drift/performance.py",
        "stream/drift/performance_state.py",
        "stream/drift/score_drift.py",
        "stream/drift/challenger.py",
    ):
        text = (ROOT / rel).read_text()
        assert not re.search(r"^\s*(import pickle|from pickle|import importlib)", text, re.M), rel
        assert "__import__(" not in text and "eval(" not in text, rel

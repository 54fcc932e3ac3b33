"""``driftline replay``: stdout contract, stderr summary, invalid lines, options."""

from __future__ import annotations

import sys

import orjson
import pytest

from driftline.cli import main
from driftline.testing import synthetic

CONFIG = """
[windows]
size_s = 10.0
allowed_lateness_s = 2.0
"""


@pytest.fixture()
def files(tmp_path):
    events = synthetic.with_mean_shift(3_000, 1_530, feature="x1", shift_sigma=1.0, rate=50.0, n_numeric=3)
    other = synthetic.stationary_events(4_000, rate=50.0, n_numeric=1, model_id="other")
    other = [
        dict(e, features={**e["features"], "c0": "zzz" if i > 2_030 and i % 3 == 0 else e["features"]["c0"]})
        for i, e in enumerate(other)
    ]
    merged = sorted(events + other, key=lambda e: e["ts"])
    lines = synthetic.to_jsonl(merged).splitlines(keepends=True)
    lines[5:5] = [b"{not json\n", b'{"model_id": "synthetic", "ts": 1}\n']
    (tmp_path / "events.jsonl").write_bytes(b"".join(lines))
    (tmp_path / "ref.jsonl").write_bytes(synthetic.to_jsonl(synthetic.stationary_events(4_000, n_numeric=3, seed=5)))
    (tmp_path / "driftline.toml").write_text(CONFIG)
    return tmp_path, [_parse(line) for line in lines]


def _parse(line: bytes):
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def replay(capsys, *args):
    code = main(["replay", *map(str, args)])
    captured = capsys.readouterr()
    return code, [orjson.loads(line) for line in captured.out.splitlines()], captured.err


def test_prints_decisions_in_input_order_with_exact_at_index(files, capsys):
    tmp, parsed = files
    code, out, err = replay(capsys, tmp / "events.jsonl", "--config", tmp / "driftline.toml")
    assert code == 0
    assert [d["type"] for d in out] == ["retrain_requested"] * len(out) and len(out) == 2
    assert [d["model_id"] for d in out] == ["synthetic", "other"]
    assert [d["at_index"] for d in out] == sorted(d["at_index"] for d in out)
    for d in out:
        closing = parsed[d["at_index"]]
        assert closing["ts"] == d["ts"] and closing["model_id"] == d["model_id"]
        assert closing["ts"] >= d["window"]["end"] + 2.0  # the watermark passed the window's end
        assert set(d) >= {"model_id", "at_index", "ts", "reasons", "evidence"} and d["reasons"]
    assert out[0]["evidence"]["breaches"][0]["feature"] == "x1"
    assert out[1]["evidence"]["breaches"][0]["feature"] == "c0"


def test_summary_on_stderr_lists_invalid_lines(files, capsys):
    tmp, _ = files
    code, out, err = replay(capsys, tmp / "events.jsonl", "--config", tmp / "driftline.toml")
    assert "7,002 lines read, 7,000 events, 2 invalid, 2 model(s)" in err
    assert "2 decisions" in err and "events/s" in err
    assert "line 5: $: json" in err and "line 6: event_id: required" in err
    assert "\r" not in err  # no progress line when stderr is not a terminal


def test_windows_flag_prints_every_closed_window(files, capsys):
    tmp, _ = files
    _, out, err = replay(capsys, tmp / "events.jsonl", "--config", tmp / "driftline.toml", "--windows")
    windows = [o for o in out if o["type"] == "window_closed"]
    assert len(windows) >= 2 * 5
    assert {w["status"] for w in windows} >= {"reference", "scored"}
    assert [o["at_index"] for o in out] == sorted(o["at_index"] for o in out)
    scored = next(w for w in windows if w["status"] == "scored")
    assert {"psi", "js_distance", "missing_rate_delta", "n"} <= set(scored["scores"]["x0"])


def test_reference_file_scores_from_the_first_window(files, capsys):
    tmp, _ = files
    _, out, _ = replay(
        capsys, tmp / "events.jsonl", "--config", tmp / "driftline.toml", "--reference", tmp / "ref.jsonl", "--windows"
    )
    statuses = [o["status"] for o in out if o["type"] == "window_closed" and o["model_id"] == "synthetic"]
    assert "reference" not in statuses and "unscored" not in statuses
    assert any(o["type"] == "retrain_requested" and o["model_id"] == "synthetic" for o in out)


def test_global_config_option_and_batch_size_do_not_change_results(files, capsys):
    tmp, _ = files
    _, a, _ = replay(capsys, tmp / "events.jsonl", "--config", tmp / "driftline.toml")
    code = main(["--config", str(tmp / "driftline.toml"), "replay", str(tmp / "events.jsonl"), "--batch-size", "3"])
    b = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and a == b


def test_jobs_do_not_change_results(files, capsys):
    """Decoding in worker processes (chunks of --batch-size lines) prints the same lines."""
    tmp, _ = files
    one = replay(capsys, tmp / "events.jsonl", "--config", tmp / "driftline.toml", "--windows", "--jobs", 1)
    many = replay(
        capsys, tmp / "events.jsonl", "--config", tmp / "driftline.toml", "--windows", "--jobs", 3, "--batch-size", 500
    )
    assert one[0] == many[0] == 0 and one[1] == many[1] and len(one[1]) > 2
    counts = [[line for line in err.splitlines() if "events/s" not in line] for err in (one[2], many[2])]
    assert counts[0] == counts[1]  # the summary, but for its timing line
    assert ", 2 invalid, " in many[2] and "invalid lines (0-based):" in many[2]


def test_missing_file_is_an_error_with_exit_2(tmp_path, capsys):
    code, out, err = replay(capsys, tmp_path / "nope.jsonl")
    assert code == 2 and out == [] and "cannot read" in err


def test_bad_config_key_is_reported(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text("[policy]\nconsecutive_windowz = 2\n")
    (tmp_path / "e.jsonl").write_bytes(b"")
    code, _, err = replay(capsys, tmp_path / "e.jsonl", "--config", tmp_path / "bad.toml")
    assert code == 2 and "policy.consecutive_windowz" in err


def test_stdin_gives_what_the_file_gives(files, capsys, monkeypatch):
    import io

    tmp, _ = files
    code, from_file, _ = replay(capsys, tmp / "events.jsonl", "--config", tmp / "driftline.toml", "--windows")
    stdin = io.TextIOWrapper(io.BytesIO((tmp / "events.jsonl").read_bytes()))
    monkeypatch.setattr(sys, "stdin", stdin)
    code_stdin, from_stdin, err = replay(capsys, "-", "--config", tmp / "driftline.toml", "--windows")
    assert code == code_stdin == 0
    assert from_stdin == from_file and any(d["type"] == "retrain_requested" for d in from_stdin)
    assert "invalid" in err


def test_replay_starts_without_river_drift_or_scipy() -> None:
    """river.drift imports KSWIN and with it scipy.stats (~1.5 s): replay imports them
    only once a prediction meets its label, so a run without labels never pays for them."""
    import subprocess

    probe = (
        "import sys, driftline.cli, driftline.stream.replay.engine; "
        "print(sorted(m for m in ('river.drift', 'scipy.stats') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

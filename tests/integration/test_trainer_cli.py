"""``driftline models register|list|show|history|promote`` against a real broker and a running trainer."""

from __future__ import annotations

import json

import orjson

from driftline.cli import main

from .trainer_support import labeled_rows, operator_config, trainer_thread


def test_register_then_inspect_with_the_cli(kafka_bootstrap, topic_names, tmp_path, capsys):
    config = tmp_path / "driftline.toml"
    config.write_text(f'[topics]\nprefix = "{topic_names.prefix}"\n' + operator_config(tmp_path), encoding="utf-8")
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(
        b"\n".join(orjson.dumps({"features": r["features"], "label": r["label"]}) for r in labeled_rows("reg", 400))
    )
    cli = ["--config", str(config), "models", "--bootstrap-servers", kafka_bootstrap]
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path):
        assert main([*cli, "register", "reg", "--from-file", str(rows), "--by", "ana", "--wait", "60"]) == 0
        capsys.readouterr()
        # refused before sending (the trainer's own rule on the registry as it is): nothing queued
        for argv in (["promote", "reg", "1.0.0"], ["promote", "nosuch", "9.9.9"], ["approve", "reg", "9.9.9"]):
            assert main([*cli, *argv, "--reason", "try", "--wait", "30"]) == 2, argv
            err = capsys.readouterr().err
            assert err.startswith("not sent: "), err
    capsys.readouterr()
    assert main([*cli, "list", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["model_id"], listed["version"], listed["serving"], listed["status"]) == (
        "reg",
        "1.0.0",
        "*",
        "approved",
    )
    assert main([*cli, "show", "reg"]) == 0
    shown = capsys.readouterr().out
    assert "lineage: 400 rows" in shown and "sha256=" in shown and "partition" in shown
    assert main([*cli, "history", "reg", "--json"]) == 0
    types = [e["type"] for e in json.loads(capsys.readouterr().out)]
    assert types == ["model_version_created", "model_version_promoted"]

"""The configuration merge order and its errors, which must name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftline.config import load_settings
from driftline.errors import ConfigError


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.ingest.batch_max_events == 1000
    assert settings.topics.event_partitions == 6


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "driftline.toml"
    path.write_text("[ingest]\nbatch_max_events = 50\nbatch_max_ms = 20\n[topics]\nprefix = 'x.'\n")
    env = {"DRIFTLINE_INGEST_BATCH_MAX_MS": "30"}
    settings = load_settings(path, env=env, overrides={"ingest": {"batch_max_events": 7}})
    assert settings.ingest.batch_max_events == 7
    assert settings.ingest.batch_max_ms == 30
    assert settings.topics.prefix == "x."


@pytest.mark.parametrize(
    ("toml", "env", "key"),
    [
        ("[ingest]\nbatch_max_event = 5\n", {}, "ingest.batch_max_event"),
        ("[ingestt]\n", {}, "ingestt"),
        ("[ingest]\nbatch_max_events = 'many'\n", {}, "ingest.batch_max_events"),
        ("[ingest]\nbatch_max_events = 0\n", {}, "ingest.batch_max_events"),
        ("", {"DRIFTLINE_INGEST_BATCH_MAX_MS": "soon"}, "ingest.batch_max_ms"),
        ("", {"DRIFTLINE_INGEST_BATCH_MAX_MSS": "1"}, "ingest.batch_max_mss"),  # a typo in a known section
        ("[kafka]\nlocal_port = 70000\n", {}, "kafka.local_port"),
    ],
)
def test_bad_configuration_names_the_key(tmp_path: Path, toml: str, env: dict[str, str], key: str) -> None:
    path = tmp_path / "driftline.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=env)
    assert caught.value.key == key
    assert key in str(caught.value)


def test_driftline_variables_that_are_not_settings_are_left_alone(tmp_path: Path) -> None:
    # the README recommends DRIFTLINE_MALLOC_TUNING=off; it and other tools' DRIFTLINE_* names are not config
    env = {
        "DRIFTLINE_MALLOC_TUNING": "off",
        "DRIFTLINE_NOSUCH_KEY": "1",
        "DRIFTLINE_": "x",
        "DRIFTLINE_TOPICS_PREFIX": "p.",
    }
    assert load_settings(None, env=env).topics.prefix == "p."


def test_a_topic_prefix_also_separates_groups_and_transactional_ids(tmp_path: Path) -> None:
    path = tmp_path / "driftline.toml"
    path.write_text("[topics]\nprefix = 'blue.'\n[trainer]\ngroup_id = 'mine'\n")
    s = load_settings(path, env={})
    assert (s.ingest.group_id, s.ingest.transactional_id) == ("blue.driftline-ingest", "blue.driftline-ingest-0")
    assert (s.stream.app_id, s.trainer.transactional_id) == ("blue.driftline-stream", "blue.driftline-trainer-0")
    assert s.trainer.group_id == "mine"  # set explicitly: kept
    plain = load_settings(None, env={})
    assert (plain.ingest.group_id, plain.stream.app_id) == ("driftline-ingest", "driftline-stream")


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml", env={})


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "driftline.toml"
    path.write_text("[ingest\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path, env={})


def test_readme_configuration_block_is_complete_and_loads(tmp_path: Path) -> None:
    """The README documents every key with its default; keep it in sync with the code."""
    import dataclasses
    import re
    import tomllib

    from driftline.config import SECTIONS

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert block is not None
    documented = tomllib.loads(block.group(1))
    assert set(documented) == set(SECTIONS)
    for name, cls in SECTIONS.items():
        assert set(documented[name]) == {f.name for f in dataclasses.fields(cls)}, name
    path = tmp_path / "driftline.toml"
    path.write_text(block.group(1))
    loaded = load_settings(path, env={})
    for name, cls in SECTIONS.items():
        assert getattr(loaded, name) == cls(), f"README default differs from the code in [{name}]"


def test_empty_ingest_transactional_id_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"DRIFTLINE_INGEST_TRANSACTIONAL_ID": ""})
    assert caught.value.key == "ingest.transactional_id"

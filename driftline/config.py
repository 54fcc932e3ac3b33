"""One configuration object, merged in a stated order.

Order: dataclass defaults → ``driftline.toml`` (the ``--config`` path, else
``./driftline.toml`` if present) → ``DRIFTLINE_<SECTION>_<KEY>`` environment variables →
explicit overrides. Every key is optional. An unknown section or key, or a value of the
wrong type or out of range, raises ``ConfigError`` naming the key, so a process stops at
start instead of running with a typo.

Sections are frozen dataclasses registered in ``SECTIONS``; the pure core keeps its own
settings dataclasses (``stream``) and this module only maps TOML onto them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from driftline.consumers.ingest.settings import IngestSettings
from driftline.consumers.training.config import (
    GovernanceSettings,
    OperatorSettings,
    SubscriberSettings,
    TrainerSettings,
)
from driftline.errors import ConfigError
from driftline.kafka import security as kafka_security
from driftline.stream.drift.monitor_config import PolicySettings, QualitySettings, ReferenceSettings, WindowSettings
from driftline.stream.stream_settings import StreamSettings

__all__ = [
    "SECTIONS",
    "IngestSettings",
    "KafkaSettings",
    "MetricsSettings",
    "Settings",
    "TopicSettings",
    "load_settings",
    "settings_from_mapping",
]

ENV_PREFIX = "DRIFTLINE_"
DEFAULT_FILE = "driftline.toml"


@dataclasses.dataclass(frozen=True)
class KafkaSettings:
    """Where the broker is and how every client authenticates to it.

    Empty ``bootstrap_servers``: $KAFKA_BOOTSTRAP_SERVERS, else the local broker. The
    security keys are mapped to clients by ``driftline.kafka.security``; ``sasl_password``
    and ``ssl_key_password`` take a value, ``env:NAME`` or ``file:PATH``, and are masked in
    ``repr`` and ``as_dict``. ``librdkafka`` is a table of raw librdkafka properties applied
    on top (``[kafka.librdkafka]``, or JSON in $DRIFTLINE_KAFKA_LIBRDKAFKA).
    """

    bootstrap_servers: str = ""
    local_dir: str = ".driftline/kafka"
    local_port: int = 9092
    cache_dir: str = ""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_ca_file: str = ""
    ssl_cert_file: str = ""
    ssl_key_file: str = ""
    ssl_key_password: str = ""
    ssl_endpoint_identification: bool = True
    librdkafka: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(1 <= self.local_port <= 65535, "kafka.local_port", "must be a TCP port 1-65535")
        kafka_security.validate(self)

    def as_dict(self) -> dict[str, Any]:
        """Every field, secrets masked (``***``): what a log line may show."""
        return kafka_security.masked(dataclasses.asdict(self))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"KafkaSettings({fields})"


@dataclasses.dataclass(frozen=True)
class TopicSettings:
    """Topic names (an optional prefix) and partition counts."""

    prefix: str = ""
    event_partitions: int = 6
    replication_factor: int = 1

    def __post_init__(self) -> None:
        _check(self.event_partitions >= 1, "topics.event_partitions", "must be >= 1")
        _check(self.replication_factor >= 1, "topics.replication_factor", "must be >= 1")


@dataclasses.dataclass(frozen=True)
class MetricsSettings:
    """Where every process serves Prometheus metrics (its own port is in its section)."""

    addr: str = "127.0.0.1"


SECTIONS: dict[str, type] = {
    "metrics": MetricsSettings,
    "kafka": KafkaSettings,
    "topics": TopicSettings,
    "ingest": IngestSettings,
    "windows": WindowSettings,
    "policy": PolicySettings,
    "reference": ReferenceSettings,
    "quality": QualitySettings,
    "stream": StreamSettings,
    "trainer": TrainerSettings,
    "governance": GovernanceSettings,
    "subscriber": SubscriberSettings,
    "operator": OperatorSettings,
}


class Settings:
    """All sections; attribute access by section name (``settings.ingest.batch_max_ms``)."""

    def __init__(self, sections: Mapping[str, Any]) -> None:
        self._sections = dict(sections)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._sections[name]
        except KeyError:
            raise AttributeError(name) from None

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Plain dict of every section (for logging the effective config); secrets masked."""
        return {
            name: value.as_dict() if hasattr(value, "as_dict") else dataclasses.asdict(value)
            for name, value in self._sections.items()
        }


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Merge defaults, the TOML file, the environment and ``overrides``; validate every key."""
    raw: dict[str, dict[str, Any]] = {}
    file = Path(path) if path is not None else Path(DEFAULT_FILE)
    if path is not None and not file.exists():
        raise ConfigError(str(file), "config file not found")
    if file.exists():
        try:
            loaded = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(file), f"not valid TOML: {exc}") from None
        _merge(raw, loaded, origin=str(file))
    _merge(raw, _from_env(os.environ if env is None else env), origin="environment")
    if overrides:
        _merge(raw, {k: dict(v) for k, v in overrides.items()}, origin="overrides")
    return settings_from_mapping(raw)


#: Names that must differ between two deployments sharing a cluster (consumer groups,
#: transactional ids, the faust app id): left at their defaults, they take the topic prefix.
DEPLOYMENT_IDS = (
    ("ingest", "group_id"),
    ("ingest", "transactional_id"),
    ("stream", "app_id"),
    ("trainer", "group_id"),
    ("trainer", "transactional_id"),
)


def settings_from_mapping(raw: Mapping[str, Mapping[str, Any]]) -> Settings:
    """Build validated sections from already-parsed values.

    With a topic prefix, the consumer groups, transactional ids and the stream's app id
    that were not set take it too (``p.driftline-ingest``): a second deployment on the same
    cluster would otherwise join the first one's groups and fence its producers.
    """
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        sections[name] = _build_section(name, cls, raw.get(name, {}))
    prefix = sections["topics"].prefix
    if prefix:
        for name, key in DEPLOYMENT_IDS:
            if key not in raw.get(name, {}):
                section = sections[name]
                sections[name] = dataclasses.replace(section, **{key: f"{prefix}{getattr(section, key)}"})
    return Settings(sections)


def _merge(into: dict[str, dict[str, Any]], layer: Mapping[str, Any], origin: str) -> None:
    for section, values in layer.items():
        if section not in SECTIONS:
            known = ", ".join(sorted(SECTIONS))
            raise ConfigError(section, f"unknown section (from {origin}); known: {known}")
        if not isinstance(values, Mapping):
            raise ConfigError(section, f"must be a table of keys (from {origin})")
        into.setdefault(section, {}).update(values)


#: ``DRIFTLINE_*`` variables that switch process behaviour and are not settings.
PROCESS_SWITCHES = frozenset({"DRIFTLINE_MALLOC_TUNING"})


def _from_env(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``DRIFTLINE_INGEST_BATCH_MAX_MS=50`` → ``{"ingest": {"batch_max_ms": "50"}}``.

    Only variables naming a known section are settings (a wrong key in a known section is
    still an error, reported by the section); any other ``DRIFTLINE_*`` variable is not
    driftline's configuration and is left alone.
    """
    layer: dict[str, dict[str, Any]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        if name in PROCESS_SWITCHES:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in SECTIONS or not key:
            continue  # not a setting (another tool's variable, or one of ours that is not config)
        layer.setdefault(section, {})[key] = _EnvString(value)
    return layer


class _EnvString(str):
    """A value from the environment: coerced to the field's type instead of type-checked."""


def _build_section(name: str, cls: type, values: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        full = f"{name}.{key}"
        if key not in fields:
            raise ConfigError(full, f"unknown key; known keys: {', '.join(sorted(fields))}")
        kwargs[key] = _coerce(full, hints[key], value)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(name, str(exc)) from None


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Check (TOML) or convert (environment) ``value`` to the annotated type."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, _EnvString) and value == ""):
            return None
        return _coerce(key, options[0], value)
    if origin in (tuple, list):
        (item,) = typing.get_args(hint)[:1]
        items = value.split(",") if isinstance(value, _EnvString) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(key, f"must be a list, got {type(value).__name__}")
        return tuple(_coerce(key, item, _EnvString(i.strip()) if isinstance(value, _EnvString) else i) for i in items)
    if origin is dict or hint is dict:
        if isinstance(value, _EnvString) and key in _JSON_FROM_ENV:
            value = _json_table(key, str(value))
        if not isinstance(value, Mapping):
            raise ConfigError(key, "must be a table")
        return dict(value)
    if isinstance(value, _EnvString):
        return _from_text(key, hint, str(value))
    if hint is float and type(value) is int:
        return float(value)
    if hint is Any or (isinstance(hint, type) and type(value) is hint):
        return value
    shown = kafka_security.MASK if key in _SECRET_KEYS else repr(value)
    raise ConfigError(key, f"must be {getattr(hint, '__name__', hint)}, got {type(value).__name__} {shown}")


#: Keys whose values never appear in an error message.
_SECRET_KEYS = frozenset(f"kafka.{name}" for name in kafka_security.SECRET_FIELDS)
#: Tables that an environment variable sets as a JSON object (their keys contain dots).
_JSON_FROM_ENV = frozenset({"kafka.librdkafka"})


def _json_table(key: str, text: str) -> Any:
    try:
        table = json.loads(text)
    except ValueError:
        table = None
    if not isinstance(table, dict):
        raise ConfigError(key, 'from the environment, must be a JSON object such as {"client.rack": "r1"}')
    return table


def _from_text(key: str, hint: Any, text: str) -> Any:
    try:
        if hint is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint in (int, float):
            return hint(text)
        return text
    except ValueError:
        raise ConfigError(key, f"must be {hint.__name__}, got {text!r}") from None


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)

"""Typed raw events, and the error value that replaces an event that broke the contract.

The contract itself is the JSON Schema files next to this module (see README.md); these
classes are what the codec hands to the rest of driftline, so no dicts with ad-hoc keys
travel between modules. `InvalidEvent` is an error *as a value* (bytewax style): ingest
routes it to the dead-letter topic with the original message instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias

__all__ = [
    "Event",
    "EventKind",
    "FeatureEvent",
    "FeatureValue",
    "InvalidEvent",
    "LabelEvent",
    "Outcome",
    "PredictionEvent",
]

EventKind: TypeAlias = Literal["feature", "prediction", "label"]
FeatureValue: TypeAlias = float | int | str | bool | None
"""A feature's value; None means missing."""
Outcome: TypeAlias = float | int | str | bool
"""A prediction or a label: never null."""


@dataclass(frozen=True, slots=True)
class FeatureEvent:
    """The inputs a model saw for one request (topic `driftline.features`)."""

    kind: ClassVar[EventKind] = "feature"
    model_id: str
    event_id: str
    ts: float
    features: dict[str, FeatureValue]


@dataclass(frozen=True, slots=True)
class PredictionEvent:
    """What a model answered; `features` may ride along when the app has no feature topic."""

    kind: ClassVar[EventKind] = "prediction"
    model_id: str
    event_id: str
    ts: float
    model_version: str
    prediction: Outcome
    score: float | None = None
    scores: dict[str, float] | None = None
    features: dict[str, FeatureValue] | None = None


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """The ground truth for an earlier event with the same `event_id`."""

    kind: ClassVar[EventKind] = "label"
    model_id: str
    event_id: str
    ts: float
    label: Outcome


Event: TypeAlias = FeatureEvent | PredictionEvent | LabelEvent


@dataclass(frozen=True, slots=True)
class InvalidEvent:
    """Why a message was rejected, naming the field and the schema rule it broke.

    `field` is a dotted path (`features.age`, `scores.cat`); `$` is the whole message
    (transport rules) and `$key` the Kafka message key.

    Examples:
        >>> print(InvalidEvent("features.age", "type",
        ...       "must be a finite number, string, boolean or null (got object)"))
        features.age: must be a finite number, string, boolean or null (got object)
    """

    field: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}"

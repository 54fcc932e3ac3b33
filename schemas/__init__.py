"""driftline's event contracts: JSON Schema files plus the fast codec that agrees with them.

Import from here (`from driftline.schemas import decode_event, FeatureEvent`) or from the
modules; README.md in this folder is the contract.
"""

from .batch import (
    KIND_FEATURE,
    KIND_LABEL,
    KIND_PREDICTION,
    BatchBuilder,
    ObservationBatch,
    batch_from_events,
)
from .batch_wire import decode_batch, decode_batch_document, encode_batch
from .codec import (
    MAX_MESSAGE_BYTES,
    check_key,
    decode_document,
    decode_event,
    encode_event,
    parse_rfc3339,
)
from .events import (
    Event,
    EventKind,
    FeatureEvent,
    FeatureValue,
    InvalidEvent,
    LabelEvent,
    PredictionEvent,
)

__all__ = [
    "KIND_FEATURE",
    "KIND_LABEL",
    "KIND_PREDICTION",
    "MAX_MESSAGE_BYTES",
    "BatchBuilder",
    "Event",
    "EventKind",
    "FeatureEvent",
    "FeatureValue",
    "InvalidEvent",
    "LabelEvent",
    "ObservationBatch",
    "PredictionEvent",
    "batch_from_events",
    "check_key",
    "decode_batch",
    "decode_batch_document",
    "decode_document",
    "decode_event",
    "encode_batch",
    "encode_event",
    "parse_rfc3339",
]

"""Profiles, in one import: the reference (training data) and window profiles.

The implementation is split by concern — ``feature_types`` (what is numeric, what a
category is), ``reference`` (bins and the builder), ``window_profile`` (counting batches
on those bins, exact merge) — and re-exported here so callers need one import path.
"""

from __future__ import annotations

from driftline.stream.drift.feature_types import OTHER, FeatureType, infer_feature_type
from driftline.stream.drift.reference import (
    CategoricalReference,
    FeatureReference,
    NumericReference,
    ReferenceBuilder,
    ReferenceProfile,
)
from driftline.stream.drift.window_profile import (
    CategoricalWindow,
    ExactSum,
    NumericWindow,
    WindowProfile,
)

__all__ = [
    "OTHER",
    "CategoricalReference",
    "CategoricalWindow",
    "ExactSum",
    "FeatureReference",
    "FeatureType",
    "NumericReference",
    "NumericWindow",
    "ReferenceBuilder",
    "ReferenceProfile",
    "WindowProfile",
    "infer_feature_type",
]

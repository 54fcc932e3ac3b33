"""Real observation batches made of feature columns alone, for profile and score tests."""

from __future__ import annotations

import numpy as np

from driftline.schemas.batch import ObservationBatch
from driftline.schemas.events import FeatureValue


def batch_of_columns(cols: dict[str, list[FeatureValue]], has_features: np.ndarray | None = None) -> ObservationBatch:
    """Feature rows given as columns (any JSON scalars, even non-finite floats); every row
    has features unless `has_features` says otherwise."""
    n = len(has_features) if has_features is not None else len(next(iter(cols.values())))
    return ObservationBatch(
        "m",
        np.zeros(n, np.int8),
        [f"e{i}" for i in range(n)],
        np.zeros(n),
        np.ones(n, bool) if has_features is None else has_features,
        cols,
        [None] * n,
        [None] * n,
        np.full(n, np.nan),
        [None] * n,
        [None] * n,
    )

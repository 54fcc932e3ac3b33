"""Feature types and the column primitives every profile shares.

A profile must put a value in the same bin whichever shard, batch or process sees it, so
the two decisions that could differ — "is this value numeric?" and "which category is
it?" — live here, once.

- **Numeric** = a finite int or float that is *not* a bool (JSON `true` is a category, not
  1.0). Non-finite floats are invalid: they cannot be binned or summed meaningfully.
- **Category key** = a string: strings stay as they are (readable on dashboards);
  booleans become ``"true"``/``"false"``; numbers become their shortest decimal text with
  integral floats written as integers (``1`` and ``1.0`` are one category, as they are
  one dict key in Python). So the string ``"true"`` and the boolean ``true`` share a
  category; that is the documented price of JSON-able string keys.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

__all__ = [
    "OTHER",
    "FeatureType",
    "category_key",
    "count_categories",
    "infer_feature_type",
    "is_numeric_value",
]

OTHER = "__other__"
"""Name of the bucket that collects categories outside the reference's top-K."""


class FeatureType(str, enum.Enum):
    """How a feature is profiled: quantile bins (numeric) or top-K categories."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


def is_numeric_value(v: Any) -> bool:
    """True for finite ints/floats that are not bools."""
    t = type(v)
    if t is float:
        return math.isfinite(v)
    return t is int or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)))


def infer_feature_type(values: Iterable[Any]) -> FeatureType:
    """Numeric if every non-null value is numeric (bools are not); else categorical.

    A feature with no non-null value is categorical: that type accepts anything a later
    window brings without counting type errors.

    Examples:
        >>> infer_feature_type([1, 2.5, None]).value
        'numeric'
        >>> infer_feature_type([1, True]).value
        'categorical'
    """
    seen = False
    for v in values:
        if v is None:
            continue
        seen = True
        if not is_numeric_value(v):
            return FeatureType.CATEGORICAL
    return FeatureType.NUMERIC if seen else FeatureType.CATEGORICAL


def category_key(v: Any) -> str:
    """The string a categorical value is counted under (see module docstring).

    Examples:
        >>> [category_key(v) for v in ("pro", True, 3, 3.0, 0.5)]
        ['pro', 'true', '3', '3', '0.5']
    """
    if type(v) is str:
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isfinite(v) and v.is_integer():
            return str(int(v))
        return repr(v)
    return str(v)


def _may_collide(k: Any) -> bool:
    # Counter keys True/1/1.0 (and False/0/0.0) hash equal: a bool and a number would be
    # merged under whichever came first, and the result would depend on order.
    return type(k) is not str and k is not None and k in (0, 1)


def count_categories(values: Iterable[Any]) -> tuple[dict[str, int], int]:
    """Count non-null values by category key; return (counts, n_missing).

    Cost: one C-level ``Counter`` pass over the column, then Python work per *distinct*
    value only. If bools and 0/1 numbers could have been merged by hashing, the column is
    recounted with the type in the key so the result never depends on arrival order.
    """
    values = values if isinstance(values, list) else list(values)
    raw = Counter(values)
    if any(_may_collide(k) for k in raw):
        raw = Counter(zip(map(type, values), values))
        items = ((v, c) for (_t, v), c in raw.items())
    else:
        items = ((v, c) for v, c in raw.items())
    counts: dict[str, int] = {}
    missing = 0
    for v, c in items:
        if v is None:
            missing += c
            continue
        key = category_key(v)
        counts[key] = counts.get(key, 0) + c
    return counts, missing

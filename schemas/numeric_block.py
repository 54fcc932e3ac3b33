"""Numeric feature columns of an observation batch as one binary float64 block.

A stream worker spends most of a JSON batch's decode on its numbers: orjson parses
every float into an object, the decoder checks each one's type, and the window
profiles convert the lists back to float64 arrays. Version 2 of the batch carries the
purely numeric feature columns as one base64 block of little-endian float64 (names ×
rows, NaN = null/missing) instead, which decodes with one `np.frombuffer`. Integers
travel as floats: the drift core treats 1 and 1.0 alike (see `stream.feature_types`).
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any

import numpy as np

from .events import FeatureValue, InvalidEvent

__all__ = ["decode_block", "encode_block", "lists_from_block", "split_numeric"]

_NUMERIC = frozenset({float, int, type(None)})
_FIELDS = frozenset({"names", "data"})
_LITTLE_F8 = np.dtype("<f8")


def split_numeric(features: dict[str, list[FeatureValue]]) -> tuple[list[str], dict[str, list[FeatureValue]]]:
    """The names of the purely numeric columns (ints, floats, nulls) and the other columns."""
    names: list[str] = []
    rest: dict[str, list[FeatureValue]] = {}
    for name, column in features.items():
        if set(map(type, column)) <= _NUMERIC:
            names.append(name)
        else:
            rest[name] = column
    return names, rest


def encode_block(names: list[str], matrix: np.ndarray) -> dict[str, Any]:
    """The ``numeric`` field: names and base64 of the (names × rows) float64 matrix."""
    data = np.ascontiguousarray(matrix, dtype=_LITTLE_F8).tobytes()
    return {"names": names, "data": binascii.b2a_base64(data, newline=False).decode("ascii")}


def decode_block(value: object, n: int, other: dict[str, Any]) -> tuple[list[str], np.ndarray] | InvalidEvent:
    """Check a ``numeric`` field (untrusted) and return its names and read-only matrix.

    Names are distinct strings not also in `other` (the batch's list columns); the data
    is strict base64 of exactly names × n float64 values, none infinite (NaN = null).
    """
    if type(value) is not dict or value.keys() != _FIELDS:
        return InvalidEvent("numeric", "type", 'must be an object with "names" and "data"')
    names, data = value["names"], value["data"]
    if type(names) is not list or set(map(type, names)) - {str}:
        return InvalidEvent("numeric.names", "type", "must be an array of strings")
    if len(set(names)) != len(names):
        return InvalidEvent("numeric.names", "uniqueItems", "must not repeat a name")
    clash = next((name for name in names if name in other), None)
    if clash is not None:
        return InvalidEvent("numeric.names", "duplicate", f"{clash[:80]!r} is also a column of features")
    if type(data) is not str:
        return InvalidEvent("numeric.data", "type", "must be a base64 string")
    try:
        raw = binascii.a2b_base64(data.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        return InvalidEvent("numeric.data", "base64", f"is not strict base64 ({exc})")
    if len(raw) != 8 * len(names) * n:
        return InvalidEvent(
            "numeric.data",
            "length",
            f"must hold {len(names)} x n={n} float64 values ({8 * len(names) * n} bytes, got {len(raw)})",
        )
    matrix = np.frombuffer(raw, dtype=_LITTLE_F8).reshape(len(names), n)
    if np.isinf(matrix).any():
        f, row = (int(i[0]) for i in np.nonzero(np.isinf(matrix)))
        return InvalidEvent("numeric.data", "finite", f"{names[f][:80]!r} row {row} is infinite (NaN stands for null)")
    return names, matrix


def lists_from_block(names: list[str], matrix: np.ndarray) -> Callable[[], dict[str, list[FeatureValue]]]:
    """A builder of the block's columns as lists (None for NaN), for `features_later`."""

    def build() -> dict[str, list[FeatureValue]]:
        out: dict[str, list[FeatureValue]] = {}
        for name, row in zip(names, matrix):
            values = row.tolist()
            if np.isnan(row).any():
                values = [None if v != v else v for v in values]
            out[name] = values
        return out

    return build

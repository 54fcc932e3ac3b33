"""Signed pointer moves for tests and benchmarks that feed model-updates readers directly."""

from __future__ import annotations

from typing import Any

from driftline.trust.keys import Ed25519PrivateKey
from driftline.trust.pointer_moves import sign_pointer

__all__ = ["signed_move"]


def signed_move(
    key: Ed25519PrivateKey, model_id: str, version: str, sequence: int = 1, **fields: Any
) -> dict[str, Any]:
    """A ``model_version_promoted`` move of ``model_id`` to ``version``, signed by ``key``."""
    move: dict[str, Any] = {
        "type": "model_version_promoted",
        "model_id": model_id,
        "version": version,
        "sequence": sequence,
        "status": "approved",
        "reference_profile": None,
        **fields,
    }
    return sign_pointer(move, key)

"""Raw events as serving apps send them, for tests and benchmarks."""

from __future__ import annotations

import orjson

__all__ = ["feature_event"]


def feature_event(model_id: str, i: int, n_features: int = 20) -> bytes:
    features = {f"f{j}": (i * 7 + j) % 97 / 10.0 for j in range(n_features)}
    return orjson.dumps(
        {"model_id": model_id, "event_id": f"{model_id}-{i}", "ts": 1_767_225_600 + i / 100, "features": features}
    )

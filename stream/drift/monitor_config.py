"""Settings of one model's monitor: the ``[windows]``, ``[policy]`` and ``[reference]`` sections.

Kept apart from ``stream.monitor`` so ``driftline.config`` can register the sections
without importing the monitor's dependencies (River, the profiles).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from driftline.errors import ConfigError
from driftline.stream.drift.policy import PolicySettings
from driftline.stream.drift.served_quality import QualitySettings
from driftline.stream.drift.windows import WindowSettings

__all__ = ["MonitorConfig", "PolicySettings", "QualitySettings", "ReferenceSettings", "WindowSettings"]


@dataclasses.dataclass(frozen=True)
class ReferenceSettings:
    """``[reference]``: how a reference profile is built when the monitor makes its own.

    ``windows``: how many full windows become the reference when none is given;
    ``types``: declared feature types (``{"zip": "categorical"}``), else inferred.
    """

    windows: int = 1
    numeric_bins: int = 10
    top_k: int = 50
    max_rows: int = 100_000
    types: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.windows < 1:
            raise ConfigError("reference.windows", "must be >= 1")
        if self.numeric_bins < 2:
            raise ConfigError("reference.numeric_bins", "must be >= 2")
        if self.top_k < 1:
            raise ConfigError("reference.top_k", "must be >= 1")
        if self.max_rows < 1:
            raise ConfigError("reference.max_rows", "must be >= 1")
        for name, kind in self.types.items():
            if kind not in ("numeric", "categorical"):
                raise ConfigError(f"reference.types.{name}", "must be 'numeric' or 'categorical'")


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
    """Everything a model's state needs: the ``[windows]``, ``[policy]``, ``[reference]`` and
    ``[quality]`` (the stream's post-deployment check) sections."""

    windows: WindowSettings = dataclasses.field(default_factory=WindowSettings)
    policy: PolicySettings = dataclasses.field(default_factory=PolicySettings)
    reference: ReferenceSettings = dataclasses.field(default_factory=ReferenceSettings)
    quality: QualitySettings = dataclasses.field(default_factory=QualitySettings)

    @classmethod
    def from_settings(cls, settings: Any) -> MonitorConfig:
        """From ``driftline.config.load_settings(...)``."""
        return cls(settings.windows, settings.policy, settings.reference, settings.quality)

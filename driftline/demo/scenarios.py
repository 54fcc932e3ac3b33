"""Seeded concept scenarios for one binary model, and the oracle that knows each concept.

Why: closed-loop serving (``driftline.demo.closed_loop``) needs traffic whose *concept*
— the rule from features to label — changes at known events, so the accuracy of the
model actually served can be measured against what was achievable. Everything here is
pure (numpy only, no broker): a scenario draws event ``i`` from the concept(s) in force
at ``i``; the oracle is a linear model fitted on fresh samples of each concept.

Features: ``x0`` … ``x7`` ~ N(0, 1) (a concept may move their means) and a categorical
``plan`` the label ignores. A concept's label is ``w · x + b > 0``, flipped with
probability ``label_noise`` (0.4 %), so a model fitted on the concept gets ~0.99-0.996.

Scenarios (``make_scenario(name, n_events)``; the change at ``change_at``, by default
20 % of the events):

- ``concept_change``: ``x0 + x1 > 0`` becomes ``x0 - x1 > 0``; features stationary.
- ``feature_shift``: ``x0``'s mean moves by +1.5 sd and the rule becomes
  ``(x0 - 1.5) - x1 > 0`` (balanced again around the new mean).
- ``gradual``: from ``change_at`` the new concept's share of events rises linearly over
  ``ramp`` events (20,000, fewer when the run is too short for it); the change reported
  is the ramp's midpoint, where the new concept becomes the majority (the concept in
  force, which the oracle follows).
- ``recurring``: A → B at 20 %, B → A at 60 %.
- ``stationary``: A throughout.

Examples:
    >>> s = make_scenario("concept_change", 1000, change_at=400)
    >>> s.changes, s.concept_at(399).name, s.concept_at(400).name
    ((400,), 'A', 'B')
    >>> features, label = s.sample(0, np.random.default_rng(0))
    >>> sorted(features)[:2], label in (0, 1)
    (['plan', 'x0'], True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "SCENARIOS",
    "Concept",
    "Oracle",
    "Phase",
    "Scenario",
    "make_scenario",
    "training_rows",
]

N_FEATURES = 8
FEATURES = tuple(f"x{j}" for j in range(N_FEATURES))
PLANS = ("basic", "pro", "team")
LABEL_NOISE = 0.004
GRADUAL_RAMP = 20_000


def _vector(**entries: float) -> tuple[float, ...]:
    return tuple(float(entries.get(name, 0.0)) for name in FEATURES)


@dataclass(frozen=True)
class Concept:
    """One world: feature means and the label rule ``weights · x + bias > 0``."""

    name: str
    weights: tuple[float, ...]
    bias: float = 0.0
    means: tuple[float, ...] = _vector()

    def draw(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        """Feature vector(s) of this concept: shape (8,) or (n, 8)."""
        size = N_FEATURES if n is None else (n, N_FEATURES)
        return rng.normal(size=size) + np.asarray(self.means)

    def truth(self, x: np.ndarray) -> np.ndarray | bool:
        """The noise-free label of ``x`` (a vector or rows)."""
        return x @ np.asarray(self.weights) + self.bias > 0


CONCEPT_A = Concept("A", _vector(x0=1.0, x1=1.0))
CONCEPT_B = Concept("B", _vector(x0=1.0, x1=-1.0))
CONCEPT_B_SHIFTED = Concept("B-shifted", _vector(x0=1.0, x1=-1.0), bias=-1.5, means=_vector(x0=1.5))


@dataclass(frozen=True)
class Phase:
    """From event ``start`` on, ``concept`` takes over, its share rising linearly over ``ramp`` events."""

    start: int
    concept: Concept
    ramp: int = 0


@dataclass(frozen=True)
class Scenario:
    """A seeded stream of (features, label) whose concept changes at known events."""

    name: str
    n_events: int
    phases: tuple[Phase, ...]
    changes: tuple[int, ...] = ()
    label_noise: float = LABEL_NOISE
    concepts: tuple[Concept, ...] = field(init=False)

    def __post_init__(self) -> None:
        seen: dict[str, Concept] = {}
        for phase in self.phases:
            seen.setdefault(phase.concept.name, phase.concept)
        object.__setattr__(self, "concepts", tuple(seen.values()))

    def mixture(self, i: int) -> tuple[Concept, Concept, float]:
        """(previous concept, current phase's concept, the current one's share) at event ``i``."""
        previous, current = self.phases[0], self.phases[0]
        for phase in self.phases[1:]:
            if phase.start > i:
                break
            previous, current = current, phase
        if current is previous or current.ramp <= 0:
            return current.concept, current.concept, 1.0
        share = min(1.0, (i - current.start + 1) / current.ramp)
        return previous.concept, current.concept, share

    def concept_at(self, i: int) -> Concept:
        """The concept in force at ``i``: for a mixture, the one most events come from."""
        old, new, share = self.mixture(i)
        return new if share >= 0.5 else old

    def sample(self, i: int, rng: np.random.Generator) -> tuple[dict[str, Any], int]:
        """Event ``i``'s features (as a serving app would send them) and its true label."""
        old, new, share = self.mixture(i)
        concept = new if share >= 1.0 or rng.random() < share else old
        x = concept.draw(rng)
        label = bool(concept.truth(x)) ^ bool(rng.random() < self.label_noise)
        return _features(x, PLANS[int(rng.integers(len(PLANS)))]), int(label)


def _features(x: np.ndarray, plan: str) -> dict[str, Any]:
    features: dict[str, Any] = {name: round(float(v), 4) for name, v in zip(FEATURES, x)}
    features["plan"] = plan
    return features


def make_scenario(name: str, n_events: int, change_at: int | None = None, ramp: int = GRADUAL_RAMP) -> Scenario:
    """One of ``SCENARIOS`` over ``n_events``; the (first) change at ``change_at`` (default 20 %)."""
    change = int(n_events * 0.2) if change_at is None else int(change_at)
    if name == "stationary":
        return Scenario(name, n_events, (Phase(0, CONCEPT_A),))
    if name == "concept_change":
        return Scenario(name, n_events, (Phase(0, CONCEPT_A), Phase(change, CONCEPT_B)), (change,))
    if name == "feature_shift":
        return Scenario(name, n_events, (Phase(0, CONCEPT_A), Phase(change, CONCEPT_B_SHIFTED)), (change,))
    if name == "gradual":
        length = max(1, min(ramp, (n_events - change) // 2))
        return Scenario(
            name, n_events, (Phase(0, CONCEPT_A), Phase(change, CONCEPT_B, length)), (change + length // 2,)
        )
    if name == "recurring":
        back = change + (n_events - change) // 2
        return Scenario(
            name, n_events, (Phase(0, CONCEPT_A), Phase(change, CONCEPT_B), Phase(back, CONCEPT_A)), (change, back)
        )
    raise ValueError(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")


SCENARIOS = ("concept_change", "feature_shift", "gradual", "recurring", "stationary")


def training_rows(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """``n`` labeled rows of concept A (``{"features", "label"}``): what version 1.0.0 is trained on."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        x = CONCEPT_A.draw(rng)
        label = bool(CONCEPT_A.truth(x)) ^ bool(rng.random() < LABEL_NOISE)
        rows.append({"features": _features(x, PLANS[int(rng.integers(len(PLANS)))]), "label": int(label)})
    return rows


class Oracle:
    """Per concept, a least-squares linear classifier fitted on fresh samples of it: the
    reference accuracy a served model could reach at each event."""

    def __init__(self, scenario: Scenario, n_fit: int = 20_000, seed: int = 99) -> None:
        self.scenario = scenario
        rng = np.random.default_rng(seed)
        self.models: dict[str, np.ndarray] = {
            c.name: _fit(c, n_fit, scenario.label_noise, rng) for c in scenario.concepts
        }

    def predict(self, i: int, features: Mapping[str, Any]) -> int:
        """The oracle's label for event ``i`` (the concept in force there)."""
        coef = self.models[self.scenario.concept_at(i).name]
        x = np.fromiter((float(features[name]) for name in FEATURES), float, N_FEATURES)
        return int(x @ coef[:-1] + coef[-1] > 0)

    def accuracy(self, concept: Concept, n: int = 20_000, seed: int = 5) -> float:
        """Held-out accuracy of the oracle's model of ``concept`` on its own (noisy) labels."""
        rng = np.random.default_rng(seed)
        x = concept.draw(rng, n)
        y = concept.truth(x) ^ (rng.random(n) < self.scenario.label_noise)
        coef = self.models[concept.name]
        return float(np.mean((x @ coef[:-1] + coef[-1] > 0) == y))


def _fit(concept: Concept, n: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    x = concept.draw(rng, n)
    y = concept.truth(x) ^ (rng.random(n) < noise)
    design = np.hstack([x, np.ones((n, 1))])
    coef, *_ = np.linalg.lstsq(design, np.where(y, 1.0, -1.0), rcond=None)
    return coef

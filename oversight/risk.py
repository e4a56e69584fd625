"""Risk score of a regulated entity from its clue history (issue 17, the plan's task 11).

One term per clue, so that the score explains itself: the terms are added up and the
largest ones are the "contributions" an operator reads next to the score.

    points(c) = review(c) x [ (weight(kind) + gap_per_day x gap_days(c)) x 0.5^(age(c) / half_life)
                              + open_weight x open(c) ]
    score     = sum of points(c) over the entity's clues

- ``weight(kind)``: ``KIND_WEIGHTS`` (tampering and falsified data weigh most, bare motion
  least), overridden per kind by ``Settings.risk_kind_weights``; kinds not listed weigh
  ``weight("*")``.
- ``review(c)``: how the inspector's report ruled the clue's task: none yet 1,
  ``confirmed`` ``confirmed_factor`` (2), ``not_found`` ``not_found_factor`` (0.5),
  ``false_positive`` 0 (a false alarm says nothing about the entity).
- ``age(c)``: days from the clue's latest observation (``time``) to the moment of the
  computation, never negative; ``half_life`` days halve a clue's weight.
- ``gap_days(c)``: for monitoring-gap kinds (``offline``, ``signal_loss``,
  ``meter_offline``), how long the
  monitoring was out: ``end - start`` (an open gap: ``now - start``), at most
  ``gap_max_days``; 0 for other kinds.
- ``open(c)``: 1 while the clue is not ``closed`` (the episode still goes on), else 0; an
  open clue's extra weight does not decay (it is current by definition).

Levels: ``high`` from ``high_at`` points, ``medium`` from ``medium_at``, else ``low``.
The score is monotone as documented: another clue never lowers it, confirming a clue raises
it, a false positive drops that clue's term to 0, and time only lowers it.
Clues whose decayed term is below ``1/1000`` of their weight (older than about ten half
lives) and that are closed are not even read (``horizon_days``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from contract.settings import Settings

Level = Literal["low", "medium", "high"]
LEVELS: tuple[Level, ...] = ("low", "medium", "high")
RESULTS = ("confirmed", "false_positive", "not_found")

# Defaults by what a clue says about the entity: falsified data and tampering with a camera
# mean someone meant to hide something (3); exceedances and land changes are violations
# (2); gaps, near-limit values, people where none should be are signs (1); motion is only a
# hint (0.2). Settings.risk_kind_weights overrides single kinds.
KIND_WEIGHTS: dict[str, float] = {
    "impossible": 3.0, "replay": 3.0, "flag_abuse": 3.0, "inconsistent": 3.0,
    "occlusion": 3.0, "defocus": 3.0, "shift": 3.0,
    "treatment_off": 3.0, "production_in_shutdown": 3.0, "treatment_idle": 2.0,
    "exceedance": 2.0, "vegetation_to_built": 2.0, "vegetation_loss": 2.0,
    "bare_or_built": 2.0, "water_gain": 2.0, "water_loss": 2.0,
    "flatline": 1.0, "near_limit": 1.0, "spike": 1.0, "offline": 1.0, "signal_loss": 1.0,
    "meter_offline": 1.0,
    "unregistered_source": 1.0, "person": 1.0, "loitering": 1.0, "line_crossing": 1.0,
    "motion": 0.2, "*": 1.0,
}
GAP_KINDS = ("offline", "signal_loss")
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class RiskWeights:
    """The formula's parameters (README "Risk per regulated entity"; defaults there)."""

    kind_weights: Mapping[str, float] = field(default_factory=lambda: dict(KIND_WEIGHTS))
    half_life_days: float = 30.0
    confirmed_factor: float = 2.0
    not_found_factor: float = 0.5
    open_weight: float = 1.0
    gap_kinds: frozenset[str] = frozenset(GAP_KINDS)
    gap_per_day: float = 0.5
    gap_max_days: float = 30.0
    medium_at: float = 5.0
    high_at: float = 15.0
    top_n: int = 5

    @classmethod
    def with_overrides(cls, kind_weights: Mapping[str, float] | None = None,
                       **values: Any) -> RiskWeights:
        """The defaults with some kind weights replaced (the others stay)."""
        return cls(kind_weights={**KIND_WEIGHTS, **(kind_weights or {})}, **values)

    @classmethod
    def from_settings(cls, s: Settings) -> RiskWeights:
        return cls.with_overrides(
            s.risk_kind_weights, half_life_days=s.risk_half_life_days,
            confirmed_factor=s.risk_confirmed_factor, not_found_factor=s.risk_not_found_factor,
            open_weight=s.risk_open_weight, gap_kinds=frozenset(s.risk_gap_kinds),
            gap_per_day=s.risk_gap_per_day, gap_max_days=s.risk_gap_max_days,
            medium_at=s.risk_medium_at, high_at=s.risk_high_at, top_n=s.risk_top_n)

    def weight(self, kind: str) -> float:
        return float(self.kind_weights.get(kind, self.kind_weights.get("*", 1.0)))

    def review(self, result: str | None) -> float:
        if result == "confirmed":
            return self.confirmed_factor
        if result == "not_found":
            return self.not_found_factor
        if result == "false_positive":
            return 0.0
        return 1.0

    def level(self, score: float) -> Level:
        return "high" if score >= self.high_at else "medium" if score >= self.medium_at else "low"

    @property
    def horizon_days(self) -> float:
        """Closed clues older than this weigh under 1/1000 of their kind weight: not read."""
        return self.half_life_days * math.log2(1000.0)


@dataclass(frozen=True)
class ClueFact:
    """What the score needs to know of one clue of the entity (and its task's result)."""

    clue_id: str
    kind: str
    modality: str
    subject: str
    state: str
    start: datetime
    time: datetime
    end: datetime | None = None
    result: str | None = None


@dataclass(frozen=True)
class Term:
    """One clue's points and the factors they came from."""

    clue: ClueFact
    weight: float
    review: float
    decay: float
    gap_days: float
    open: bool
    points: float

    def as_dict(self) -> dict[str, Any]:
        c = self.clue
        return {"clue_id": c.clue_id, "kind": c.kind, "modality": c.modality,
                "subject": c.subject, "state": c.state, "time": c.time.isoformat(),
                "result": c.result, "points": round(self.points, 4),
                "weight": self.weight, "review": self.review, "decay": round(self.decay, 4),
                "gap_days": round(self.gap_days, 3), "open": self.open}


@dataclass(frozen=True)
class Risk:
    """An entity's score, its level and every term, largest first."""

    score: float
    level: Level
    terms: tuple[Term, ...]

    def contributions(self, n: int) -> list[dict[str, Any]]:
        return [t.as_dict() for t in self.terms[:n] if t.points > 0]


def _days(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / SECONDS_PER_DAY


def term(clue: ClueFact, now: datetime, weights: RiskWeights) -> Term:
    """The points of one clue at ``now`` (the formula in the module docstring)."""
    is_open = clue.state != "closed"
    decay = 0.5 ** (max(0.0, _days(clue.time, now)) / weights.half_life_days)
    gap = 0.0
    if clue.kind in weights.gap_kinds:
        until = now if is_open else (clue.end or clue.time)
        gap = min(max(0.0, _days(clue.start, until)), weights.gap_max_days)
    weight, review = weights.weight(clue.kind), weights.review(clue.result)
    points = review * ((weight + weights.gap_per_day * gap) * decay
                       + (weights.open_weight if is_open else 0.0))
    return Term(clue, weight, review, decay, gap, is_open, points)


def score(clues: Iterable[ClueFact], now: datetime, weights: RiskWeights) -> Risk:
    """The entity's risk at ``now`` from its clues (each clue once)."""
    terms = sorted((term(c, now, weights) for c in clues),
                   key=lambda t: (-t.points, t.clue.clue_id))
    total = math.fsum(t.points for t in terms)
    return Risk(total, weights.level(total), tuple(terms))

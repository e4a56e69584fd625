"""Random inspection draws ("double random, one public"): which entities, which inspectors.

The rule: inspected entities are drawn at random, inspectors are drawn at random (in pairs),
and the list is published. The odds follow the entity's credit class and risk: every entity
has a yearly inspection rate, ``rate(class) x multiplier(risk level)``, and a draw for a
period gives each entity the inclusion probability ``rate x days / 365`` (capped at 1), so
that over a year an entity is visited ``rate`` times on average whatever the period length.
With a requested count the probabilities are scaled to sum to the count instead (entities
that would exceed 1 are taken for sure and the rest rescaled), which keeps the ratios
between classes.

Sampling is randomized systematic sampling with unequal probabilities (Madow's method on a
random permutation): it draws without replacement with exactly these inclusion
probabilities, which simple successive weighted picks (``Generator.choice`` with ``p``) do
not. A share of the high-risk entities (highest scores first) is always included. Entities
at the yearly cap are not drawn.

Everything comes from one ``numpy.random.Generator`` seeded with the recorded seed, used in
a fixed order over inputs sorted by id, so a draw is reproduced from its seed and inputs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import numpy as np

ALGORITHM = "systematic-pps-v1"
CLASSES = ("A", "B", "C", "D")
LEVELS = ("low", "medium", "high")


class DrawError(ValueError):
    """The draw cannot be made as asked (no pair of inspectors, bad period)."""


@dataclass(frozen=True)
class Candidate:
    """An entity that may be drawn; ``drawn_this_year`` counts its draws in the period's
    year (all departments), for the yearly cap."""

    entity: str
    credit_class: str | None
    level: str = "low"
    score: float = 0.0
    drawn_this_year: int = 0


@dataclass(frozen=True)
class DrawParams:
    """Yearly rates per credit class (unrated entities count as B), risk multipliers, the
    yearly cap per entity and the share of high-risk entities always included."""

    rates: dict[str, float]
    risk_multiplier: dict[str, float]
    yearly_cap: int
    high_risk_share: float

    def rate(self, c: Candidate) -> float:
        base = self.rates.get(c.credit_class or "B", self.rates["B"])
        return base * self.risk_multiplier.get(c.level, 1.0)


@dataclass(frozen=True)
class DrawnItem:
    entity: str
    inspectors: tuple[str, str]
    planned_date: date
    reason: str  # 'random' | 'high_risk'


@dataclass
class Draw:
    items: list[DrawnItem]
    expected_count: float
    probabilities: dict[str, float] = field(default_factory=dict)

    def as_rows(self) -> list[dict]:
        return [{**asdict(i), "inspectors": list(i.inspectors),
                 "planned_date": i.planned_date.isoformat()} for i in self.items]


def period_fraction(start: date, end: date) -> float:
    """The period [start, end] (both days included) as a fraction of a year."""
    return ((end - start).days + 1) / 365.0


def capped_probabilities(weights: np.ndarray, total: float) -> np.ndarray:
    """Inclusion probabilities proportional to ``weights`` summing to ``total``, none above 1
    (those are set to 1 and the rest rescaled, repeatedly)."""
    pi = np.zeros_like(weights, dtype=float)
    free = weights > 0
    remaining = float(total)
    while free.any() and remaining > 0:
        share = remaining * weights[free] / weights[free].sum()
        over = share >= 1.0
        if not over.any():
            pi[free] = share
            break
        idx = np.flatnonzero(free)[over]
        pi[idx] = 1.0
        free[idx] = False
        remaining -= len(idx)
    return pi


def systematic_sample(pi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices drawn with inclusion probabilities ``pi`` (each in [0, 1]), no repeats.

    Units are put in random order and laid end to end on a line, each as long as its
    probability; points ``u, u + 1, ...`` with ``u`` uniform in (0, 1] pick the units they
    fall on. A unit shorter than 1 holds at most one point, and holds one with probability
    exactly its length.
    """
    order = rng.permutation(len(pi))
    u = 1.0 - rng.random()
    if len(pi) == 0:
        return np.array([], dtype=int)
    cum = np.cumsum(pi[order])
    total = cum[-1]
    points = u + np.arange(int(math.floor(total - u + 1e-12)) + 1)
    points = points[points <= total + 1e-12]
    picked = np.searchsorted(cum, points, side="left")
    picked = picked[picked < len(pi)]
    return np.sort(order[np.unique(picked)])


def draw(candidates: list[Candidate], roster: list[str], start: date, end: date,
         params: DrawParams, seed: int, count: int | None = None) -> Draw:
    """Draw entities and inspector pairs for the period [start, end] (days included)."""
    if end < start:
        raise DrawError("the period ends before it starts")
    inspectors = sorted(set(roster))
    if len(inspectors) < 2:
        raise DrawError("the department needs at least two enabled inspectors (pairs)")
    rng = np.random.default_rng(seed)
    pool = sorted((c for c in candidates if c.drawn_this_year < params.yearly_cap),
                  key=lambda c: c.entity)
    high = sorted((c for c in pool if c.level == "high"), key=lambda c: (-c.score, c.entity))
    n_forced = math.ceil(params.high_risk_share * len(high) - 1e-9)
    if count is not None:
        n_forced = min(n_forced, count)
    forced = {c.entity for c in high[:n_forced]}
    rest = [c for c in pool if c.entity not in forced]
    weights = np.array([params.rate(c) for c in rest], dtype=float)
    if count is None:
        pi = np.minimum(1.0, weights * period_fraction(start, end))
    else:
        pi = capped_probabilities(weights, min(count - len(forced), int((weights > 0).sum())))
    chosen = [rest[i].entity for i in systematic_sample(pi, rng)]
    probabilities = {c.entity: float(p) for c, p in zip(rest, pi, strict=True)}
    probabilities.update(dict.fromkeys(forced, 1.0))
    days = (end - start).days + 1
    items = []
    for entity in sorted(forced | set(chosen)):  # fixed order: the generator's use is too
        pair = rng.choice(len(inspectors), size=2, replace=False)
        when = start + timedelta(days=int(rng.integers(days)))
        items.append(DrawnItem(entity, (inspectors[pair[0]], inspectors[pair[1]]), when,
                               "high_risk" if entity in forced else "random"))
    items.sort(key=lambda i: (i.planned_date, i.entity))
    return Draw(items, float(sum(probabilities.values())), probabilities)

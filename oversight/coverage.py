"""Enforcement coverage: how a department acts on what it is given (the plan's task 12).

Four figures per department and period, each counted from plain task rows so that a hand
count on the same rows gives the same numbers:

* **clues acted on in time**: clue tasks created in the period; a task is *on time* when
  it was accepted (or reported, which implies accepting) by its due time, *late* when
  accepted after it, *overdue* when still not accepted and past due. Tasks not accepted
  and not yet due are *pending* and left out of the share, which is
  ``on_time / (on_time + late + overdue)``;
* **confirmed rate per clue kind**: clue tasks closed in the period, the share of their
  results that are ``confirmed``;
* **draws done against planned**: drawn inspections planned in the period, and how many of
  their tasks are closed;
* **high-risk entities never inspected**: entities of the department at risk level high
  with no closed task of the department ever (listed, highest score first).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ClueTask:
    kind: str
    created_at: datetime
    due_at: datetime
    accepted_at: datetime | None
    closed_at: datetime | None
    result: str | None


@dataclass(frozen=True)
class DrawnTask:
    entity: str
    state: str
    result: str | None


@dataclass(frozen=True)
class RiskyEntity:
    entity: str
    name: str
    score: float
    inspected: bool


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def timeliness(tasks: list[ClueTask], now: datetime) -> dict:
    n = Counter()
    for t in tasks:
        if t.accepted_at is not None:
            n["on_time" if t.accepted_at <= t.due_at else "late"] += 1
        elif t.due_at < now:
            n["overdue"] += 1
        else:
            n["pending"] += 1
    decided = n["on_time"] + n["late"] + n["overdue"]
    return {"tasks": len(tasks), "on_time": n["on_time"], "late": n["late"],
            "overdue": n["overdue"], "pending": n["pending"],
            "share_on_time": _share(n["on_time"], decided)}


def confirmed_rates(closed: list[ClueTask]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for kind in sorted({t.kind for t in closed}):
        rows = [t for t in closed if t.kind == kind and t.result is not None]
        confirmed = sum(t.result == "confirmed" for t in rows)
        out[kind] = {"reports": len(rows), "confirmed": confirmed,
                     "rate": _share(confirmed, len(rows))}
    return out


def draws_done(items: list[DrawnTask]) -> dict:
    done = sum(i.state == "closed" for i in items)
    return {"planned": len(items), "done": done, "open": len(items) - done,
            "share_done": _share(done, len(items))}


def never_inspected(entities: list[RiskyEntity]) -> list[dict]:
    rows = sorted((e for e in entities if not e.inspected), key=lambda e: (-e.score, e.entity))
    return [{"entity": e.entity, "name": e.name, "score": e.score} for e in rows]


def coverage(created: list[ClueTask], closed: list[ClueTask], drawn: list[DrawnTask],
             risky: list[RiskyEntity], now: datetime) -> dict:
    """The four figures (see the module docstring) as one JSON-ready dict."""
    return {"clues_acted_on_time": timeliness(created, now),
            "confirmed_rate": confirmed_rates(closed),
            "draws": draws_done(drawn),
            "high_risk_never_inspected": never_inspected(risky)}

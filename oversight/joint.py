"""Joint inspections: tasks of several departments at one entity in one window, one visit.

The plan wants departments to go together ("enter once, check everything") instead of
visiting the same enterprise one after another. Open tasks (drawn inspections and clue
tasks) that name the same entity and whose windows overlap form a group as long as one
moment lies in all their windows; a group with two or more departments is a joint
inspection. Each department keeps its own task and result; the group only shares the visit.

The visit date is the earliest planned date of a drawn task that falls inside the common
window (a published draw date holds where it can), else the first day of that window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta


@dataclass(frozen=True)
class OpenTask:
    task_id: int
    department: str
    entity: str
    start: datetime
    end: datetime
    inspection_id: int | None = None
    planned_date: date | None = None


@dataclass(frozen=True)
class JointGroup:
    entity: str
    task_ids: tuple[int, ...]
    departments: tuple[str, ...]
    inspection_ids: tuple[int, ...]
    start: datetime
    end: datetime
    visit_date: date


def _visit(members: list[OpenTask], start: datetime, end: datetime,
           utc_offset_hours: float) -> date:
    shift = timedelta(hours=utc_offset_hours)
    first, last = (start + shift).date(), (end + shift).date()
    planned = sorted(m.planned_date for m in members
                     if m.planned_date is not None and first <= m.planned_date <= last)
    return planned[0] if planned else first


def group(tasks: list[OpenTask], utc_offset_hours: float = 8.0) -> list[JointGroup]:
    """Joint groups among ``tasks`` (entity by entity, windows swept by start time)."""
    out: list[JointGroup] = []
    by_entity: dict[str, list[OpenTask]] = {}
    for t in tasks:
        by_entity.setdefault(t.entity, []).append(t)
    for entity in sorted(by_entity):
        runs: list[list[OpenTask]] = []
        for t in sorted(by_entity[entity], key=lambda t: (t.start, t.task_id)):
            if runs and t.start <= min(m.end for m in runs[-1]):
                runs[-1].append(t)
            else:
                runs.append([t])
        for members in runs:
            departments = tuple(sorted({m.department for m in members}))
            if len(departments) < 2:
                continue
            start = max(m.start for m in members)
            end = min(m.end for m in members)
            out.append(JointGroup(
                entity, tuple(sorted(m.task_id for m in members)), departments,
                tuple(sorted({m.inspection_id for m in members if m.inspection_id})),
                start, end, _visit(members, start, end, utc_offset_hours)))
    return out
